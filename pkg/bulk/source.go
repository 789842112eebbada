package bulk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// Input formats.
const (
	FormatText    = "text"    // one text per line
	FormatJSONL   = "jsonl"   // {"text": "..."} per line
	FormatParquet = "parquet" // a string column of a Parquet file
)

// InputFormat picks the input format of path: .parquet and .jsonl (or
// .ndjson) by extension, plain text lines otherwise.
func InputFormat(path string) string {
	p := strings.ToLower(path)
	switch {
	case strings.HasSuffix(p, ".parquet"):
		return FormatParquet
	case strings.HasSuffix(p, ".jsonl"), strings.HasSuffix(p, ".ndjson"):
		return FormatJSONL
	}
	return FormatText
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// lineSource reads text lines or JSON lines through engine.TextScanner, so
// the CLI's one reading of texts (UTF-8 checks, line numbers in errors)
// holds here too.
type lineSource struct {
	sc    *engine.TextScanner
	cr    *countingReader
	total int64
}

// NewLineSource reads r (named name in errors; total bytes, 0 if unknown)
// as plain lines or, with jsonl, JSON lines.
func NewLineSource(r io.Reader, name string, jsonl bool, total int64) Source {
	cr := &countingReader{r: r}
	return &lineSource{sc: engine.NewTextScanner(cr, name, jsonl), cr: cr, total: total}
}

func (s *lineSource) Next(max int) ([]string, error) {
	texts := make([]string, 0, min(max, 4096))
	for len(texts) < max && s.sc.Scan() {
		texts = append(texts, s.sc.Text())
	}
	if err := s.sc.Err(); err != nil {
		return texts, err
	}
	if len(texts) == 0 {
		return nil, io.EOF
	}
	return texts, nil
}

func (s *lineSource) Progress() (int64, int64) { return s.cr.n.Load(), s.total }

// OpenSource opens path in format (InputFormat's names); textColumn is the
// Parquet column to read. The returned function closes the file.
func OpenSource(path, format, textColumn string) (Source, func() error, error) {
	if format == FormatParquet {
		return openParquetSource(path, textColumn)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	var total int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		total = st.Size()
	}
	return NewLineSource(f, path, format == FormatJSONL, total), f.Close, nil
}

// SliceSource yields fixed texts (command-line arguments, tests).
type SliceSource struct {
	Texts []string
	next  int
}

// Next implements Source.
func (s *SliceSource) Next(max int) ([]string, error) {
	if s.next >= len(s.Texts) {
		return nil, io.EOF
	}
	hi := min(s.next+max, len(s.Texts))
	out := s.Texts[s.next:hi]
	s.next = hi
	return out, nil
}

// Progress implements Source, counting texts rather than bytes.
func (s *SliceSource) Progress() (int64, int64) { return int64(s.next), int64(len(s.Texts)) }

var errNoColumn = errors.New("no such column")

func columnError(path, col string, names []string) error {
	return fmt.Errorf("%s: %w %q (columns: %s); pass --text-column", path, errNoColumn, col, strings.Join(names, ", "))
}
