package cuda

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/ebitengine/purego"
)

// ErrUnavailable is wrapped by every "this machine cannot run the GPU
// engine" error, so that callers (engine.Open's auto mode) can fall back.
var ErrUnavailable = errors.New("cuda engine unavailable")

// unavailable is an error that says why in its own words and matches
// ErrUnavailable under errors.Is.
type unavailable struct{ msg string }

func (u *unavailable) Error() string        { return u.msg }
func (u *unavailable) Is(target error) bool { return target == ErrUnavailable }

func unavailablef(format string, a ...any) error { return &unavailable{msg: fmt.Sprintf(format, a...)} }

// libSpec names one library the engine opens at run time: its sonames, newest
// first, and the folders searched beside the loader's own path.
type libSpec struct {
	what   string
	names  []string
	symbol string // a symbol that must resolve, proving the library is real
}

var (
	specCUDA   = libSpec{what: "CUDA driver", names: []string{"libcuda.so.1", "libcuda.so"}, symbol: "cuInit"}
	specLt     = libSpec{what: "cuBLASLt", names: []string{"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}, symbol: "cublasLtCreate"}
	specNVRTC  = libSpec{what: "NVRTC", names: []string{"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"}, symbol: "nvrtcCreateProgram"}
	searchDirs = func() []string {
		var dirs []string
		if d := os.Getenv("M3ECTL_CUDA_LIB_DIR"); d != "" {
			dirs = append(dirs, filepath.SplitList(d)...)
		}
		for _, env := range []string{"CUDA_HOME", "CUDA_PATH"} {
			if d := os.Getenv(env); d != "" {
				dirs = append(dirs, filepath.Join(d, "lib64"), filepath.Join(d, "lib"))
			}
		}
		dirs = append(dirs, "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
			"/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64")
		// pip's nvidia-* wheels (PyTorch installs) put the libraries here.
		matches, _ := filepath.Glob("/usr/local/lib/python3*/dist-packages/nvidia/cu1*/lib")
		dirs = append(dirs, matches...)
		matches, _ = filepath.Glob("/opt/*/.venv/lib/python3*/site-packages/nvidia/cu1*/lib")
		dirs = append(dirs, matches...)
		return dirs
	}
)

// openLib tries the loader's own search first (LD_LIBRARY_PATH, ld.so.cache),
// then the known CUDA folders.
func openLib(s libSpec) (uintptr, error) {
	var lastErr error
	try := func(p string) (uintptr, bool) {
		h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			lastErr = err
			return 0, false
		}
		if _, err := purego.Dlsym(h, s.symbol); err != nil {
			lastErr = err
			return 0, false
		}
		return h, true
	}
	for _, n := range s.names {
		if h, ok := try(n); ok {
			return h, nil
		}
	}
	for _, d := range searchDirs() {
		for _, n := range s.names {
			p := filepath.Join(d, n)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if h, ok := try(p); ok {
				return h, nil
			}
		}
	}
	return 0, unavailablef("%s library %s not found (%v); install the NVIDIA driver and CUDA 12/13 libraries, set M3ECTL_CUDA_LIB_DIR, or use --engine cpu",
		s.what, s.names[0], lastErr)
}

// sym resolves a symbol, trying each name in turn (versioned names such as
// cuMemAlloc_v2 first).
func sym(h uintptr, names ...string) (uintptr, error) {
	for _, n := range names {
		if p, err := purego.Dlsym(h, n); err == nil && p != 0 {
			return p, nil
		}
	}
	return 0, fmt.Errorf("symbol %s not found", names[0])
}

var (
	loadOnce sync.Once
	loadErr  error
)

// load opens the three libraries and resolves every symbol once per process.
func load() error {
	loadOnce.Do(func() {
		t := time.Now()
		var split [4]time.Duration // driver, cuBLASLt, NVRTC, cuInit
		lap := func(i int) { split[i] = time.Since(t); t = time.Now() }
		defer func() {
			slog.Debug("cuda libraries loaded", "driver", ms(split[0]), "cublaslt", ms(split[1]), "nvrtc", ms(split[2]), "cuinit", ms(split[3]))
		}()
		loadErr = func() error {
			hc, err := openLib(specCUDA)
			if err != nil {
				return err
			}
			if err := bindDriver(hc); err != nil {
				return unavailablef("CUDA driver: %v; use --engine cpu", err)
			}
			lap(0)
			hl, err := openLib(specLt)
			if err != nil {
				return err
			}
			if err := bindLt(hl); err != nil {
				return unavailablef("cuBLASLt: %v; use --engine cpu", err)
			}
			lap(1)
			hn, err := openLib(specNVRTC)
			if err != nil {
				return err
			}
			if err := bindNVRTC(hn); err != nil {
				return unavailablef("NVRTC: %v; use --engine cpu", err)
			}
			lap(2)
			if err := cuCheck(call(drv.init, 0), "cuInit"); err != nil {
				return unavailablef("%v; use --engine cpu", err)
			}
			var n int32
			if err := cuCheck(call(drv.deviceGetCount, ptr(&n)), "cuDeviceGetCount"); err != nil {
				return unavailablef("%v; use --engine cpu", err)
			}
			if n == 0 {
				return unavailablef("no CUDA GPU found; use --engine cpu")
			}
			lap(3)
			return nil
		}()
	})
	return loadErr
}

// Available reports why the GPU engine cannot run here (nil when it can): a
// missing library or no GPU, in one line that says to use --engine cpu.
func Available() error { return load() }
