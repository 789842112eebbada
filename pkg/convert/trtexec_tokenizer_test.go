package convert

import (
	"path/filepath"
	"testing"

	"github.com/m3ectl/m3ectl/pkg/tokenizer"
)

func loadTinyTokenizer(t *testing.T) *tokenizer.Tokenizer {
	t.Helper()
	tok, err := tokenizer.Load(filepath.Join(tinyDir, "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
