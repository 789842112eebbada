package tokenizer

// Encoding is one tokenised text as m3ectl tokenize prints it.
type Encoding struct {
	IDs    []int32  `json:"ids"`
	Tokens []string `json:"tokens"`
}

// Encoding tokenises text and pairs the ids with their tokens, the record
// m3ectl tokenize prints.
func (t *Tokenizer) Encoding(text string) Encoding {
	ids := t.Encode(text)
	return Encoding{IDs: ids, Tokens: t.Tokens(ids)}
}
