package serve

import (
	"unicode/utf8"
)

// decodeOpenAI decodes an OpenAI embeddings request body: the usual shape
// in one pass without reflection (fastDecodeOpenAI), anything else
// through the general path, which gives every error its message.
func (s *Server) decodeOpenAI(body []byte) (openAIEmbeddingRequest, openAIInput, error) {
	l := s.cfg.Limits
	if req, in, ok := fastDecodeOpenAI(body, fastLimits{depth: l.MaxDepth, keys: l.MaxKeys,
		elements: maxBytesElements, stringBytes: s.cfg.MaxRequestBytes}); ok {
		return req, in, nil
	}
	return decodeOpenAIGeneral(body, s.openAIScanLimits())
}

// decodeOpenAIGeneral is the general path: every shape OpenAI's API
// takes, and every error with its message.
func decodeOpenAIGeneral(body []byte, scan jsonLimits) (openAIEmbeddingRequest, openAIInput, error) {
	var req openAIEmbeddingRequest
	if !utf8.Valid(body) {
		return req, openAIInput{}, invalidf("request JSON is not valid UTF-8")
	}
	if _, err := scanJSON(body, schemaOpenAI, scan); err != nil {
		return req, openAIInput{}, err
	}
	if err := strictUnmarshal(body, &req); err != nil {
		return req, openAIInput{}, err
	}
	in, err := openAIInputs(req.Input)
	return req, in, err
}

// fastDecodeOpenAI decodes the common OpenAI embeddings request,
//
//	{"input": "..." or ["...", ...], "model": "...", "encoding_format": "...",
//	 "dimensions": N, "user": "..."}
//
// (any of the keys, in any order, each at most once, spelled so), and
// returns ok only for a body that the general path (UTF-8 check, scanJSON
// with the OpenAI schema, encoding/json, openAIInputs) accepts and decodes
// to the same request; token ids, null values, other keys or spellings,
// a limit reached and every error go to the general path
// (FuzzFastOpenAIDecode compares the two). The request's Input is left
// empty: the texts are returned decoded.
func fastDecodeOpenAI(body []byte, lim fastLimits) (req openAIEmbeddingRequest, in openAIInput, ok bool) {
	if lim.depth < 2 || !utf8.Valid(body) {
		return req, in, false
	}
	d := fastDecoder{b: body, lim: lim}
	d.ws()
	hasInput := false
	str := func(dst *string) bool {
		s, ok := d.str()
		*dst = s
		return ok
	}
	text := func() bool {
		s, ok := d.text()
		if ok {
			in.texts = append(in.texts, s)
		}
		return ok
	}
	ok = d.object(1, func(key []byte) bool {
		switch string(key) {
		case "input":
			hasInput = true
			if d.peek() == '"' {
				in.texts = make([]string, 0, 1)
				return text()
			}
			return d.array(2, text) && len(in.texts) > 0
		case "model":
			return str(&req.Model)
		case "encoding_format":
			return str(&req.EncodingFormat)
		case "user":
			return str(&req.User)
		case "dimensions":
			v, ok := d.int64()
			n := int(v)
			req.Dimensions = &n
			return ok && int64(n) == v
		}
		return false
	})
	d.ws()
	if !ok || !hasInput || d.i != len(d.b) {
		return openAIEmbeddingRequest{}, openAIInput{}, false
	}
	return req, in, true
}
