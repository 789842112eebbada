package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Inputs are the built files the image holds, and the repository root the
// spec's sources are relative to.
type Inputs struct {
	Root    string // repository root
	Binary  string // m3ectl, built on Suite
	ORTLib  string // libonnxruntime.so from scripts/setup-ort.sh
	BaseTar string // from BuildBase
}

// Result describes a written archive.
type Result struct {
	Path              string
	Digest            string // manifest digest
	CompressedBytes   int64  // layers as stored (gzip)
	UncompressedBytes int64  // layers unpacked
}

// epoch is the time stamped on the image and its files: fixed, so that the
// same inputs give the same layers.
var epoch = time.Unix(0, 0).UTC()

// BuildArchive assembles the image from the base tarball and one layer of
// the spec's files, and writes it as an OCI archive (a tar of an OCI image
// layout, what skopeo and podman read as oci-archive:PATH) tagged with the
// spec's tag.
func BuildArchive(s Spec, in Inputs, out string) (Result, error) {
	if err := checkORT(in); err != nil {
		return Result{}, err
	}
	base, err := tarball.LayerFromFile(in.BaseTar, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return Result{}, fmt.Errorf("base layer: %w", err)
	}
	appTar, err := appLayer(s, in)
	if err != nil {
		return Result{}, err
	}
	app, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(appTar)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return Result{}, fmt.Errorf("m3ectl layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: fmt.Sprintf("debootstrap --variant=minbase --include=%s %s; %s; %s", strings.Join(s.Packages, ","), Suite, s.UserCommands(), CleanCommands)}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: "COPY m3ectl, libonnxruntime.so, " + s.Model.Src}},
	)
	if err != nil {
		return Result{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return Result{}, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = "amd64", "linux", v1.Time{Time: epoch}
	cf.Config = Config(s)
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return Result{}, err
	}
	return writeArchive(s, img, out)
}

// Config is the image configuration the Dockerfile's instructions produce.
func Config(s Spec) v1.Config {
	ports := map[string]struct{}{}
	for _, p := range s.Ports {
		ports[strconv.Itoa(p)+"/tcp"] = struct{}{}
	}
	d := func(v string) time.Duration { x, _ := time.ParseDuration(v); return x }
	return v1.Config{
		User:         fmt.Sprintf("%d:%d", s.User.UID, s.User.GID),
		Env:          append([]string{}, s.Env...),
		WorkingDir:   s.WorkDir,
		Entrypoint:   append([]string{}, s.Entrypoint...),
		Cmd:          append([]string{}, s.Cmd...),
		ExposedPorts: ports,
		Labels:       s.Labels,
		Healthcheck: &v1.HealthConfig{
			Test:     append([]string{"CMD"}, s.Healthcheck...),
			Interval: d(HealthInterval), Timeout: d(HealthTimeout), StartPeriod: d(HealthStartPeriod), Retries: HealthRetries,
		},
	}
}

// appLayer is the layer of the Dockerfile's COPY instructions: parents
// made 0755 root:root as COPY makes them, files owned by root.
func appLayer(s Spec, in Inputs) ([]byte, error) {
	model, err := s.ModelFiles(in.Root)
	if err != nil {
		return nil, err
	}
	files := append([]File{{Src: in.Binary, Dst: s.Binary, Mode: 0o755}, {Src: in.ORTLib, Dst: s.ORTLib, Mode: 0o644}}, model...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{"/": true}
	var mkdir func(string) error
	mkdir = func(d string) error {
		if dirs[d] {
			return nil
		}
		if err := mkdir(path.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, f := range files {
		src := f.Src
		if !filepath.IsAbs(src) {
			src = filepath.Join(in.Root, src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		if err := mkdir(path.Dir(f.Dst)); err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Dst, "/"), Mode: int64(f.Mode), Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var libSum = regexp.MustCompile(`(?m)^LIB_SHA256=([0-9a-f]{64})$`)

// checkORT verifies the library against the sum scripts/setup-ort.sh pins,
// the check the Dockerfile's ort stage runs.
func checkORT(in Inputs) error {
	script, err := os.ReadFile(filepath.Join(in.Root, "scripts", "setup-ort.sh"))
	if err != nil {
		return err
	}
	m := libSum.FindSubmatch(script)
	if m == nil {
		return fmt.Errorf("scripts/setup-ort.sh pins no LIB_SHA256")
	}
	f, err := os.Open(in.ORTLib)
	if err != nil {
		return fmt.Errorf("ONNX Runtime library (make setup): %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, bufio.NewReader(f)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != string(m[1]) {
		return fmt.Errorf("%s has sha256 %s, scripts/setup-ort.sh pins %s: refusing to build", in.ORTLib, got, m[1])
	}
	return nil
}

// writeArchive writes img as an OCI layout in a temporary folder, tars it
// to out.tmp and renames it to out.
func writeArchive(s Spec, img v1.Image, out string) (Result, error) {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".oci-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return Result{}, err
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": s.Tag()})); err != nil {
		return Result{}, err
	}
	res := Result{Path: out}
	digest, err := img.Digest()
	if err != nil {
		return Result{}, err
	}
	res.Digest = digest.String()
	layers, err := img.Layers()
	if err != nil {
		return Result{}, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return Result{}, err
		}
		res.CompressedBytes += n
		rc, err := l.Uncompressed()
		if err != nil {
			return Result{}, err
		}
		u, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return Result{}, err
		}
		res.UncompressedBytes += u
	}
	tmp := out + ".tmp"
	if err := tarDir(dir, tmp); err != nil {
		os.Remove(tmp)
		return Result{}, err
	}
	return res, os.Rename(tmp, out)
}

// tarDir writes the files under dir into a tar at out.
func tarDir(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), epoch, 0, 0, "", ""
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil || info.IsDir() {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
