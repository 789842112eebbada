package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExecuteEveryProtocolAgainstAFakeServer(t *testing.T) {
	cases := []struct {
		protocol        string
		textsPerRequest int
	}{
		{ProtoKServeHTTP, 1},
		{ProtoKServeHTTP, 3},
		{ProtoKServeGRPC, 2},
		{ProtoOpenAI, 1},
	}
	for _, c := range cases {
		t.Run(c.protocol+"/texts="+string(rune('0'+c.textsPerRequest)), func(t *testing.T) {
			srv := startFakeKServe(t, "tiny", 0)
			url := srv.httpURL
			if c.protocol == ProtoKServeGRPC {
				url = "grpc://" + srv.grpcAddr
			}
			dir := t.TempDir()
			o := shortRun(url, "tiny", c.protocol)
			o.TextsPerRequest = c.textsPerRequest
			o.JSON, o.CSV, o.Chart = filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.svg")
			var out bytes.Buffer
			if err := Execute(context.Background(), o, &out); err != nil {
				t.Fatal(err)
			}
			res, err := ReadResult(o.JSON)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Levels) != 2 || res.Levels[0].Concurrency != 1 || res.Levels[1].Concurrency != 4 {
				t.Fatalf("levels = %+v", res.Levels)
			}
			for _, lv := range res.Levels {
				if lv.Requests == 0 || lv.Errors != 0 || lv.Throughput <= 0 || lv.Latency.P50 <= 0 || lv.Latency.P99 < lv.Latency.P50 {
					t.Errorf("c=%d: implausible level %+v", lv.Concurrency, lv)
				}
				if lv.Requests > lv.Succeeded {
					t.Errorf("c=%d: %d in the window but %d in all", lv.Concurrency, lv.Requests, lv.Succeeded)
				}
				s := lv.Server
				if s == nil {
					t.Fatalf("c=%d: no server statistics", lv.Concurrency)
				}
				if s.Success != uint64(lv.Succeeded) {
					t.Errorf("c=%d: server counted %d successes, bench %d", lv.Concurrency, s.Success, lv.Succeeded)
				}
				if s.MeanBatch != float64(c.textsPerRequest) || s.QueueMs != 1 || s.ComputeInferMs != 2 {
					t.Errorf("c=%d: server deltas %+v", lv.Concurrency, s)
				}
			}
			if !strings.Contains(out.String(), "infer/s") {
				t.Errorf("no table on stdout:\n%s", out.String())
			}
			for _, p := range []string{o.CSV, o.Chart} {
				if st, err := os.Stat(p); err != nil || st.Size() == 0 {
					t.Errorf("%s not written: %v", p, err)
				}
			}
		})
	}
}

func TestExecuteClassifiesServerErrors(t *testing.T) {
	for _, proto := range []string{ProtoKServeHTTP, ProtoKServeGRPC} {
		t.Run(proto, func(t *testing.T) {
			srv := startFakeKServe(t, "tiny", 3)
			url := srv.httpURL
			want := "http_503"
			if proto == ProtoKServeGRPC {
				url, want = srv.grpcAddr, "grpc_Unavailable"
			}
			o := shortRun(url, "tiny", proto)
			o.Concurrency = "2"
			o.JSON = "-"
			// The probe is the 1st request; the 3rd, 6th, … fail.
			var out bytes.Buffer
			if err := Execute(context.Background(), o, &out); err != nil {
				t.Fatal(err)
			}
			var res Result
			if err := jsonUnmarshal(out.Bytes(), &res); err != nil {
				t.Fatalf("--json - did not print JSON: %v\n%s", err, out.String())
			}
			lv := res.Levels[0]
			if lv.Errors == 0 || lv.ErrorsByKind[want] != lv.Errors {
				t.Errorf("errors %d by kind %v, want all %s", lv.Errors, lv.ErrorsByKind, want)
			}
			if lv.Server == nil || lv.Server.Fail != uint64(lv.Sent-lv.Succeeded) || lv.Server.Success != uint64(lv.Succeeded) {
				t.Errorf("server success/fail %+v, bench sent %d succeeded %d", lv.Server, lv.Sent, lv.Succeeded)
			}
		})
	}
}

