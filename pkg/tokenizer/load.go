package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrUnsupported marks a tokenizer configuration m3ectl cannot reproduce
// exactly (another model type, normaliser or pre-tokenizer); callers can tell
// it apart from a missing or unreadable file.
var ErrUnsupported = errors.New("unsupported tokenizer")

// bertSpecials are the special tokens transformers.BertTokenizer registers for
// a vocab.txt; the ones present in the vocabulary are matched verbatim in the
// input text.
var bertSpecials = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}

// FromVocabFile loads a BERT vocab.txt (one token per line, the line number is
// the id) and tokenises with o, wrapping sentences in [CLS] … [SEP].
func FromVocabFile(path string, o Options) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load vocabulary: %w", err)
	}
	defer f.Close()
	t, err := readVocab(f, o)
	if err != nil {
		return nil, fmt.Errorf("load vocabulary %s: %w", path, err)
	}
	return t, nil
}

// readVocab builds a tokenizer from vocab.txt content.
func readVocab(r io.Reader, o Options) (*Tokenizer, error) {
	vocab := make(map[string]int32, 32000)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		// Like the tokenizers library, drop the line ending (and any \r of a
		// CRLF file); a later duplicate wins, as in a Python dict.
		vocab[strings.TrimRight(sc.Text(), "\r\n")] = int32(n)
		n++
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("empty vocabulary")
	}
	v, err := newVocabulary(vocab, n, "[UNK]", "##", DefaultMaxInputCharsPerWord)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{vocab: v}
	for _, s := range bertSpecials {
		if id, ok := v.id(s); ok {
			t.addAdded(s, id)
		}
	}
	cls, okc := v.id("[CLS]")
	sep, oks := v.id("[SEP]")
	if !okc || !oks {
		return nil, errors.New("[CLS] or [SEP] is not in the vocabulary")
	}
	t.prefix, t.suffix = []int32{cls}, []int32{sep}
	t.applyOptions(o)
	return t, nil
}

// addAdded registers a token matched verbatim in raw text.
func (t *Tokenizer) addAdded(content string, id int32) {
	if content == "" {
		return
	}
	t.added = append(t.added, addedToken{content: content, id: id})
	t.addedFirst[content[0]] = true
	t.addedByte = -1
	for b, ok := range t.addedFirst {
		if ok && t.addedByte == -1 {
			t.addedByte = b
		} else if ok {
			t.addedByte = -1
			break
		}
	}
}

