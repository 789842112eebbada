# m3ectl — the two commands a new user needs are `make demo` and `make test`.
GO      ?= go
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so
export ONNXRUNTIME_LIB ?= $(ORT_LIB)

.PHONY: setup build test test-deploy image dockerfiles vet demo clean

setup: $(ORT_LIB)

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
test-deploy: setup build image
	cd deploy && $(GO) vet ./...
	cd deploy && M3ECTL_BIN=$(CURDIR)/bin/m3ectl M3ECTL_IMAGE=$(CURDIR)/$(IMAGE) $(GO) test -count=1 -timeout 15m ./...

# The CPU image as an OCI archive, built without running a container: a
# debootstrap root (cached under ~/.cache/m3ectl/image) plus the same files
# and configuration as deploy/Dockerfile. Needs root.
IMAGE := dist/m3ectl-cpu.oci.tar
image: setup build
	cd deploy && $(GO) run ./cmd/m3ectl-image build --root $(CURDIR) --bin $(CURDIR)/bin/m3ectl --ort $(ORT_LIB) --out $(CURDIR)/$(IMAGE)

# deploy/Dockerfile and deploy/Dockerfile.cuda, from deploy/image/spec.go.
dockerfiles:
	cd deploy && $(GO) run ./cmd/m3ectl-image dockerfiles --root $(CURDIR)

# The main job on the bundled model: serve it (HTTP 8000, gRPC 8001, metrics 8002).
demo: setup build
	./bin/m3ectl serve --model testdata/m3e-tiny/hf --name m3e-tiny

clean:
	rm -rf bin third_party
