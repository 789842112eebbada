package cuda

import (
	"runtime"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func init() {
	engine.RegisterBackend("cuda", func(m *engine.Model, o engine.Options) (engine.Engine, error) {
		return Open(m, o)
	}, Available)
	engine.RegisterPrestart("cuda", prestart)
}

// prestart is the backend's head start (engine.Prestart): the weights'
// conversion and the libraries' loading begin at once, each on a goroutine
// of its own; Open joins both.
func prestart(m *engine.Model, o engine.Options) {
	if m.HFConfig == "" || m.Weights == "" {
		return
	}
	go func() { _ = load() }()
	cfg, err := readConfig(m.HFConfig)
	if err != nil {
		return // Open says what is wrong
	}
	prestartWeights(m.Weights, cfg, !ConfigFromEnv(o).FP32)
}

func lockThread()   { runtime.LockOSThread() }
func unlockThread() { runtime.UnlockOSThread() }
