package image

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ortStage fetches ONNX Runtime's library with the project's own set-up
// script, which checks both pinned SHA-256 sums (package and library).
const ortStage = `FROM ${NODE_IMAGE} AS ort
WORKDIR /src
COPY scripts/setup-ort.sh scripts/
RUN ./scripts/setup-ort.sh
`

// buildStage builds m3ectl as make image does (cgo on: ONNX Runtime's
// bindings; stripped, -s -w), on the Debian release the CPU image runs.
const buildStage = `FROM ${GO_IMAGE} AS build
ARG VERSION
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd cmd
COPY pkg pkg
RUN go build -ldflags "-s -w -X github.com/m3ectl/m3ectl/pkg/buildinfo.version=${VERSION}" -o /out/m3ectl ./cmd/m3ectl
`

// Dockerfile renders the spec as a Dockerfile whose build context is the
// repository root (docker build -f deploy/Dockerfile .). modelFiles are the
// spec's ModelFiles, one COPY each (a folder COPY would keep symbolic links
// as links).
func Dockerfile(s Spec, modelFiles []File) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("# syntax=docker/dockerfile:1\n")
	w("# Generated from deploy/image/spec.go by `make dockerfiles`; do not edit.\n")
	w("# The same spec drives `make image` (an OCI archive built without running a container).\n")
	w("# Build context: the repository root, e.g. docker build -f deploy/%s -t m3ectl/m3ectl:%s .\n", DockerfileName(s), s.Tag())
	w("ARG VERSION=%s\n", Version)
	w("ARG BASE_IMAGE=%s\n", s.BaseImage)
	w("ARG GO_IMAGE=golang:1.26-%s\n", Suite)
	w("ARG NODE_IMAGE=node:22-%s-slim\n\n", Suite)
	w("%s\n%s\n", buildStage, ortStage)
	w("FROM ${BASE_IMAGE}\n")
	w("RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends %s && \\\n    %s\n",
		strings.Join(s.Packages, " "), CleanCommands)
	w("RUN %s\n", s.UserCommands())
	w("COPY --from=build /out/m3ectl %s\n", s.Binary)
	w("COPY --from=ort /src/third_party/onnxruntime/libonnxruntime.so %s\n", s.ORTLib)
	for _, f := range modelFiles {
		w("COPY %s %s\n", f.Src, f.Dst)
	}
	for _, e := range s.Env {
		k, v, _ := strings.Cut(e, "=")
		w("ENV %s=%s\n", k, v)
	}
	w("USER %d:%d\n", s.User.UID, s.User.GID)
	w("WORKDIR %s\n", s.WorkDir)
	var ports []string
	for _, p := range s.Ports {
		ports = append(ports, strconv.Itoa(p))
	}
	w("EXPOSE %s\n", strings.Join(ports, " "))
	w("HEALTHCHECK --interval=%s --timeout=%s --start-period=%s --retries=%d CMD %s\n",
		HealthInterval, HealthTimeout, HealthStartPeriod, HealthRetries, jsonArray(s.Healthcheck))
	for _, k := range s.LabelKeys() {
		w("LABEL %s=%s\n", k, strconv.Quote(s.Labels[k]))
	}
	w("ENTRYPOINT %s\n", jsonArray(s.Entrypoint))
	w("CMD %s\n", jsonArray(s.Cmd))
	return b.String()
}

// DockerfileName is where the spec's Dockerfile lives under deploy/.
func DockerfileName(s Spec) string {
	if s.Variant == "cpu" {
		return "Dockerfile"
	}
	return "Dockerfile." + s.Variant
}

// Docker's HEALTHCHECK timing, in the Dockerfile's and the OCI config's
// (Healthcheck) forms alike.
const (
	HealthInterval    = "10s"
	HealthTimeout     = "3s"
	HealthStartPeriod = "60s"
	HealthRetries     = 3
)

func jsonArray(a []string) string {
	b, _ := json.Marshal(a)
	return string(b)
}
