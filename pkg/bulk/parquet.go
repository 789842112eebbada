package bulk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/m3ectl/m3ectl/pkg/engine"
)

// Parquet through Apache Arrow's Go library (docs/DESIGN.md says why): the
// input is one string column of any Parquet file; the output has columns
// index (int64), text (string, with --include-text) and embedding
// (fixed_size_list<float32>[dim]), one row group per chunk.

// parquetSource reads one string column in record batches.
type parquetSource struct {
	path    string
	rr      pqarrow.RecordReader
	rows    int64
	read    int64
	pending []string
}

// parquetPanic turns a panic inside Arrow's reader (a corrupt file can
// reach one) into an error naming the file: bad input never crashes.
func parquetPanic(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: corrupt Parquet file: %v", path, r)
	}
}

func openParquetSource(path, column string) (src Source, closeFn func() error, err error) {
	defer parquetPanic(path, &err)
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	idx := sc.FieldIndices(column)
	if len(idx) == 0 {
		names := make([]string, 0, sc.NumFields())
		for _, f := range sc.Fields() {
			names = append(names, f.Name)
		}
		pf.Close()
		return nil, nil, columnError(path, column, names)
	}
	switch t := sc.Field(idx[0]).Type.ID(); t {
	case arrow.STRING, arrow.LARGE_STRING, arrow.BINARY, arrow.LARGE_BINARY:
	default:
		pf.Close()
		return nil, nil, fmt.Errorf("%s: column %q is %s, not a string column", path, column, sc.Field(idx[0]).Type)
	}
	// The leaf index of a top-level string column is its field's index
	// among the leaves; find it through the manifest.
	leaf := fr.Manifest.Fields[idx[0]].ColIndex
	rr, err := fr.GetRecordReader(context.Background(), []int{leaf}, nil)
	if err != nil {
		pf.Close()
		return nil, nil, fmt.Errorf("%s: column %q: %w", path, column, err)
	}
	s := &parquetSource{path: path, rr: rr, rows: pf.NumRows()}
	return s, func() error { rr.Release(); return pf.Close() }, nil
}

func (s *parquetSource) Next(max int) (texts []string, err error) {
	defer parquetPanic(s.path, &err)
	texts = make([]string, 0, min(max, 8192))
	take := func() {
		n := min(max-len(texts), len(s.pending))
		texts = append(texts, s.pending[:n]...)
		s.pending = s.pending[n:]
	}
	take()
	for len(texts) < max {
		if !s.rr.Next() {
			if err := s.rr.Err(); err != nil && !errors.Is(err, io.EOF) {
				return texts, fmt.Errorf("%s: %w", s.path, err)
			}
			break
		}
		rec := s.rr.RecordBatch()
		col := rec.Column(0)
		batch := make([]string, col.Len())
		for i := range batch {
			row := s.read + int64(i) + 1
			if col.IsNull(i) {
				return texts, fmt.Errorf("%s: row %d: the text is null", s.path, row)
			}
			var t string
			switch a := col.(type) {
			case *array.String:
				t = a.Value(i)
			case *array.LargeString:
				t = a.Value(i)
			case *array.Binary:
				t = string(a.Value(i))
			case *array.LargeBinary:
				t = string(a.Value(i))
			}
			if !utf8.ValidString(t) {
				return texts, fmt.Errorf("%s: row %d: %w", s.path, row, engine.ErrInvalidUTF8)
			}
			// Copy out of Arrow's buffers, which the next batch reuses.
			batch[i] = string([]byte(t))
		}
		s.read += int64(len(batch))
		s.pending = batch
		take()
	}
	if len(texts) == 0 {
		return nil, io.EOF
	}
	return texts, nil
}

// Progress counts rows for Parquet: its byte offsets are not sequential.
func (s *parquetSource) Progress() (int64, int64) { return s.read - int64(len(s.pending)), s.rows }

// parquetSink writes the embeddings file.
type parquetSink struct {
	out      *atomicFile
	fw       *pqarrow.FileWriter
	schema   *arrow.Schema
	withText bool
	dim      int
}

func newParquetSink(path string, dim int, withText bool) (*parquetSink, error) {
	out, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	fields := []arrow.Field{{Name: "index", Type: arrow.PrimitiveTypes.Int64}}
	if withText {
		fields = append(fields, arrow.Field{Name: "text", Type: arrow.BinaryTypes.String})
	}
	fields = append(fields, arrow.Field{Name: "embedding", Type: arrow.FixedSizeListOf(int32(dim), arrow.PrimitiveTypes.Float32)})
	schema := arrow.NewSchema(fields, nil)
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy), parquet.WithDictionaryDefault(false))
	fw, err := pqarrow.NewFileWriter(schema, out.w, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		out.abort()
		return nil, fmt.Errorf("parquet writer: %w", err)
	}
	return &parquetSink{out: out, fw: fw, schema: schema, withText: withText, dim: dim}, nil
}

func (s *parquetSink) Write(first int, texts []string, emb []float32, dim int) error {
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, s.schema)
	defer b.Release()
	n := len(texts)
	ib := b.Field(0).(*array.Int64Builder)
	ib.Reserve(n)
	for i := 0; i < n; i++ {
		ib.UnsafeAppend(int64(first + i))
	}
	f := 1
	if s.withText {
		b.Field(1).(*array.StringBuilder).AppendValues(texts, nil)
		f = 2
	}
	lb := b.Field(f).(*array.FixedSizeListBuilder)
	vb := lb.ValueBuilder().(*array.Float32Builder)
	vb.Reserve(n * dim)
	for i := 0; i < n; i++ {
		lb.Append(true)
	}
	vb.AppendValues(emb[:n*dim], nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	if err := s.fw.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", s.out.path, err)
	}
	return nil
}

func (s *parquetSink) Close() error {
	if err := s.fw.Close(); err != nil {
		s.out.abort()
		return fmt.Errorf("write %s: %w", s.out.path, err)
	}
	return s.out.commit()
}

func (s *parquetSink) Abort() { s.fw.Close(); s.out.abort() }
