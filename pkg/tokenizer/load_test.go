package tokenizer

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// smallTokenizerJSON is a tokenizer.json for a tiny vocabulary, laid out as
// the tokenizers library saves BERT tokenizers; edit adjusts it per test.
func smallTokenizerJSON(t *testing.T, edit func(m map[string]any)) string {
	t.Helper()
	vocab := map[string]any{"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4,
		"hello": 5, "Hello": 6, "##lo": 7, "hel": 8, "@@lo": 9, "<unk>": 10, "!": 11, "é": 12, "e": 13}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "special": true, "normalized": false}
	}
	m := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"added_tokens": []any{special(0, "[PAD]"), special(1, "[UNK]"), special(2, "[CLS]"), special(3, "[SEP]"), special(4, "[MASK]")},
		"normalizer": map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
			"strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}}},
			"special_tokens": map[string]any{"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{2}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{3}, "tokens": []string{"[SEP]"}}}},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": vocab},
	}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenizerJSONSettings(t *testing.T) {
	norm := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["normalizer"].(map[string]any)[k] = v }
	}
	model := func(k string, v any) func(map[string]any) {
		return func(m map[string]any) { m["model"].(map[string]any)[k] = v }
	}
	dropHello := func(m map[string]any) { delete(m["model"].(map[string]any)["vocab"].(map[string]any), "hello") }
	tests := []struct {
		name string
		edit func(map[string]any)
		text string
		want []string // all tokens, specials included
	}{
		{"template processing", nil, "Hello!", []string{"[CLS]", "hello", "!", "[SEP]"}},
		{"lowercase false keeps case", norm("lowercase", false), "Hello", []string{"[CLS]", "Hello", "[SEP]"}},
		{"lowercase false leaves accents", norm("lowercase", false), "é", []string{"[CLS]", "é", "[SEP]"}},
		{"strip_accents true without lowercase", func(m map[string]any) { norm("lowercase", false)(m); norm("strip_accents", true)(m) }, "é", []string{"[CLS]", "e", "[SEP]"}},
		{"strip_accents false with lowercase", norm("strip_accents", false), "É", []string{"[CLS]", "é", "[SEP]"}},
		{"null normalizer does nothing", func(m map[string]any) { m["normalizer"] = nil }, "Hello", []string{"[CLS]", "Hello", "[SEP]"}},
		{"sequence of one BertNormalizer and one BertPreTokenizer", func(m map[string]any) {
			norm("lowercase", false)(m)
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{m["normalizer"]}}
			m["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{m["pre_tokenizer"]}}
		}, "Hello!", []string{"[CLS]", "Hello", "!", "[SEP]"}},
		{"default continuation prefix", dropHello, "hello", []string{"[CLS]", "hel", "##lo", "[SEP]"}},
		{"continuing_subword_prefix", func(m map[string]any) { dropHello(m); model("continuing_subword_prefix", "@@")(m) }, "hello", []string{"[CLS]", "hel", "@@lo", "[SEP]"}},
		{"max_input_chars_per_word", model("max_input_chars_per_word", 4), "hello hel", []string{"[CLS]", "[UNK]", "hel", "[SEP]"}},
		{"unk_token", model("unk_token", "<unk>"), "zzz", []string{"[CLS]", "<unk>", "[SEP]"}},
		{"BertProcessing", func(m map[string]any) {
			m["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}}
		}, "hello", []string{"[CLS]", "hello", "[SEP]"}},
		{"no post-processor adds no specials", func(m map[string]any) { m["post_processor"] = nil }, "hello", []string{"hello"}},
		{"truncation max_length", func(m map[string]any) { m["truncation"] = map[string]any{"max_length": 3} }, "hello hello", []string{"[CLS]", "hello", "[SEP]"}},
		{"added tokens split raw text", nil, "hel[MASK]lo", []string{"[CLS]", "hel", "[MASK]", "[UNK]", "[SEP]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := FromTokenizerJSON(smallTokenizerJSON(t, tc.edit))
			if err != nil {
				t.Fatal(err)
			}
			if got := tok.Tokens(tok.Encode(tc.text)); !slices.Equal(got, tc.want) {
				t.Errorf("Encode(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

func TestTokenizerJSONRefusals(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(map[string]any)
		unsupported bool
		msg         string
	}{
		{"BPE model", func(m map[string]any) { m["model"].(map[string]any)["type"] = "BPE" }, true, `model type "BPE"`},
		{"other pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }, true, "pre_tokenizer Whitespace"},
		{"missing pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = nil }, true, "pre_tokenizer null"},
		{"other normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }, true, `normalizer "Lowercase"`},
		{"longer normalizer sequence", func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFD"}, map[string]any{"type": "Lowercase"}}}
		}, true, `normalizer "Sequence"`},
		{"other post-processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "ByteLevel"} }, true, `post_processor "ByteLevel"`},
		{"unk token missing", func(m map[string]any) { m["model"].(map[string]any)["unk_token"] = "<nope>" }, false, `"<nope>" is not in the vocabulary`},
		{"special id outside vocabulary", func(m map[string]any) {
			m["post_processor"] = map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 99}, "cls": []any{"[CLS]", 2}}
		}, false, "outside the vocabulary"},
		{"huge id", func(m map[string]any) { m["model"].(map[string]any)["vocab"].(map[string]any)["x"] = 1 << 30 }, false, "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromTokenizerJSON(smallTokenizerJSON(t, tc.edit))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrUnsupported) != tc.unsupported || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want unsupported=%v containing %q", err, tc.unsupported, tc.msg)
			}
		})
	}
}

func TestLoadFolder(t *testing.T) {
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vocab, err := os.ReadFile(writeVocab(t, "Hello", "hello", "!"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("vocab.txt with do_lower_case false", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "vocab.txt", string(vocab))
		write(t, dir, "tokenizer_config.json", `{"do_lower_case": false, "model_max_length": 1e30}`)
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokensOf(tok, "Hello"); !slices.Equal(got, []string{"Hello"}) {
			t.Errorf("got %q", got)
		}
		if tok.MaxLength() != 512 {
			t.Errorf("model_max_length 1e30 gave MaxLength %d, want 512", tok.MaxLength())
		}
	})
	t.Run("vocab.txt without config lower-cases", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "vocab.txt", string(vocab))
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokensOf(tok, "Hello"); !slices.Equal(got, []string{"hello"}) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("tokenizer_config overrides tokenizer.json", func(t *testing.T) {
		dir := filepath.Dir(smallTokenizerJSON(t, nil))
		write(t, dir, "tokenizer_config.json", `{"do_lower_case": false, "model_max_length": 128}`)
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokensOf(tok, "Hello"); !slices.Equal(got, []string{"Hello"}) {
			t.Errorf("got %q", got)
		}
		if tok.MaxLength() != 128 {
			t.Errorf("MaxLength %d, want 128", tok.MaxLength())
		}
	})
	t.Run("empty folder", func(t *testing.T) {
		if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "neither tokenizer.json nor vocab.txt") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		if _, err := Load(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want not exist", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "vocab.txt", string(vocab))
		write(t, dir, "tokenizer_config.json", `{"do_lower_case": "yes"}`)
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("vocabulary without [UNK]", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "vocab.txt", "[CLS]\n[SEP]\na\n")
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "[UNK]") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestWithLowercase(t *testing.T) {
	tok, err := FromVocabFile(writeVocab(t, "Café", "cafe"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := tokensOf(tok.WithLowercase(false), "Café"); !slices.Equal(got, []string{"Café"}) {
		t.Errorf("WithLowercase(false): %q", got)
	}
	if got := tokensOf(tok, "Café"); !slices.Equal(got, []string{"cafe"}) {
		t.Errorf("original changed: %q", got)
	}
	f := false
	o := DefaultOptions()
	o.StripAccents = &f
	tok2, err := FromVocabFile(writeVocab(t, "Café", "cafe", "café"), o)
	if err != nil {
		t.Fatal(err)
	}
	if got := tokensOf(tok2.WithLowercase(true), "CAFÉ"); !slices.Equal(got, []string{"café"}) {
		t.Errorf("explicit strip_accents=false lost: %q", got)
	}
}

func TestVocabFileCRLF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "vocab.txt")
	if err := os.WriteFile(p, []byte("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\nhi\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := FromVocabFile(p, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("hi"); !slices.Equal(got, []int32{2, 4, 3}) {
		t.Errorf("Encode = %v", got)
	}
}
