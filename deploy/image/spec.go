// Package image describes m3ectl's container images once, and makes both
// of their forms from that description: the Dockerfiles (Dockerfile,
// Dockerfile.cuda), for machines that run Docker, and an OCI archive
// assembled without running a container (`make image`): a debootstrap root
// of the same Debian release and packages as the Dockerfile's base, the same
// user made by the same commands, the same files at the same paths, and the
// same configuration (user, environment, working directory, entrypoint,
// command, ports, health check, labels).
package image

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Version is the version the images are labelled and tagged with; the Helm
// chart's appVersion must equal it (checked by the chart's tests).
const Version = "0.1.0"

// Debian release of the CPU image, for both the Dockerfile's
// debian:<suite>-slim base and make image's debootstrap. It is the release
// m3ectl is built on (the binary links glibc through cgo).
const Suite = "bookworm"

// User is the non-root user both images run as.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// File is one file copied into the image: Src relative to the repository
// root (symbolic links followed), Dst absolute in the image.
type File struct {
	Src, Dst string
	Mode     fs.FileMode
}

// Spec is one image.
type Spec struct {
	Variant string // "cpu" or "cuda": the tag is Version or Version-cuda
	// BaseImage is the Dockerfile's FROM (an ARG, so it can be changed).
	BaseImage string
	// Packages installed from the base's package manager.
	Packages []string
	User     User
	// Files, in the order they are copied. Binary is built by the
	// Dockerfile's build stage; ORT comes from scripts/setup-ort.sh.
	Binary, ORTLib string // destinations of the two built files
	Model          File   // a folder: every file below Src, links followed
	Env            []string
	WorkDir        string
	Entrypoint     []string
	Cmd            []string
	Ports          []int
	// Healthcheck runs inside the container (Docker's HEALTHCHECK).
	Healthcheck []string
	Labels      map[string]string
}

// Tag is the image's tag.
func (s Spec) Tag() string {
	if s.Variant == "cpu" {
		return Version
	}
	return Version + "-" + s.Variant
}

const (
	binDst   = "/usr/local/bin/m3ectl"
	ortDst   = "/opt/onnxruntime/lib/libonnxruntime.so"
	modelDst = "/opt/m3ectl/models/m3e-tiny"
)

func common(variant, base, description string) Spec {
	return Spec{
		Variant:   variant,
		BaseImage: base,
		Packages:  []string{"ca-certificates"},
		User:      User{Name: "m3ectl", UID: 10001, GID: 10001, Home: "/home/m3ectl"},
		Binary:    binDst,
		ORTLib:    ortDst,
		Model:     File{Src: "testdata/m3e-tiny/hf", Dst: modelDst},
		Env: []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"ONNXRUNTIME_LIB=" + ortDst,
		},
		WorkDir:     "/home/m3ectl",
		Entrypoint:  []string{"m3ectl"},
		Cmd:         []string{"serve", "--model", modelDst, "--name", "m3e-tiny"},
		Ports:       []int{8000, 8001, 8002},
		Healthcheck: []string{"m3ectl", "health"},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "m3ectl",
			"org.opencontainers.image.description": description,
			"org.opencontainers.image.version":     Version,
			"org.opencontainers.image.source":      "https://github.com/m3ectl/m3ectl",
			"org.opencontainers.image.base.name":   base,
		},
	}
}

// CPU is the CPU image: Debian slim, ONNX Runtime's CPU library.
func CPU() Spec {
	return common("cpu", "debian:"+Suite+"-slim",
		"m3ectl serve: Triton-compatible sentence-embedding server (ONNX Runtime on the CPU), with a tiny m3e-shaped model")
}

// CUDA is the GPU image on NVIDIA's CUDA runtime base, which carries the
// cuBLASLt and NVRTC libraries m3ectl's CUDA engine opens; its default
// command serves the bundled model on the CUDA engine. Its Ubuntu 24.04
// glibc (2.39) runs a binary built against bookworm's (2.36).
func CUDA() Spec {
	s := common("cuda", "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
		"m3ectl serve: Triton-compatible sentence-embedding server (m3ectl's CUDA engine, ONNX Runtime fallback), with a tiny m3e-shaped model")
	s.Cmd = append(s.Cmd, "--engine", "cuda")
	return s
}

// ModelFiles lists the files of the model folder under root, sorted, with
// their destinations; symbolic links are resolved, as the image holds
// plain files.
func (s Spec) ModelFiles(root string) ([]File, error) {
	var files []File
	src := filepath.Join(root, s.Model.Src)
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Stat(path) // follows links
		if err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(src, path)
		files = append(files, File{
			Src:  filepath.ToSlash(filepath.Join(s.Model.Src, rel)),
			Dst:  s.Model.Dst + "/" + filepath.ToSlash(rel),
			Mode: 0o644,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("model folder: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Dst < files[j].Dst })
	return files, nil
}

// UserCommands are the shell commands that make the user, run by the
// Dockerfile (RUN) and by make image (in a chroot of the debootstrap root):
// the same commands, so the same /etc/passwd, /etc/group and home.
func (s Spec) UserCommands() string {
	u := s.User
	return strings.Join([]string{
		"groupadd --system --gid " + strconv.Itoa(u.GID) + " " + u.Name,
		"useradd --system --uid " + strconv.Itoa(u.UID) + " --gid " + strconv.Itoa(u.GID) +
			" --home-dir " + u.Home + " --create-home --shell /usr/sbin/nologin " + u.Name,
	}, " && ")
}

// CleanCommands remove what package installation leaves behind, as
// Debian's slim images do not carry it either.
const CleanCommands = "rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/log/*.log /var/log/apt/*"

// slimExcludes are the paths Debian's slim images leave out (debuerreotype
// scripts/.slimify-excludes, which keeps /usr/share/doc/*/copyright):
// make image applies them to its debootstrap root, whose Dockerfile
// counterpart, debian:<suite>-slim, was made that way.
var slimExcludes = []string{"/usr/share/doc/*", "/usr/share/groff/*", "/usr/share/info/*", "/usr/share/linda/*",
	"/usr/share/lintian/overrides/*", "/usr/share/locale/*", "/usr/share/man/*"}

// SlimCommands make a debootstrap root slim as debuerreotype does: dpkg is
// told to leave the paths out from now on, and what is there goes.
func SlimCommands() string {
	var cfg, dirs []string
	for _, p := range slimExcludes {
		cfg = append(cfg, "path-exclude "+p)
		dirs = append(dirs, strings.TrimSuffix(p, "/*"))
	}
	cfg = append(cfg, "path-include /usr/share/doc/*/copyright")
	return "mkdir -p /etc/dpkg/dpkg.cfg.d && printf '%s\\n' '" + strings.Join(cfg, "' '") + "' > /etc/dpkg/dpkg.cfg.d/docker && " +
		"find " + strings.Join(dirs, " ") + " -mindepth 1 -not -type d -not -path '/usr/share/doc/*/copyright' -delete 2>/dev/null; " +
		"find " + strings.Join(dirs, " ") + " -mindepth 1 -depth -type d -empty -delete 2>/dev/null; true"
}

// LabelKeys returns the label names, sorted.
func (s Spec) LabelKeys() []string {
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
