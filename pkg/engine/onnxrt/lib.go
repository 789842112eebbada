package onnxrt

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/m3ectl/m3ectl/pkg/ortlib"
)

// EnvLib is the environment variable that names libonnxruntime.so.
const EnvLib = ortlib.EnvLib

// ErrNoLibrary says no ONNX Runtime shared library was found.
var ErrNoLibrary = ortlib.ErrNotFound

// FindLibrary returns the ONNX Runtime shared library to load; the order is
// ortlib.Find's, shared with verify-engine and version.
func FindLibrary(explicit string) (string, error) { return ortlib.Find(explicit) }

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
