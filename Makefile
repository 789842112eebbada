# m3ectl — the two commands a new user needs are `make demo` and `make test`.
GO      ?= go
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so
export ONNXRUNTIME_LIB ?= $(ORT_LIB)

<<<<<<< HEAD
.PHONY: setup setup-debian build test vet demo clean
=======
.PHONY: setup build test test-deploy vet demo clean
>>>>>>> main

setup: $(ORT_LIB) setup-debian

# Debian packages the tests need (python3, python3-numpy, ...), installed only when missing.
setup-debian:
	./scripts/setup-debian.sh

$(ORT_LIB): scripts/setup-ort.sh
	./scripts/setup-ort.sh

build:
	$(GO) build -o bin/m3ectl ./cmd/m3ectl

vet:
	$(GO) vet ./...

# Every test, race detector on; GPU tests skip without a GPU.
test: setup
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

# Deployment tests (deploy/, a Go module of its own so that Helm and the
# Kubernetes API types stay out of m3ectl's): the Helm chart, the KServe
# resources, the image and HAProxy in front of rolling replicas.
test-deploy: setup build
	cd deploy && $(GO) vet ./...
	cd deploy && M3ECTL_BIN=$(CURDIR)/bin/m3ectl $(GO) test -count=1 -timeout 15m ./...

# The main job on the bundled model: serve it (HTTP 8000, gRPC 8001, metrics 8002).
demo: setup build
	./bin/m3ectl serve --model testdata/m3e-tiny/hf --name m3e-tiny

clean:
	rm -rf bin third_party
