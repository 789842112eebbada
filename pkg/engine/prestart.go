package engine

import (
	"os"
	"sync"
)

// A backend may register a head start: work that opening an engine will
// need and that can begin before the caller gets round to Open (the CUDA
// backend converts the checkpoint's weights for the GPU while the driver
// and its libraries load). Open picks up whatever the head start finished
// or still has under way; a head start nobody opens after is let go.
var (
	prestartMu sync.RWMutex
	prestarts  = map[string]func(*Model, Options){}
)

// RegisterPrestart sets backend name's head start (from init, beside
// RegisterBackend). start must return at once, doing its work on
// goroutines of its own, and must never fail: Open reports the errors.
func RegisterPrestart(name string, start func(*Model, Options)) {
	prestartMu.Lock()
	defer prestartMu.Unlock()
	prestarts[name] = start
}

// Prestart gives engines of kind for m a head start, where the backend has
// one (embed --output calls it first thing; "auto" and unknown kinds do
// nothing). M3ECTL_PRESTART=0 turns head starts off.
func Prestart(kind string, m *Model, o Options) {
	if os.Getenv("M3ECTL_PRESTART") == "0" {
		return
	}
	prestartMu.RLock()
	start := prestarts[kind]
	prestartMu.RUnlock()
	if start != nil && m != nil {
		start(m, o)
	}
}
