package ortlib

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The pinned library, the same that scripts/setup-ort.sh installs: ONNX
// Runtime 1.24.1's CPU build (the C API github.com/yalue/onnxruntime_go
// v1.27.0 speaks) as shipped in the npm package onnxruntime-node.
const (
	Version       = "1.24.1"
	Package       = "onnxruntime-node@" + Version
	PackageSHA256 = "57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772"
	LibSHA256     = "53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4"
	libInPackage  = "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
)

// InstallOptions say where the library comes from and goes.
type InstallOptions struct {
	// From is a local onnxruntime-node .tgz or libonnxruntime.so to install
	// (checked against the pinned sums); empty fetches the package with
	// `npm pack`, through whatever registry npm is configured for.
	From string
	// Dir is the destination folder; empty means UserDir().
	Dir string
	// Npm is the npm executable; empty means "npm" on PATH.
	Npm string
	// Log reports progress; may be nil.
	Log func(msg string)
}

// Install puts the pinned, checksum-verified library at Dir/libonnxruntime.so
// and returns its path. A library already there with the right sum is kept.
// The file is written beside its final name and renamed, so an interrupted
// install leaves nothing half-written.
func Install(ctx context.Context, o InstallOptions) (string, error) {
	logf := func(format string, args ...any) {
		if o.Log != nil {
			o.Log(fmt.Sprintf(format, args...))
		}
	}
	dir := o.Dir
	if dir == "" {
		d, err := UserDir()
		if err != nil {
			return "", err
		}
		dir = d
	}
	dest := filepath.Join(dir, FileName)
	if sum, err := fileSHA256(dest); err == nil && sum == LibSHA256 {
		logf("onnxruntime %s already at %s (sha256 verified)", Version, dest)
		return dest, nil
	}
	var lib []byte
	var err error
	switch {
	case o.From == "":
		lib, err = fetchWithNpm(ctx, o.Npm, logf)
	case strings.HasSuffix(o.From, ".tgz") || strings.HasSuffix(o.From, ".tar.gz"):
		lib, err = libFromPackage(o.From)
	default:
		lib, err = os.ReadFile(o.From)
	}
	if err != nil {
		return "", err
	}
	if sum := sha256Hex(lib); sum != LibSHA256 {
		return "", fmt.Errorf("libonnxruntime.so has sha256 %s, not the pinned %s (ONNX Runtime %s); refusing to install", sum, LibSHA256, Version)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".libonnxruntime-*.so")
	if err != nil {
		return "", fmt.Errorf("install into %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	if _, err := tmp.Write(lib); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("install %s: %w", dest, err)
	}
	logf("onnxruntime %s installed at %s (sha256 verified)", Version, dest)
	return dest, nil
}

// fetchWithNpm runs `npm pack onnxruntime-node@VERSION` in a temporary
// folder and returns the library from the verified package.
func fetchWithNpm(ctx context.Context, npm string, logf func(string, ...any)) ([]byte, error) {
	if npm == "" {
		npm = "npm"
	}
	path, err := exec.LookPath(npm)
	if err != nil {
		return nil, fmt.Errorf("npm is needed to fetch %s (apt-get install npm), or give --from a downloaded .tgz or libonnxruntime.so: %w", Package, err)
	}
	tmp, err := os.MkdirTemp("", "m3ectl-setup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	logf("fetching %s with npm pack ...", Package)
	cmd := exec.CommandContext(ctx, path, "pack", "--silent", Package)
	cmd.Dir = tmp
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("npm pack %s: %v: %s", Package, err, strings.TrimSpace(stderr.String()))
	}
	return libFromPackage(filepath.Join(tmp, "onnxruntime-node-"+Version+".tgz"))
}

// libFromPackage checks the package's sum and reads the library out of it.
func libFromPackage(tgz string) ([]byte, error) {
	sum, err := fileSHA256(tgz)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tgz, err)
	}
	if sum != PackageSHA256 {
		return nil, fmt.Errorf("%s has sha256 %s, not the pinned %s of %s; refusing to install", filepath.Base(tgz), sum, PackageSHA256, Package)
	}
	f, err := os.Open(tgz)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tgz, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s has no %s", tgz, libInPackage)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tgz, err)
		}
		if h.Name == libInPackage {
			return io.ReadAll(io.LimitReader(tr, 256<<20))
		}
	}
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
