#!/usr/bin/env bash
# Fetches ONNX Runtime's CPU shared library (1.24.1, the C API that
# github.com/yalue/onnxruntime_go v1.27.0 speaks) from the npm package
# onnxruntime-node, checks it against pinned SHA-256 sums and installs it at
# third_party/onnxruntime/libonnxruntime.so (git-ignored). Idempotent.
set -euo pipefail

ORT_VERSION=1.24.1
PKG_SHA256=57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772
LIB_SHA256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4
LIB_IN_PKG=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/third_party/onnxruntime"
lib="$dest/libonnxruntime.so"

if [ -f "$lib" ] && echo "$LIB_SHA256  $lib" | sha256sum -c --status; then
  echo "onnxruntime $ORT_VERSION already at $lib"
  exit 0
fi
command -v npm >/dev/null || { echo "setup-ort: npm is needed to fetch onnxruntime-node (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching onnxruntime-node@$ORT_VERSION ..."
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
echo "$PKG_SHA256  $tgz" | sha256sum -c --status || {
  echo "setup-ort: checksum mismatch for $(basename "$tgz"); refusing to install" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp" "$LIB_IN_PKG"
echo "$LIB_SHA256  $tmp/$LIB_IN_PKG" | sha256sum -c --status || {
  echo "setup-ort: checksum mismatch for libonnxruntime.so.1; refusing to install" >&2; exit 1; }
mkdir -p "$dest"
install -m 0644 "$tmp/$LIB_IN_PKG" "$lib"
echo "onnxruntime $ORT_VERSION installed at $lib (sha256 verified)"
