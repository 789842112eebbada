package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestExecuteInterrupted: Ctrl-C or SIGTERM (the context ending) during a
// level prints the finished levels and the running one marked partial,
// writes --json, --csv and --chart, and returns ErrInterrupted (non-zero
// exit).
func TestExecuteInterrupted(t *testing.T) {
	srv := startFakeKServe(t, "tiny", 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Statistics are read before and after each level: the third read is
	// the start of level 2, which is interrupted 300 ms in.
	srv.mu.Lock()
	srv.onStats = func(n int) {
		if n == 3 {
			time.AfterFunc(300*time.Millisecond, cancel)
		}
	}
	srv.mu.Unlock()
	dir := t.TempDir()
	o := shortRun(srv.httpURL, "tiny", ProtoKServeHTTP)
	o.Concurrency = "1,2"
	o.Duration = 800 * time.Millisecond // level 2 is cut 300 ms into its 0.9 s
	o.JSON, o.CSV, o.Chart = filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.svg")
	var out bytes.Buffer
	err := Execute(ctx, o, &out)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Execute = %v, want ErrInterrupted", err)
	}
	if !strings.Contains(out.String(), "2 (partial)") {
		t.Errorf("table does not mark the interrupted level:\n%s", out.String())
	}
	res, rerr := ReadResult(o.JSON)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if len(res.Levels) != 2 || res.Levels[0].Partial || !res.Levels[1].Partial || res.Levels[0].Requests == 0 {
		t.Fatalf("levels %+v", res.Levels)
	}
	if lv := res.Levels[1]; lv.Errors != 0 || lv.Requests == 0 || lv.DurationS <= 0 || lv.DurationS >= 0.8 {
		t.Errorf("partial level counts the cancelled requests or no window: %+v", lv)
	}
	for _, p := range []string{o.CSV, o.Chart} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", p, err)
		}
	}
}

// TestFromHonoursLabel: --label renames a run redrawn with --from.
func TestFromHonoursLabel(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "saved.json")
	f, _ := os.Create(saved)
	if err := WriteJSON(f, sampleResult()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	o := Options{From: saved, Label: "tensorrt fp16", Concurrency: "1", TextsPerRequest: 1, Chart: filepath.Join(dir, "c.svg")}
	var out bytes.Buffer
	if err := Execute(context.Background(), o, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "tensorrt fp16 ") {
		t.Errorf("table title ignores --label:\n%s", out.String())
	}
	svg, _ := os.ReadFile(o.Chart)
	if !bytes.Contains(svg, []byte(">tensorrt fp16<")) {
		t.Error("chart legend ignores --label")
	}
}
