package serve

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// TEI's request inputs (docs/openapi.json@v1.9.3, kept in
// testdata/tei/openapi.json): `Input` is one InputType or a list of them,
// an InputType a string or a list of token ids, so a batch may mix texts
// and ids. serde's untagged enums try the single form first: a list of
// integers is one input given as ids.

// teiRow is one input: a text, or token ids when text is unset.
type teiRow struct {
	text  string
	ids   []int32
	isIDs bool
}

func parseTEIInputs(raw json.RawMessage) ([]teiRow, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, invalidf("missing field `inputs`")
	}
	if raw[0] == '"' {
		row, err := parseTEIRow(raw)
		return []teiRow{row}, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalidf("`inputs` must be a string, a list of token ids, or a list of those")
	}
	if len(list) == 0 {
		return nil, teiEmpty("`inputs` cannot be empty")
	}
	if f := bytes.TrimSpace(list[0]); len(f) > 0 && f[0] != '"' && f[0] != '[' {
		ids, err := tokenIDs(raw)
		if err != nil {
			return nil, invalidf("`inputs`: %v", err)
		}
		return []teiRow{{ids: ids, isIDs: true}}, nil
	}
	rows := make([]teiRow, len(list))
	for i, item := range list {
		row, err := parseTEIRow(item)
		if err != nil {
			return nil, invalidf("`inputs[%d]`: %v", i, err)
		}
		rows[i] = row
	}
	return rows, nil
}

func parseTEIRow(raw json.RawMessage) (teiRow, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return teiRow{}, invalidf("%v", err)
		}
		return teiRow{text: s}, nil
	}
	ids, err := tokenIDs(raw)
	if err != nil {
		return teiRow{}, err
	}
	return teiRow{ids: ids, isIDs: true}, nil
}

// teiEncoding turns rows into the token ids the batcher runs: texts are
// tokenised with [CLS] … [SEP] and cut to the model's window from the side
// truncation_direction names (TEI's default: right) when truncate is on;
// without truncation an over-long input is refused as TEI refuses it
// (core/src/tokenization.rs@v1.9.3: "`inputs` must have less than N
// tokens"). Token-id inputs are run as given. It returns the rows and the
// number of characters, TEI's x-compute-characters.
func teiEncoding(m *repository.Model, rows []teiRow, truncate *bool, direction string) ([][]int32, int, error) {
	cut := m.Truncates()
	if truncate != nil {
		cut = *truncate
	}
	left := false
	switch strings.ToLower(direction) {
	case "", "right":
	case "left":
		left = true
	default:
		return nil, 0, invalidf("unknown variant `%s`, expected `Left` or `Right` for `truncation_direction`", direction)
	}
	tok := m.Tokenizer()
	maxLen := tok.MaxLength()
	prefix, suffix := tok.Specials()
	out := make([][]int32, len(rows))
	chars := 0
	for i, r := range rows {
		if r.isIDs {
			if len(r.ids) == 0 {
				return nil, 0, teiEmpty("`inputs` cannot be empty")
			}
			out[i], chars = r.ids, chars+len(r.ids)
			continue
		}
		if r.text == "" {
			return nil, 0, teiEmpty("`inputs` cannot be empty")
		}
		if !utf8.ValidString(r.text) {
			return nil, 0, invalidf("input %d is not valid UTF-8", i)
		}
		chars += utf8.RuneCountInString(r.text)
		body := tok.EncodeBody(r.text)
		room := maxLen - len(prefix) - len(suffix)
		if len(body) > room {
			if !cut {
				return nil, 0, invalidf("`inputs` must have less than %d tokens. Given: %d", maxLen, len(body)+len(prefix)+len(suffix))
			}
			if left {
				body = body[len(body)-room:]
			} else {
				body = body[:room]
			}
		}
		ids := make([]int32, 0, len(body)+len(prefix)+len(suffix))
		ids = append(append(append(ids, prefix...), body...), suffix...)
		out[i] = ids
	}
	return out, chars, nil
}

// teiModel picks the model a TEI request is for. TEI serves one model and
// its requests name none; m3ectl takes an optional "model" field (TEI
// ignores unknown fields) and otherwise the only model served.
func (s *Server) teiModel(name string) (*repository.Model, error) {
	if name != "" {
		return s.repo.Model(name, "")
	}
	names := s.readyModelNames()
	switch len(names) {
	case 1:
		return s.repo.Model(names[0], "")
	case 0:
		return nil, errorf(kindUnavailable, "no model is ready")
	}
	return nil, invalidf("several models are served (%s); name one with \"model\"", strings.Join(names, ", "))
}
