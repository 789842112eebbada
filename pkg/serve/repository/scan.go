package repository

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/m3ectl/m3ectl/pkg/engine"
	"github.com/m3ectl/m3ectl/pkg/tritonpb"
)

// ValidateName checks a model name from a request or a folder: it becomes a
// path under the repository root, so no separators, no "." or "..", no
// control characters, nothing hidden.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errorf(InvalidInput, "empty model name")
	case len(name) > 255:
		return errorf(InvalidInput, "model name of %d bytes is too long", len(name))
	case name == "." || name == ".." || strings.HasPrefix(name, "."):
		return errorf(InvalidInput, "invalid model name %q: it must not start with a dot", name)
	case strings.ContainsAny(name, `/\`):
		return errorf(InvalidInput, "invalid model name %q: it must not contain a path separator", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return errorf(InvalidInput, "invalid model name %q: control or invalid characters", name)
		}
	}
	return nil
}

// listModels returns the model folders under root: sub-folders with a
// valid name (config.pbtxt optional, as in Triton's auto-complete).
func listModels(root string) ([]string, error) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("read model repository %s: %w", root, err)
	}
	var names []string
	for _, e := range ents {
		if ValidateName(e.Name()) != nil {
			continue
		}
		if st, err := os.Stat(filepath.Join(root, e.Name())); err == nil && st.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// readConfig reads dir/config.pbtxt. A missing file gives an empty config
// (everything defaulted, name from the folder), like Triton's
// auto-complete for ONNX models. The name, when set, must match the folder.
func readConfig(dir, name string) (*tritonpb.ModelConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, "config.pbtxt"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &tritonpb.ModelConfig{Name: name}, nil
	case err != nil:
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := tritonpb.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.pbtxt"), err)
	}
	if cfg.GetName() == "" {
		cfg.Name = name
	}
	if cfg.GetName() != name {
		return nil, fmt.Errorf("config.pbtxt names the model %q but its folder is %q; they must match", cfg.GetName(), name)
	}
	return cfg, nil
}

// listVersions returns the numeric version folders of a model, ascending.
func listVersions(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read model folder: %w", err)
	}
	var vs []int64
	for _, e := range ents {
		v, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || v < 0 || strconv.FormatInt(v, 10) != e.Name() {
			continue
		}
		if st, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && st.IsDir() {
			vs = append(vs, v)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs, nil
}

// servedVersions applies the version policy to the versions on disk:
// latest (default, 1 version), all, or specific. A specific version with no
// folder is returned too, so that it is reported UNAVAILABLE, not ignored.
func servedVersions(p *tritonpb.ModelVersionPolicy, onDisk []int64) []int64 {
	switch {
	case p.GetAll() != nil:
		return onDisk
	case p.GetSpecific() != nil:
		vs := append([]int64(nil), p.GetSpecific().GetVersions()...)
		sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
		return compactSorted(vs)
	default:
		n := 1
		if p.GetLatest() != nil && p.GetLatest().GetNumVersions() > 0 {
			n = int(p.GetLatest().GetNumVersions())
		}
		if n > len(onDisk) {
			n = len(onDisk)
		}
		return onDisk[len(onDisk)-n:]
	}
}

func compactSorted(vs []int64) []int64 {
	out := vs[:0]
	for i, v := range vs {
		if i == 0 || v != vs[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// resolveVersion finds the model in a version folder: model.onnx (or an
// HF/sentence-transformers layout) in the folder itself, else in its one
// sub-folder that holds a model. A model.plan alone is reported as needing
// TensorRT.
func resolveVersion(vdir string) (*engine.Model, error) {
	m, err := engine.ResolveModel(vdir)
	if err == nil {
		return m, nil
	}
	ents, rerr := os.ReadDir(vdir)
	if rerr != nil {
		return nil, fmt.Errorf("read version folder: %w", rerr)
	}
	var found []*engine.Model
	for _, e := range ents {
		sub := filepath.Join(vdir, e.Name())
		if st, err := os.Stat(sub); err != nil || !st.IsDir() {
			continue
		}
		if sm, err := engine.ResolveModel(sub); err == nil {
			found = append(found, sm)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return nil, fmt.Errorf("version folder %s holds %d models in sub-folders; keep one", vdir, len(found))
	}
	if _, serr := os.Stat(filepath.Join(vdir, "model.plan")); serr == nil {
		return nil, fmt.Errorf("version folder %s has a TensorRT model.plan but no model.onnx; m3ectl serve runs ONNX models (put model.onnx beside the plan, or use m3ectl serve --triton)", vdir)
	}
	return nil, err
}

// findTokenizer returns what tokenizer.Load should read for a model: the
// one ResolveModel found, else vocab.txt / tokenizer.json in the version
// folder or the model folder (the article keeps vocab.txt beside model.py).
func findTokenizer(m *engine.Model, dirs ...string) (string, error) {
	if m.Tokenizer != "" {
		return m.Tokenizer, nil
	}
	for _, d := range dirs {
		for _, f := range []string{"tokenizer.json", "vocab.txt"} {
			if st, err := os.Stat(filepath.Join(d, f)); err == nil && !st.IsDir() {
				return filepath.Join(d, f), nil
			}
		}
	}
	return "", fmt.Errorf("no tokenizer: put vocab.txt or tokenizer.json in %s", strings.Join(dirs, " or "))
}

// fingerprint summarises a model folder (config, version folders, file
// names, sizes and modification times, symlinks followed, 4 levels deep)
// so that poll mode and Load can tell a changed model from an unchanged one
// without reading weights.
func fingerprint(dir string) string {
	h := fnv.New64a()
	var walk func(p, rel string, depth int)
	walk = func(p, rel string, depth int) {
		ents, err := os.ReadDir(p)
		if err != nil {
			fmt.Fprintf(h, "!%s:%v\n", rel, err)
			return
		}
		for _, e := range ents {
			sub, subRel := filepath.Join(p, e.Name()), rel+"/"+e.Name()
			st, err := os.Stat(sub)
			if err != nil {
				fmt.Fprintf(h, "!%s\n", subRel)
				continue
			}
			if st.IsDir() {
				fmt.Fprintf(h, "d %s\n", subRel)
				if depth < 4 {
					walk(sub, subRel, depth+1)
				}
				continue
			}
			fmt.Fprintf(h, "f %s %d %d\n", subRel, st.Size(), st.ModTime().UnixNano())
			if e.Name() == "config.pbtxt" && st.Size() < 1<<20 {
				if b, err := os.ReadFile(sub); err == nil {
					h.Write(b)
				}
			}
		}
	}
	walk(dir, "", 0)
	return strconv.FormatUint(h.Sum64(), 16)
}
