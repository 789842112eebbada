package triton

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

type writer struct {
	root string
	res  *RepoResult
}

// model writes one model folder. Every file goes through a temporary name
// in its own folder and is renamed into place, so an interrupted run never
// leaves a half-written file under the name Triton reads.
func (w *writer) model(m *plannedModel) error {
	dir := filepath.Join(w.root, m.cfg.Name)
	text, err := tritonpb.FormatConfig(m.cfg)
	if err != nil {
		return err
	}
	out := map[string]func(io.Writer) error{
		"config.pbtxt": func(wr io.Writer) error { _, err := wr.Write(text); return err },
	}
	for name, src := range m.files {
		out[name] = func(wr io.Writer) error {
			in, err := os.Open(src)
			if err != nil {
				return err
			}
			defer in.Close()
			_, err = io.Copy(wr, in)
			return err
		}
	}
	for name, b := range m.gen {
		out[name] = func(wr io.Writer) error { _, err := wr.Write(b); return err }
	}
	if err := os.MkdirAll(filepath.Join(dir, fmt.Sprint(m.version)), 0o755); err != nil {
		return fmt.Errorf("repo: %w", err)
	}
	for _, name := range sortedKeys(out) {
		dst := filepath.Join(dir, name)
		if err := writeAtomic(dst, out[name]); err != nil {
			return fmt.Errorf("repo: write %s: %w", dst, err)
		}
		w.res.Files = append(w.res.Files, dst)
	}
	return nil
}

func writeAtomic(dst string, fill func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
