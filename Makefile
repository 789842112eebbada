# m3ectl — the two commands a new user needs are `make demo` and `make test`.
GO      ?= go
ORT_LIB := $(CURDIR)/third_party/onnxruntime/libonnxruntime.so
export ONNXRUNTIME_LIB ?= $(ORT_LIB)
export GOFLAGS ?= -mod=mod

.PHONY: setup build test vet demo clean

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

# The main job on the bundled model.
demo: setup build
	./bin/m3ectl embed --model testdata/m3e-tiny/hf "m3e 是一个中文句向量模型" "Hello, world!"

clean:
	rm -rf bin third_party
