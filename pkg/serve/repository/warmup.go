package repository

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// maxWarmupFile bounds a warmup data file; samples are a few texts.
const maxWarmupFile = 16 << 20

// readWarmupFile reads a model_warmup input_data_file from the model's
// warmup/ folder, as Triton does.
func readWarmupFile(dir, name string) ([]string, error) {
	if name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return nil, fmt.Errorf("input_data_file %q must be a file name inside the model's warmup folder", name)
	}
	p := filepath.Join(dir, "warmup", name)
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("input_data_file: %w", err)
	}
	if st.Size() > maxWarmupFile {
		return nil, fmt.Errorf("input_data_file %s is %d bytes, more than %d", p, st.Size(), maxWarmupFile)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("input_data_file: %w", err)
	}
	texts, err := parseWarmupStrings(b)
	if err != nil {
		return nil, fmt.Errorf("input_data_file %s: %w", p, err)
	}
	return texts, nil
}

// parseWarmupStrings decodes Triton's raw TYPE_STRING layout: each element
// is a 4-byte little-endian length followed by that many bytes.
func parseWarmupStrings(b []byte) ([]string, error) {
	var out []string
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("truncated length prefix at byte %d", off)
		}
		n := int(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if n > len(b)-off {
			return nil, fmt.Errorf("element at byte %d claims %d bytes, only %d left", off-4, n, len(b)-off)
		}
		out = append(out, string(b[off:off+n]))
		off += n
	}
	if len(out) == 0 {
		return nil, errors.New("no strings in the file")
	}
	return out, nil
}
