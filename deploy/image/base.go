package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BaseKey names a debootstrap root by what goes into it, so that a cached
// tarball is reused only for the same release, packages and commands.
func (s Spec) BaseKey() string {
	h := sha256.Sum256([]byte(strings.Join([]string{Suite, "minbase", strings.Join(s.Packages, ","), SlimCommands(), s.UserCommands(), CleanCommands}, "\n")))
	return Suite + "-" + hex.EncodeToString(h[:6])
}

// CacheDir is where base tarballs are kept between runs: $M3ECTL_IMAGE_CACHE,
// else the user's cache folder.
func CacheDir() (string, error) {
	if d := os.Getenv("M3ECTL_IMAGE_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "m3ectl", "image"), nil
}

// BuildBase returns the tarball of the image's base root, making it when
// the cache lacks it: debootstrap's minbase variant of Suite with the
// spec's packages, made slim as Debian's slim images are (the content of
// debian:<suite>-slim plus what the Dockerfile's apt-get installs), then the
// spec's user commands and clean-up run in a chroot of it. /dev, /proc and /sys are left empty, as a
// container runtime fills them. Needs root and debootstrap.
func BuildBase(s Spec, cacheDir string, log *slog.Logger) (string, error) {
	out := filepath.Join(cacheDir, "base-"+s.BaseKey()+".tar")
	if _, err := os.Stat(out); err == nil {
		log.Info("base root from cache", "tar", out)
		return out, nil
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("debootstrap is not installed (make setup installs it): %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", err
	}
	work, err := os.MkdirTemp(cacheDir, "rootfs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "rootfs")
	steps := [][]string{
		{"debootstrap", "--variant=minbase", "--include=" + strings.Join(s.Packages, ","), Suite, root},
		{"chroot", root, "/bin/sh", "-c", SlimCommands()},
		{"chroot", root, "/bin/sh", "-c", s.UserCommands() + " && " + CleanCommands},
	}
	for _, step := range steps {
		log.Info("base root", "run", strings.Join(step, " "))
		cmd := exec.Command(step[0], step[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(step, " "), err, tail(b, 2000))
		}
	}
	tmp := out + ".tmp"
	tarCmd := exec.Command("tar", "--numeric-owner", "--xattrs", "-C", root,
		"--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "-cf", tmp, ".")
	if b, err := tarCmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("tar the base root: %v\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
