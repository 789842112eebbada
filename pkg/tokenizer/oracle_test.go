package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"
	"testing"
)

// words returns the normalised, pre-tokenized words of text (no added
// tokens, no WordPiece), what the tokenizers library's normalizer and
// pre_tokenizer produce.
func (t *Tokenizer) words(text string) []string {
	var w []string
	e := encoder{t: t, limit: 1 << 30, words: &w}
	e.segment(text)
	return w
}

// TestOracleDump compares words() with a dump made by the tokenizers
// library (M3E_ORACLE_DUMP: JSON lines {"cfg":{...},"text":...,"words":[...]}).
// It is a development check; the committed golden test covers CI.
func TestOracleDump(t *testing.T) {
	path := os.Getenv("M3E_ORACLE_DUMP")
	if path == "" {
		t.Skip("M3E_ORACLE_DUMP not set")
	}
	base := fixtureTokenizer(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	bad := 0
	for sc.Scan() {
		var rec struct {
			Cfg struct {
				Clean, Chinese, Lower bool
				Strip                 *bool
			}
			Text  string
			Words []string
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		tk := *base
		tk.clean, tk.chinese, tk.lower = rec.Cfg.Clean, rec.Cfg.Chinese, rec.Cfg.Lower
		tk.strip = rec.Cfg.Lower
		if rec.Cfg.Strip != nil {
			tk.strip = *rec.Cfg.Strip
		}
		got := tk.words(rec.Text)
		if !slices.Equal(got, rec.Words) && (len(got) != 0 || len(rec.Words) != 0) {
			bad++
			if bad < 400 {
				t.Errorf("%+v %+q: got %+q want %+q", rec.Cfg, rec.Text, got, rec.Words)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d mismatches", bad)
	}
}
