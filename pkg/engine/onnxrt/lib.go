package onnxrt

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// EnvLib is the environment variable that names libonnxruntime.so.
const EnvLib = "ONNXRUNTIME_LIB"

// setupRel is where scripts/setup-ort.sh installs the library, relative to the
// repository root.
var setupRel = filepath.Join("third_party", "onnxruntime", "libonnxruntime.so")

// ErrNoLibrary says no ONNX Runtime shared library was found.
var ErrNoLibrary = errors.New("ONNX Runtime library (libonnxruntime.so) not found: run scripts/setup-ort.sh (or make setup), or set ONNXRUNTIME_LIB or --ort-lib to its path")

// FindLibrary returns the ONNX Runtime shared library to load, in the order
// users expect: the explicit path (--ort-lib), $ONNXRUNTIME_LIB, the set-up
// script's location (third_party/onnxruntime in the repository the working
// directory is in, or beside the binary's parent folder), then the system's
// library folders. An explicit path or variable that names a missing file is
// an error rather than a silent fall-through, so a typo is not hidden.
func FindLibrary(explicit string) (string, error) {
	if explicit != "" {
		if !isFile(explicit) {
			return "", fmt.Errorf("--ort-lib %s: no such file", explicit)
		}
		return explicit, nil
	}
	if env := os.Getenv(EnvLib); env != "" {
		if !isFile(env) {
			return "", fmt.Errorf("%s=%s: no such file", EnvLib, env)
		}
		return env, nil
	}
	for _, c := range setupCandidates() {
		if isFile(c) {
			return c, nil
		}
	}
	var dirs []string
	if ld := os.Getenv("LD_LIBRARY_PATH"); ld != "" {
		dirs = append(dirs, filepath.SplitList(ld)...)
	}
	dirs = append(dirs, "/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64")
	for _, d := range dirs {
		for _, n := range []string{"libonnxruntime.so", "libonnxruntime.so.1"} {
			if p := filepath.Join(d, n); isFile(p) {
				return p, nil
			}
		}
	}
	return "", ErrNoLibrary
}

// setupCandidates lists where scripts/setup-ort.sh may have put the library:
// under the repository that contains the working directory (go test runs in a
// package folder), and under the binary's parent folder (bin/m3ectl).
func setupCandidates() []string {
	var out []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if isFile(filepath.Join(d, "go.mod")) || isFile(filepath.Join(d, setupRel)) {
				out = append(out, filepath.Join(d, setupRel))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			out = append(out, filepath.Join(filepath.Dir(filepath.Dir(exe)), setupRel))
		}
	}
	return out
}

var (
	initMu   sync.Mutex
	initPath string // the library the environment was initialised with
	initErr  error
)

// Init loads ONNX Runtime once per process. Later calls return the first
// outcome; asking for a different library after that is logged and ignored,
// as ONNX Runtime cannot be loaded twice into one process.
func Init(explicit string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" || initErr != nil {
		if explicit != "" && initPath != "" && explicit != initPath {
			slog.Warn("onnxruntime already loaded; ignoring another library", "loaded", initPath, "asked", explicit)
		}
		return initErr
	}
	if ort.IsInitialized() {
		// Another package of this binary (pkg/convert's parity check) loaded it.
		initPath = "(loaded by another package)"
		return nil
	}
	path, err := FindLibrary(explicit)
	if err != nil {
		// A missing library may be installed later (tests, set-up); do not cache.
		return err
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		initErr = fmt.Errorf("load ONNX Runtime from %s: %w", path, err)
		if strings.Contains(err.Error(), "version") {
			initErr = fmt.Errorf("load ONNX Runtime from %s (m3ectl needs 1.24.x; run scripts/setup-ort.sh): %w", path, err)
		}
		return initErr
	}
	initPath = path
	slog.Debug("onnxruntime loaded", "lib", path, "version", ort.GetVersion())
	return nil
}

// LoadedLibrary is the path ONNX Runtime was loaded from, or "".
func LoadedLibrary() string {
	initMu.Lock()
	defer initMu.Unlock()
	return initPath
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
