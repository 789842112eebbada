// Command m3ectl-image makes m3ectl's container images from deploy/image's
// spec: `dockerfiles` writes deploy/Dockerfile and deploy/Dockerfile.cuda,
// `build` assembles the CPU image as an OCI archive without running a
// container (debootstrap base, then the spec's files and configuration).
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/m3ectl/m3ectl/deploy/image"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "m3ectl-image: "+err.Error())
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: m3ectl-image dockerfiles|build [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	root := fs.String("root", "..", "repository root")
	bin := fs.String("bin", "", "m3ectl binary to put in the image (build)")
	ort := fs.String("ort", "", "libonnxruntime.so from scripts/setup-ort.sh (build)")
	out := fs.String("out", "", "OCI archive to write (build)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "dockerfiles":
		for _, s := range []image.Spec{image.CPU(), image.CUDA()} {
			files, err := s.ModelFiles(*root)
			if err != nil {
				return err
			}
			if err := writeFile(filepath.Join(*root, "deploy", image.DockerfileName(s)), image.Dockerfile(s, files)); err != nil {
				return err
			}
		}
		return nil
	case "build":
		if *bin == "" || *ort == "" || *out == "" {
			return fmt.Errorf("build needs --bin, --ort and --out")
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		s := image.CPU()
		cache, err := image.CacheDir()
		if err != nil {
			return err
		}
		base, err := image.BuildBase(s, cache, log)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		res, err := image.BuildArchive(s, image.Inputs{Root: *root, Binary: *bin, ORTLib: *ort, BaseTar: base}, *out)
		if err != nil {
			return err
		}
		fmt.Printf("%s  m3ectl/m3ectl:%s  %s  layers %.1f MB compressed, %.1f MB unpacked\n",
			res.Path, s.Tag(), res.Digest, float64(res.CompressedBytes)/1e6, float64(res.UncompressedBytes)/1e6)
		return nil
	}
	return fmt.Errorf("unknown command %q (dockerfiles or build)", args[0])
}

// writeFile writes through a temporary file and a rename.
func writeFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
