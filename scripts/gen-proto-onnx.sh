#!/usr/bin/env bash
# Regenerates pkg/convert/onnxpb from proto/onnx.proto (ONNX's IR definition).
# Needs protoc and protoc-gen-go (go install google.golang.org/protobuf/cmd/protoc-gen-go).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin:/root/go/bin"
protoc --proto_path=proto \
  --go_out=. --go_opt=module=github.com/m3ectl/m3ectl \
  proto/onnx.proto
echo "generated pkg/convert/onnxpb/onnx.pb.go"