// Load reads a tokenizer from a vocab.txt, a tokenizer.json, or a model
// folder. In a folder tokenizer.json is preferred, else vocab.txt; either way
// tokenizer_config.json's do_lower_case, strip_accents,
// tokenize_chinese_chars and model_max_length override the defaults, as
// transformers does when it loads the folder.
func Load(path string) (*Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if !st.IsDir() {
		if strings.HasSuffix(strings.ToLower(path), ".json") {
			return FromTokenizerJSON(path)
		}
		return FromVocabFile(path, DefaultOptions())
	}
	cfg, err := readTokenizerConfig(filepath.Join(path, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	if p := filepath.Join(path, "tokenizer.json"); exists(p) {
		t, err := FromTokenizerJSON(p)
		if err != nil {
			if v := filepath.Join(path, "vocab.txt"); errors.Is(err, ErrUnsupported) && exists(v) {
				return nil, fmt.Errorf("%w; load %s instead to tokenise as plain BERT", err, v)
			}
			return nil, err
		}
		o := t.Options()
		cfg.apply(&o)
		t.applyOptions(o)
		return t, nil
	}
	if p := filepath.Join(path, "vocab.txt"); exists(p) {
		o := DefaultOptions()
		cfg.apply(&o)
		return FromVocabFile(p, o)
	}
	return nil, fmt.Errorf("load tokenizer: %s has neither tokenizer.json nor vocab.txt", path)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// tokenizerConfig holds the tokenizer_config.json keys that change BERT
// tokenisation; nil means the key is absent.
type tokenizerConfig struct {
	DoLowerCase          *bool    `json:"do_lower_case"`
	StripAccents         *bool    `json:"strip_accents"`
	TokenizeChineseChars *bool    `json:"tokenize_chinese_chars"`
	ModelMaxLength       *float64 `json:"model_max_length"`
}

// readTokenizerConfig reads path; a missing file is an empty configuration.
func readTokenizerConfig(path string) (tokenizerConfig, error) {
	var c tokenizerConfig
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("load tokenizer config: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("load tokenizer config %s: %w", path, err)
	}
	return c, nil
}

// maxSaneLength bounds model_max_length: transformers writes 1e30 for "no
// limit", which must not become the truncation length.
const maxSaneLength = 1 << 20

// apply overrides o with the keys present in c.
func (c tokenizerConfig) apply(o *Options) {
	if c.DoLowerCase != nil {
		o.Lower = *c.DoLowerCase
	}
	if c.StripAccents != nil {
		v := *c.StripAccents
		o.StripAccents = &v
	}
	if c.TokenizeChineseChars != nil {
		o.ChineseChars = *c.TokenizeChineseChars
	}
	if c.ModelMaxLength != nil && *c.ModelMaxLength > 0 && *c.ModelMaxLength < maxSaneLength {
		o.MaxLength = int(*c.ModelMaxLength)
	}
}

// FromTokenizerJSON loads a Hugging Face tokenizer.json with a WordPiece model.
// The BertNormalizer (clean_text, handle_chinese_chars, strip_accents,
// lowercase), BertPreTokenizer, WordPiece (unk_token,
// continuing_subword_prefix, max_input_chars_per_word), the post-processor's
// special tokens, added tokens and truncation max_length are honoured; other
// components are refused with ErrUnsupported rather than approximated.
func FromTokenizerJSON(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := parseTokenizerJSON(b)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

// tokenizerJSON is the subset of the tokenizers library's serialisation that
// BERT WordPiece tokenizers use.
type tokenizerJSON struct {
	Truncation *struct {
		MaxLength int `json:"max_length"`
	} `json:"truncation"`
	AddedTokens []struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		Normalized bool   `json:"normalized"`
	} `json:"added_tokens"`
	Normalizer    *normalizerJSON    `json:"normalizer"`
	PreTokenizer  *preTokenizerJSON  `json:"pre_tokenizer"`
	PostProcessor *postProcessorJSON `json:"post_processor"`
	Model         struct {
		Type                    string           `json:"type"`
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int              `json:"max_input_chars_per_word"`
		Vocab                   map[string]int32 `json:"vocab"`
	} `json:"model"`
}

// normalizerJSON is a BertNormalizer, or a Sequence wrapping one.
type normalizerJSON struct {
	Type               string            `json:"type"`
	CleanText          *bool             `json:"clean_text"`
	HandleChineseChars *bool             `json:"handle_chinese_chars"`
	StripAccents       *bool             `json:"strip_accents"`
	Lowercase          *bool             `json:"lowercase"`
	Normalizers        []*normalizerJSON `json:"normalizers"`
}

// preTokenizerJSON is a BertPreTokenizer, or a Sequence wrapping one.
type preTokenizerJSON struct {
	Type          string              `json:"type"`
	PreTokenizers []*preTokenizerJSON `json:"pretokenizers"`
}

// postProcessorJSON covers TemplateProcessing and BertProcessing /
// RobertaProcessing, the post-processors BERT tokenizers are saved with.
type postProcessorJSON struct {
	Type   string `json:"type"`
	Single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int32 `json:"ids"`
	} `json:"special_tokens"`
	CLS []json.RawMessage `json:"cls"` // ["[CLS]", 101]
	SEP []json.RawMessage `json:"sep"`
}

// parseTokenizerJSON builds a tokenizer from tokenizer.json content.
func parseTokenizerJSON(b []byte) (*Tokenizer, error) {
	var j tokenizerJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if j.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("%w: model type %q (m3ectl tokenises WordPiece only)", ErrUnsupported, j.Model.Type)
	}
	pre := j.PreTokenizer
	for pre != nil && pre.Type == "Sequence" && len(pre.PreTokenizers) == 1 {
		pre = pre.PreTokenizers[0]
	}
	if pre == nil || pre.Type != "BertPreTokenizer" {
		typ := "null"
		if pre != nil {
			typ = pre.Type
		}
		return nil, fmt.Errorf("%w: pre_tokenizer %s (m3ectl supports BertPreTokenizer)", ErrUnsupported, typ)
	}
	n := j.Normalizer
	for n != nil && n.Type == "Sequence" && len(n.Normalizers) <= 1 {
		if len(n.Normalizers) == 0 {
			n = nil // an empty sequence normalises nothing
			break
		}
		n = n.Normalizers[0]
	}
	var o Options // a null normalizer normalises nothing
	if n != nil {
		if n.Type != "BertNormalizer" {
			return nil, fmt.Errorf("%w: normalizer %q (m3ectl supports BertNormalizer)", ErrUnsupported, n.Type)
		}
		o = Options{Lower: orTrue(n.Lowercase), ChineseChars: orTrue(n.HandleChineseChars), CleanText: orTrue(n.CleanText), StripAccents: n.StripAccents}
	}
	if j.Truncation != nil {
		o.MaxLength = j.Truncation.MaxLength
	}
	unk, prefix := "[UNK]", "##"
	if j.Model.UnkToken != nil {
		unk = *j.Model.UnkToken
	}
	if j.Model.ContinuingSubwordPrefix != nil {
		prefix = *j.Model.ContinuingSubwordPrefix
	}
	size := 0
	for _, a := range j.AddedTokens {
		size = max(size, int(a.ID)+1)
	}
	v, err := newVocabulary(j.Model.Vocab, size, unk, prefix, j.Model.MaxInputCharsPerWord)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{vocab: v}
	for _, a := range j.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("added token %q has negative id %d", a.Content, a.ID)
		}
		if v.tokens[a.ID] == "" {
			v.tokens[a.ID] = a.Content
		}
		// Tokens with normalized=true would be matched after normalisation;
		// BERT's specials are all normalized=false.
		if !a.Normalized {
			t.addAdded(a.Content, a.ID)
		}
	}
	if t.prefix, t.suffix, err = j.PostProcessor.specials(v); err != nil {
		return nil, err
	}
	t.applyOptions(o)
	return t, nil
}

