# m3ectl — the two commands a new user needs are `make demo` and `make test`.
GO      ?= go
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so
export ONNXRUNTIME_LIB ?= $(ORT_LIB)

.PHONY: setup setup-debian build install test test-deploy image dockerfiles vet demo clean

setup: $(ORT_LIB) setup-debian

# Debian packages the tests need (python3, python3-numpy, ...), installed only when missing.
setup-debian:
	./scripts/setup-debian.sh

$(ORT_LIB): scripts/setup-ort.sh
	./scripts/setup-ort.sh

# The version and commit `m3ectl version` and GET /v2 report.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -X github.com/m3ectl/m3ectl/pkg/buildinfo.version=$(VERSION) -X github.com/m3ectl/m3ectl/pkg/buildinfo.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/m3ectl ./cmd/m3ectl

# Installs bin/m3ectl into $(BINDIR) and the checksum-verified ONNX Runtime
# library into the per-user location every m3ectl command searches
# ($XDG_DATA_HOME/m3ectl/onnxruntime), so the installed binary runs anywhere.
PREFIX ?= $(HOME)/.local
BINDIR ?= $(PREFIX)/bin
install: setup build
	install -D -m 0755 bin/m3ectl $(DESTDIR)$(BINDIR)/m3ectl
	env -u ONNXRUNTIME_LIB $(DESTDIR)$(BINDIR)/m3ectl setup --from $(ORT_LIB)

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
# m3ectl is built as the Dockerfile's build stage builds it (stripped).
IMAGE := dist/m3ectl-cpu.oci.tar
image: setup
	$(GO) build -ldflags "-s -w $(LDFLAGS)" -o dist/image/m3ectl ./cmd/m3ectl
	cd deploy && $(GO) run ./cmd/m3ectl-image build --root $(CURDIR) --bin $(CURDIR)/dist/image/m3ectl --ort $(ORT_LIB) --out $(CURDIR)/$(IMAGE)

# deploy/Dockerfile and deploy/Dockerfile.cuda, from deploy/image/spec.go.
dockerfiles:
	cd deploy && $(GO) run ./cmd/m3ectl-image dockerfiles --root $(CURDIR)

# The main job on the bundled model: serve it (HTTP 8000, gRPC 8001, metrics 8002).
demo: setup build
	./bin/m3ectl serve --model testdata/m3e-tiny/hf --name m3e-tiny

clean:
	rm -rf bin third_party dist