func TestExecuteFailures(t *testing.T) {
	srv := startFakeKServe(t, "tiny", 0)
	cases := []struct {
		name    string
		edit    func(o *Options)
		wantErr string
		assert  bool
	}{
		{"unknown model: the probe quotes the server", func(o *Options) { o.Model = "nope" }, "http_404: {\"error\":\"unknown model nope\"}", false},
		{"nothing listening", func(o *Options) { o.URL = "http://127.0.0.1:1" }, "probe request", false},
		{"bad -c", func(o *Options) { o.Concurrency = "1,0" }, "outside", false},
		{"bad --assert", func(o *Options) { o.Assert = "p42<1ms" }, "unknown metric", false},
		{"bad --chart extension", func(o *Options) { o.Chart = "x.jpg" }, ".svg or .png", false},
		{"bad protocol", func(o *Options) { o.Protocol = "soap" }, "unknown protocol", false},
		{"missing --compare file", func(o *Options) { o.Compare = []string{"/nonexistent.json"} }, "--compare", false},
		{"failed assertion names condition and level", func(o *Options) { o.Assert = "errors=0,throughput>1e12" }, "throughput>1e12 at c=1: measured", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := shortRun(srv.httpURL, "tiny", ProtoKServeHTTP)
			o.Concurrency = "1"
			o.JSON = filepath.Join(t.TempDir(), "r.json")
			c.edit(&o)
			err := Execute(context.Background(), o, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("Execute error = %v, want one containing %q", err, c.wantErr)
			}
			var ae *AssertionError
			if errors.As(err, &ae) != c.assert {
				t.Errorf("AssertionError = %v, want %v", errors.As(err, &ae), c.assert)
			}
			if c.assert {
				if _, err := ReadResult(o.JSON); err != nil {
					t.Errorf("a failed gate must still write its evidence: %v", err)
				}
			}
		})
	}
}

func TestExecuteDiscoversTheOnlyModelAndCompares(t *testing.T) {
	srv := startFakeKServe(t, "tiny", 0)
	dir := t.TempDir()
	for i, proto := range []string{ProtoKServeHTTP, ProtoOpenAI} {
		o := shortRun(srv.httpURL, "", proto)
		o.Concurrency = "1"
		o.Label = proto
		o.JSON = filepath.Join(dir, proto+".json")
		if i == 1 {
			o.Compare = []string{filepath.Join(dir, ProtoKServeHTTP+".json")}
			o.Chart = filepath.Join(dir, "both.png")
		}
		var out bytes.Buffer
		if err := Execute(context.Background(), o, &out); err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		r, err := ReadResult(o.JSON)
		if err != nil || r.Model != "tiny" {
			t.Fatalf("%s: model %q, %v", proto, r.Model, err)
		}
		if i == 1 && strings.Count(out.String(), "infer/s") != 2 {
			t.Errorf("the compared run's table is missing:\n%s", out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "both.png")); err != nil {
		t.Error(err)
	}
}

func TestSelfTestMeasuresTheClientCeiling(t *testing.T) {
	for _, proto := range Protocols {
		t.Run(proto, func(t *testing.T) {
			o := shortRun("", "", proto)
			o.SelfTest = true
			o.Concurrency = "2"
			o.JSON = "-"
			var out bytes.Buffer
			if err := Execute(context.Background(), o, &out); err != nil {
				t.Fatal(err)
			}
			var res Result
			if err := jsonUnmarshal(out.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			// The canned server answered every request; whether any landed in
			// a window this short depends on the machine's load, so only the
			// totals are checked.
			if c := res.ClientCeiling; c == nil || c.Protocol != proto || res.Levels[0].Errors != 0 || res.Levels[0].Succeeded == 0 {
				t.Errorf("ceiling %+v levels %+v", res.ClientCeiling, res.Levels)
			}
		})
	}
}

func TestExecuteFromASavedResult(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "saved.json")
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleResult()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(saved, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		assert  string
		wantErr string
	}{
		{"passing gate", "p95<100ms,errors<5", ""},
		{"failing gate names the level", "p95<50ms", "p95<50ms at c=32: measured 72.25ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{From: saved, Concurrency: "1", TextsPerRequest: 1, Assert: c.assert,
				CSV: filepath.Join(dir, "r.csv"), Chart: filepath.Join(dir, "r.svg")}
			var out bytes.Buffer
			err := Execute(context.Background(), o, &out)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("Execute = %v, want %q", err, c.wantErr)
			}
			golden, _ := os.ReadFile(filepath.Join(goldenDir, "table.txt"))
			if out.String() != string(golden) {
				t.Errorf("table of a saved result differs from the golden:\n%s", out.String())
			}
		})
	}
}
