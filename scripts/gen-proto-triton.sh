#!/usr/bin/env bash
# Regenerates pkg/tritonpb from proto/model_config.proto and
# proto/grpc_service.proto (Triton's config and KServe v2 gRPC schemas).
# Needs protoc, protoc-gen-go and protoc-gen-go-grpc on PATH
# (go install google.golang.org/protobuf/cmd/protoc-gen-go@latest
#  google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
for tool in protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "gen-proto-triton: $tool not found on PATH" >&2; exit 1; }
done
out=pkg/tritonpb
rm -f "$out"/*.pb.go
protoc -I proto \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  proto/model_config.proto proto/grpc_service.proto
echo "gen-proto-triton: wrote $(ls "$out"/*.pb.go | wc -l) files to $out"
