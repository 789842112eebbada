package serve

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/m3ectl/m3ectl/pkg/serve/repository"
)

// The three error shapes side by side: one error, three protocols.
func TestErrorShapesPerProtocol(t *testing.T) {
	overloaded := &repository.Error{Kind: repository.Overloaded, Msg: "model m3e is overloaded", RetryAfter: 2 * time.Second}
	tests := []struct {
		name    string
		err     error
		openAI  int
		oaCode  string
		tei     int
		teiType string
		kserve  int
	}{
		{"overloaded", overloaded, 429, "rate_limit_exceeded", 429, "Overloaded", 503},
		{"not ready", &repository.Error{Kind: repository.Unavailable, Msg: "loading"}, 503, "service_unavailable", 503, "Unhealthy", 503},
		{"invalid", invalidf("bad"), 400, "", 422, "Validation", 400},
		{"too large", errorf(kindTooLarge, "big"), 413, "request_too_large", 413, "Validation", 413},
		{"engine failure", errorf(kindInternal, "boom"), 500, "", 424, "Backend", 500},
		{"empty", teiEmpty("`inputs` cannot be empty"), 400, "", 400, "Empty", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			writeOpenAIError(w, tc.err)
			e := openAIErrorBody(t, w.Body.Bytes())
			if w.Code != tc.openAI || (tc.oaCode != "" && str(e.Code) != tc.oaCode) || (tc.oaCode == "" && e.Code != nil) {
				t.Errorf("OpenAI: %d %s", w.Code, w.Body)
			}
			if (tc.openAI == 429 || tc.openAI == 503) && w.Header().Get("Retry-After") == "" {
				t.Errorf("OpenAI %d without Retry-After", w.Code)
			}
			w = httptest.NewRecorder()
			writeTEIError(w, tc.err)
			var te map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &te); err != nil || w.Code != tc.tei || te["error_type"] != tc.teiType || te["error"] == "" {
				t.Errorf("TEI: %d %s", w.Code, w.Body)
			}
			w = httptest.NewRecorder()
			writeError(w, tc.err)
			if w.Code != tc.kserve {
				t.Errorf("KServe: %d", w.Code)
			}
			errorBody(t, w.Body.Bytes())
		})
	}
}
