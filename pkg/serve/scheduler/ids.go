package scheduler

import (
	"context"
	"time"
)

// vocabSizer is the part of the tokenizer that bounds token ids;
// *tokenizer.Tokenizer has it.
type vocabSizer interface{ VocabSize() int }

// InferIDs embeds rows that are already token ids of the model's vocabulary
// (OpenAI's token-id inputs; TEI's routes tokenise and truncate themselves).
// The ids are run as given: no [CLS] or [SEP] is added. A row longer than the encoder's MaxLength is cut when
// truncation is on, refused otherwise; ids outside the vocabulary are refused.
func (s *Scheduler) InferIDs(ctx context.Context, rows [][]int32) ([]float32, int, error) {
	arrived := time.Now()
	req, err := s.prepareIDs(ctx, rows)
	return s.submit(req, err, arrived)
}

func (s *Scheduler) prepareIDs(ctx context.Context, rows [][]int32) (*request, error) {
	if len(rows) == 0 {
		return nil, Errorf(InvalidInput, "the request has no inputs")
	}
	if s.cfg.MaxBatchSize > 0 && len(rows) > s.cfg.MaxBatchSize {
		return nil, Errorf(InvalidInput, "the request has %d inputs, more than model %s's max_batch_size %d", len(rows), s.cfg.Name, s.cfg.MaxBatchSize)
	}
	if len(rows) > s.cfg.MaxQueueRows {
		return nil, Errorf(InvalidInput, "the request has %d inputs, more than model %s's queue holds (%d)", len(rows), s.cfg.Name, s.cfg.MaxQueueRows)
	}
	vocab := 0
	if v, ok := s.enc.(vocabSizer); ok {
		vocab = v.VocabSize()
	}
	maxLen := s.enc.MaxLength()
	req := &request{ctx: ctx, offsets: make([]int32, 1, len(rows)+1), done: make(chan struct{})}
	for i, r := range rows {
		if len(r) == 0 {
			return nil, Errorf(InvalidInput, "input %d has no token ids", i)
		}
		if maxLen > 0 && len(r) > maxLen {
			if !s.cfg.Truncate {
				return nil, Errorf(InvalidInput, "input %d has %d token ids, more than model %s's %d-token window, and truncation is off", i, len(r), s.cfg.Name, maxLen)
			}
			r = r[:maxLen]
		}
		for _, id := range r {
			if id < 0 || (vocab > 0 && int(id) >= vocab) {
				return nil, Errorf(InvalidInput, "input %d: token id %d is outside model %s's vocabulary of %d", i, id, s.cfg.Name, vocab)
			}
		}
		req.ids = append(req.ids, r...)
		req.offsets = append(req.offsets, int32(len(req.ids)))
	}
	req.out = make([]float32, len(rows)*s.dim)
	req.remaining.Store(int32(len(rows)))
	return req, nil
}
