package cuda

import (
	"runtime"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

func init() {
	engine.RegisterBackend("cuda", func(m *engine.Model, o engine.Options) (engine.Engine, error) {
		return Open(m, o)
	}, Available)
}

func lockThread()   { runtime.LockOSThread() }
func unlockThread() { runtime.UnlockOSThread() }
