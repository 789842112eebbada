package serve

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
)

// openAIInput is a decoded `input`: texts, or rows of token ids. OpenAI's
// embeddings API takes a string, a list of strings, a list of integers (one
// input given as token ids) or a list of such lists
// (openai-openapi's CreateEmbeddingRequest.input).
type openAIInput struct {
	texts []string
	ids   [][]int32
}

func (in openAIInput) len() int { return len(in.texts) + len(in.ids) }

// openAIInputs reads `input` in any of OpenAI's four forms.
func openAIInputs(raw json.RawMessage) (openAIInput, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return openAIInput{}, withParam("input", invalidf("input is required: a string, a list of strings, or token ids"))
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return openAIInput{}, withParam("input", invalidf("input: %v", err))
		}
		return openAIInput{texts: []string{s}}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return openAIInput{}, withParam("input", invalidf("input must be a string, a list of strings, a list of token ids or a list of lists of token ids"))
	}
	if len(list) == 0 {
		return openAIInput{}, withParam("input", invalidf("input is an empty list"))
	}
	switch first := list[0]; {
	case len(first) > 0 && first[0] == '"':
		texts := make([]string, len(list))
		for i, item := range list {
			if len(item) == 0 || item[0] != '"' {
				return openAIInput{}, withParam("input", invalidf("input[%d] is not a string; a list must hold only strings or only token ids", i))
			}
			if err := json.Unmarshal(item, &texts[i]); err != nil {
				return openAIInput{}, withParam("input", invalidf("input[%d]: %v", i, err))
			}
		}
		return openAIInput{texts: texts}, nil
	case len(first) > 0 && first[0] == '[':
		rows := make([][]int32, len(list))
		for i, item := range list {
			row, err := tokenIDs(item)
			if err != nil {
				return openAIInput{}, withParam("input", invalidf("input[%d]: %v", i, err))
			}
			rows[i] = row
		}
		return openAIInput{ids: rows}, nil
	default:
		row, err := tokenIDs(raw)
		if err != nil {
			return openAIInput{}, withParam("input", invalidf("input: %v", err))
		}
		return openAIInput{ids: [][]int32{row}}, nil
	}
}

// tokenIDs reads a non-empty JSON list of non-negative integers that fit an
// int32 token id.
func tokenIDs(raw json.RawMessage) ([]int32, error) {
	var nums []json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&nums); err != nil {
		return nil, invalidf("not a list of token ids")
	}
	if len(nums) == 0 {
		return nil, invalidf("an empty list of token ids")
	}
	ids := make([]int32, len(nums))
	for i, n := range nums {
		v, err := n.Int64()
		if err != nil || v < 0 || v > math.MaxInt32 {
			return nil, invalidf("token id %s at %d is not a non-negative integer", n, i)
		}
		ids[i] = int32(v)
	}
	return ids, nil
}

// handleOpenAIModel is GET /v1/models/{id}: the model object, or OpenAI's
// 404 model_not_found.
func (s *Server) handleOpenAIModel(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	for _, n := range s.readyModelNames() {
		if n == id {
			return writeJSON(w, http.StatusOK, openAIModel{ID: n, Object: "model", OwnedBy: serverName})
		}
	}
	return withParam("model", errorf(kindNotFound, "The model `%s` does not exist or is not ready", id))
}
