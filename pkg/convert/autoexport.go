package convert

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// Serving or embedding a Hugging Face folder that has only its checkpoint
// (model.safetensors or pytorch_model.bin, as downloaded) with the ONNX
// Runtime engine: the folder is exported to ONNX once, as `m3ectl export`
// does, and the graph is cached so that later starts reuse it.

// exportFormat changes when Export writes different graphs for the same
// checkpoint, so that older cached exports are not reused.
const exportFormat = "export-v1"

var autoExportMu sync.Mutex // one export at a time per process; instances share it

// AutoExport returns an ONNX graph for m: m.ONNX when the folder has one,
// else the cached export of its checkpoint, exporting it first when there
// is none. The cache is $XDG_CACHE_HOME/m3ectl/onnx/<name>-<key>/ (by
// default ~/.cache/m3ectl/onnx), or, when that cannot be written, a
// .m3ectl-onnx folder inside the model folder. The key covers the folder's
// path, the checkpoint's and config's size and time, and the export
// format, so a changed checkpoint is exported again. One log line says
// which graph is used.
func AutoExport(m *engine.Model, log *slog.Logger) (string, error) {
	if m.ONNX != "" {
		return m.ONNX, nil
	}
	if m.Weights == "" {
		return "", fmt.Errorf("model %s has no ONNX file and no checkpoint (model.safetensors or pytorch_model.bin) to export one from", m.Path)
	}
	if log == nil {
		log = slog.Default()
	}
	autoExportMu.Lock()
	defer autoExportMu.Unlock()
	key, err := exportKey(m)
	if err != nil {
		return "", err
	}
	var errs []string
	for _, root := range exportCacheRoots(m) {
		dir := filepath.Join(root, key)
		out := filepath.Join(dir, "model.onnx")
		if isRegular(out) {
			log.Info("using the cached ONNX export of the checkpoint", "model", m.Dir, "onnx", out)
			return out, nil
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		tmp, err := os.MkdirTemp(root, "."+key+"-*")
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		start := time.Now()
		res, err := Export(m.Dir, ExportOptions{Out: filepath.Join(tmp, "model.onnx"), Pooling: "auto"})
		if err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("export %s to ONNX for the cpu engine: %w", m.Dir, err)
		}
		// The folder appears whole or not at all.
		if err := os.Rename(tmp, dir); err != nil {
			os.RemoveAll(tmp)
			if !isRegular(out) {
				errs = append(errs, err.Error())
				continue
			}
		}
		log.Info("exported the Hugging Face checkpoint to ONNX for the cpu engine (cached for the next start)",
			"model", m.Dir, "checkpoint", filepath.Base(res.Weights), "onnx", out, "took", time.Since(start).Round(time.Millisecond))
		return out, nil
	}
	return "", fmt.Errorf("model %s has no ONNX file and no writable cache for an export: %s", m.Path, strings.Join(errs, "; "))
}

// exportCacheRoots lists where exports are cached, preferred first.
func exportCacheRoots(m *engine.Model) []string {
	var roots []string
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		roots = append(roots, filepath.Join(d, "m3ectl", "onnx"))
	} else if home, err := os.UserHomeDir(); err == nil {
		roots = append(roots, filepath.Join(home, ".cache", "m3ectl", "onnx"))
	}
	return append(roots, filepath.Join(m.Dir, ".m3ectl-onnx"))
}

// exportKey names the export of m's checkpoint as it is now.
func exportKey(m *engine.Model) (string, error) {
	abs, err := filepath.Abs(m.Dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintln(h, exportFormat, abs)
	for _, f := range []string{m.Weights, m.HFConfig, filepath.Join(m.Dir, "modules.json"), filepath.Join(m.Dir, "1_Pooling", "config.json")} {
		if f == "" {
			continue
		}
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintln(h, f, st.Size(), st.ModTime().UnixNano())
		}
	}
	name := filepath.Base(abs)
	if strings.EqualFold(name, "hf") {
		name = filepath.Base(filepath.Dir(abs))
	}
	return name + "-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