func orTrue(b *bool) bool { return b == nil || *b }

// specials returns the ids the post-processor puts before and after a single
// sentence.
func (p *postProcessorJSON) specials(v *vocabulary) (prefix, suffix []int32, err error) {
	if p == nil {
		return nil, nil, nil
	}
	switch p.Type {
	case "TemplateProcessing":
		seen := false
		for _, item := range p.Single {
			switch {
			case item.Sequence != nil:
				seen = true
			case item.SpecialToken != nil:
				st, ok := p.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, nil, fmt.Errorf("post_processor: special token %q has no ids", item.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || int(id) >= len(v.tokens) {
						return nil, nil, fmt.Errorf("post_processor: special token %q: id %d outside the vocabulary", item.SpecialToken.ID, id)
					}
				}
				if seen {
					suffix = append(suffix, st.IDs...)
				} else {
					prefix = append(prefix, st.IDs...)
				}
			}
		}
		return prefix, suffix, nil
	case "BertProcessing", "RobertaProcessing":
		cls, err := processingID(p.CLS, v)
		if err != nil {
			return nil, nil, fmt.Errorf("post_processor cls: %w", err)
		}
		sep, err := processingID(p.SEP, v)
		if err != nil {
			return nil, nil, fmt.Errorf("post_processor sep: %w", err)
		}
		return []int32{cls}, []int32{sep}, nil
	}
	return nil, nil, fmt.Errorf("%w: post_processor %q", ErrUnsupported, p.Type)
}

// processingID reads the id of a ["[CLS]", 101] pair.
func processingID(pair []json.RawMessage, v *vocabulary) (int32, error) {
	if len(pair) != 2 {
		return 0, errors.New("want [token, id]")
	}
	var id int32
	if err := json.Unmarshal(pair[1], &id); err != nil {
		return 0, fmt.Errorf("id: %w", err)
	}
	if id < 0 || int(id) >= len(v.tokens) {
		return 0, fmt.Errorf("id %d outside the vocabulary", id)
	}
	return id, nil
}
