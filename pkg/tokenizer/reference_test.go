package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// fixture is the bundled m3e-tiny model folder.
var fixture = filepath.Join("..", "..", "testdata", "m3e-tiny")

// referenceCase is one entry of reference.json: ids from
// transformers.BertTokenizer(vocab.txt, max_length=512, truncation=True).
type referenceCase struct {
	Text     string  `json:"text"`
	InputIDs []int32 `json:"input_ids"`
}

var loadReference = sync.OnceValues(func() ([]referenceCase, error) {
	b, err := os.ReadFile(filepath.Join(fixture, "reference.json"))
	if err != nil {
		return nil, err
	}
	var r struct {
		Cases []referenceCase `json:"cases"`
	}
	err = json.Unmarshal(b, &r)
	return r.Cases, err
})

func reference(t testing.TB) []referenceCase {
	t.Helper()
	cases, err := loadReference()
	if err != nil {
		t.Fatalf("reference.json: %v", err)
	}
	if len(cases) < 30 {
		t.Fatalf("reference.json has %d cases, want 30", len(cases))
	}
	return cases
}

// loaders are the three ways a user points m3ectl at the same tokenizer.
var loaders = []struct {
	name string
	load func() (*Tokenizer, error)
}{
	{"vocab.txt", func() (*Tokenizer, error) {
		return FromVocabFile(filepath.Join(fixture, "vocab.txt"), DefaultOptions())
	}},
	{"tokenizer.json", func() (*Tokenizer, error) { return FromTokenizerJSON(filepath.Join(fixture, "hf", "tokenizer.json")) }},
	{"hf folder", func() (*Tokenizer, error) { return Load(filepath.Join(fixture, "hf")) }},
	{"Load vocab.txt", func() (*Tokenizer, error) { return Load(filepath.Join(fixture, "vocab.txt")) }},
}

var vocabTokenizer = sync.OnceValues(func() (*Tokenizer, error) {
	return FromVocabFile(filepath.Join(fixture, "vocab.txt"), DefaultOptions())
})

// fixtureTokenizer is the vocab.txt tokenizer with default options, shared
// by the tests (it is immutable).
func fixtureTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := vocabTokenizer()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestReferenceIDs(t *testing.T) {
	cases := reference(t)
	for _, l := range loaders {
		t.Run(l.name, func(t *testing.T) {
			tok, err := l.load()
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.VocabSize(); got != 21128 {
				t.Errorf("VocabSize = %d, want 21128", got)
			}
			for i, c := range cases {
				got := tok.Encode(c.Text)
				if !slices.Equal(got, c.InputIDs) {
					t.Errorf("case %d %q:\n got %v %q\nwant %v %q", i, c.Text, got, tok.Tokens(got), c.InputIDs, tok.Tokens(c.InputIDs))
				}
			}
		})
	}
}
