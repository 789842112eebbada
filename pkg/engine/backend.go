package engine

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
)

// Options tune a backend. Zero values mean "the backend's default", so callers
// set only what the user asked for.
type Options struct {
	Threads        int    // intra-op threads (CPU); 0: the runtime's default
	InterOpThreads int    // inter-op threads (CPU); 0: the runtime's default
	GraphOptLevel  int    // ONNX Runtime graph optimisation: 1 basic, 2 extended, 3 all; 0 or -1: default (all); GraphOptDisabled: none
	Provider       string // ONNX Runtime execution provider: "cpu" (default), "cuda", "tensorrt"
	Device         int    // GPU ordinal for cuda/tensorrt
	Precision      string // "fp32" or "fp16" (cuda backend)
	MaxBatchRows   int    // largest batch the engine must accept; 0: no promise
	MaxBatchTokens int    // largest token count per batch; 0: no promise
	ORTLib         string // path of libonnxruntime.so; "": search (see pkg/engine/onnxrt)
}

// GraphOptDisabled turns ONNX Runtime's graph optimisations off (for
// debugging an export). It is not 0 so that zero-valued Options stay fast.
const GraphOptDisabled = -2

// Opener opens an Engine for a resolved model.
type Opener func(m *Model, o Options) (Engine, error)

type backend struct {
	open      Opener
	available func() error
}

var (
	backendsMu sync.RWMutex
	backends   = map[string]backend{}
)

// RegisterBackend makes a backend openable by name. Backends call it from
// init so that a blank import is all a binary needs. available reports why the
// backend cannot run on this machine (nil when it can); it may be nil.
func RegisterBackend(name string, open Opener, available func() error) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	if available == nil {
		available = func() error { return nil }
	}
	backends[name] = backend{open: open, available: available}
}

// Backends lists the registered backend names, sorted.
func Backends() []string {
	backendsMu.RLock()
	defer backendsMu.RUnlock()
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Available says whether a registered backend can run here, and why not.
func Available(kind string) error {
	b, ok := lookup(kind)
	if !ok {
		return unknownBackend(kind)
	}
	return b.available()
}

func lookup(kind string) (backend, bool) {
	backendsMu.RLock()
	defer backendsMu.RUnlock()
	b, ok := backends[kind]
	return b, ok
}

func unknownBackend(kind string) error {
	return fmt.Errorf("engine %q is not built into this binary (have: %s)", kind, strings.Join(Backends(), ", "))
}

// Open opens an engine of the given kind: "cpu" (ONNX Runtime), "cuda", or
// "auto", which takes cuda when it is available here and cpu otherwise, and
// logs which one and why. Under "auto" a cuda backend that fails to open the
// model (say, a graph it cannot read) falls back to cpu with a warning.
func Open(kind string, m *Model, o Options) (Engine, error) {
	if kind == "" {
		kind = "auto"
	}
	if kind != "auto" {
		return openKind(kind, m, o)
	}
	b, ok := lookup("cuda")
	if !ok {
		slog.Info("engine auto: using cpu", "reason", "cuda backend not built in")
		return openKind("cpu", m, o)
	}
	if err := b.available(); err != nil {
		slog.Info("engine auto: using cpu", "reason", err.Error())
		return openKind("cpu", m, o)
	}
	e, err := openKind("cuda", m, o)
	if err == nil {
		slog.Info("engine auto: using cuda", "reason", "a GPU is available")
		return e, nil
	}
	slog.Warn("engine auto: cuda could not open the model, using cpu", "err", err)
	return openKind("cpu", m, o)
}

func openKind(kind string, m *Model, o Options) (Engine, error) {
	b, ok := lookup(kind)
	if !ok {
		return nil, unknownBackend(kind)
	}
	if err := b.available(); err != nil {
		return nil, fmt.Errorf("engine %s is not available: %w", kind, err)
	}
	e, err := b.open(m, o)
	if err != nil {
		return nil, fmt.Errorf("engine %s: %w", kind, err)
	}
	return e, nil
}
