// Package ortlib is the ONNX Runtime shared library as m3ectl finds and
// installs it: one lookup order for every command that loads it (serve,
// embed, verify-engine, version) and `m3ectl setup`, which puts the pinned,
// checksum-verified library in a per-user location an installed binary finds.
package ortlib

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// EnvLib is the environment variable that names the library.
const EnvLib = "ONNXRUNTIME_LIB"

// FileName is the library's file name in every location m3ectl installs to.
const FileName = "libonnxruntime.so"

// setupRel is where scripts/setup-ort.sh (make setup) puts the library in a
// checkout.
var setupRel = filepath.Join("third_party", "onnxruntime", FileName)

// ErrNotFound says no ONNX Runtime shared library was found.
var ErrNotFound = errors.New("ONNX Runtime library (libonnxruntime.so) not found: run `m3ectl setup` (or scripts/setup-ort.sh in a checkout), or set ONNXRUNTIME_LIB or --ort-lib to its path")

// UserDir is the per-user location `m3ectl setup` and `make install` fill:
// $XDG_DATA_HOME/m3ectl/onnxruntime, by default
// ~/.local/share/m3ectl/onnxruntime (XDG Base Directory specification).
func UserDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "m3ectl", "onnxruntime"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no per-user data folder: %w", err)
	}
	return filepath.Join(home, ".local", "share", "m3ectl", "onnxruntime"), nil
}

// Find returns the library to load, in the order users expect: the explicit
// path (--ort-lib), $ONNXRUNTIME_LIB, the per-user location, the set-up
// script's location (third_party/onnxruntime in the checkout the working
// directory is in, or beside the binary's parent folder), then the system's
// library folders. An explicit path or variable naming a missing file is an
// error rather than a silent fall-through, so a typo is not hidden.
func Find(explicit string) (string, error) {
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
	var cands []string
	if d, err := UserDir(); err == nil {
		cands = append(cands, filepath.Join(d, FileName))
	}
	cands = append(cands, checkoutCandidates()...)
	for _, c := range cands {
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
		for _, n := range []string{FileName, FileName + ".1"} {
			if p := filepath.Join(d, n); isFile(p) {
				return p, nil
			}
		}
	}
	return "", ErrNotFound
}

// checkoutCandidates lists where scripts/setup-ort.sh may have put the
// library: under the checkout that contains the working directory (go test
// runs in a package folder), and under the binary's parent folder
// (bin/m3ectl).
func checkoutCandidates() []string {
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

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
