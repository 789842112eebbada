package bench

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseConcurrency(t *testing.T) {
	cases := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"32", []int{32}, ""},
		{"1,2,4,16,32", []int{1, 2, 4, 16, 32}, ""},
		{" 4 , 1 ", []int{4, 1}, ""},
		{"", nil, "empty value"},
		{"1,,2", nil, "empty value"},
		{"0", nil, "outside"},
		{"-3", nil, "outside"},
		{"5000", nil, "outside"},
		{"1,2,1", nil, "repeated"},
		{"1.5", nil, "not a whole number"},
		{"x", nil, "not a whole number"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseConcurrency(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseConcurrency(%q) error = %v, want one containing %q", c.in, err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("ParseConcurrency(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
		})
	}
}

func TestParseRates(t *testing.T) {
	if got, err := ParseRates("100, 250.5"); err != nil || !slices.Equal(got, []float64{100, 250.5}) {
		t.Errorf("ParseRates = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0", "-1", "NaN", "Inf", "1e9", "fast"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("ParseRates(%q) accepted", bad)
		}
	}
}

func TestParseAssertions(t *testing.T) {
	cases := []struct {
		in      string
		want    []Assertion
		wantErr string
	}{
		{"p95<50ms,throughput>200", []Assertion{{"p95", "<", 50, "p95<50ms"}, {"throughput", ">", 200, "throughput>200"}}, ""},
		{"errors=0", []Assertion{{"errors", "=", 0, "errors=0"}}, ""},
		{"errors==0", []Assertion{{"errors", "=", 0, "errors==0"}}, ""},
		{"p99 <= 0.2s", []Assertion{{"p99", "<=", 200, "p99 <= 0.2s"}}, ""},
		{"P50<800us", []Assertion{{"p50", "<", 0.8, "P50<800us"}}, ""},
		{"max<12", []Assertion{{"max", "<", 12, "max<12"}}, ""},
		{"throughput>=150/s", []Assertion{{"throughput", ">=", 150, "throughput>=150/s"}}, ""},
		{"error_rate<0.01, mean_batch>2", []Assertion{{"error_rate", "<", 0.01, "error_rate<0.01"}, {"mean_batch", ">", 2, "mean_batch>2"}}, ""},
		{"", nil, "no conditions"},
		{"p95", nil, "want METRIC"},
		{"<5", nil, "want METRIC"},
		{"p95~5", nil, "want METRIC"},
		{"p97<5ms", nil, "unknown metric"},
		{"p95<fast", nil, "not a duration"},
		{"throughput>lots", nil, "not a number"},
		{"p95!5", nil, "unknown operator"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseAssertions(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ParseAssertions(%q) error = %v, want one containing %q", c.in, err, c.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, c.want) {
				t.Fatalf("ParseAssertions(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
		})
	}
}

func TestCheckNamesFailedConditionAndLevel(t *testing.T) {
	res := &Result{Levels: []Level{
		{Concurrency: 1, Requests: 100, Throughput: 100, Latency: Latency{P95: 10}},
		{Concurrency: 32, Requests: 300, Errors: 3, Throughput: 300, Latency: Latency{P95: 61.5}, Server: &ServerStats{MeanBatch: 7}},
	}}
	cases := []struct {
		assert string
		failed []string
	}{
		{"p95<100ms,throughput>50", nil},
		{"p95<50ms", []string{"p95<50ms at c=32: measured 61.5ms"}},
		{"errors=0,throughput>200", []string{"throughput>200 at c=1: measured 100/s", "errors=0 at c=32: measured 3"}},
		{"mean_batch>2", []string{"mean_batch>2 at c=1: the server reported no statistics"}},
		{"error_rate<0.005", []string{"error_rate<0.005 at c=32: measured 0.009901"}},
	}
	for _, c := range cases {
		t.Run(c.assert, func(t *testing.T) {
			as, err := ParseAssertions(c.assert)
			if err != nil {
				t.Fatal(err)
			}
			err = Check(res, as)
			if c.failed == nil {
				if err != nil {
					t.Fatalf("Check = %v, want pass", err)
				}
				return
			}
			var ae *AssertionError
			if !errors.As(err, &ae) || !slices.Equal(ae.Failed, c.failed) {
				t.Fatalf("Check = %v, want failures %q", err, c.failed)
			}
		})
	}
}

func FuzzParseConcurrency(f *testing.F) {
	for _, s := range []string{"32", "1,2,4,16,32", " 4 , 1", "0", "1,,2", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseConcurrency(s)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, v := range got {
			if v < 1 || v > MaxConcurrency || seen[v] {
				t.Fatalf("ParseConcurrency(%q) = %v: invalid level accepted", s, got)
			}
			seen[v] = true
		}
	})
}

func FuzzParseAssertions(f *testing.F) {
	for _, s := range []string{"p95<50ms,throughput>200", "errors=0", "p99<=1s", "mean_batch>=2", "x", "<", "p95<"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		as, err := ParseAssertions(s)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.Metric == "" || a.Op == "" || a.Text == "" {
				t.Fatalf("ParseAssertions(%q) gave an incomplete %+v", s, a)
			}
			// Every accepted assertion can be checked without panicking.
			_ = Check(&Result{Levels: []Level{{Concurrency: 1}}}, []Assertion{a})
		}
	})
}

func FuzzParseRates(f *testing.F) {
	for _, s := range []string{"200", "100,250.5", "0", "NaN", "1e9", ",", "-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rates, err := ParseRates(s)
		if err != nil {
			return
		}
		for _, r := range rates {
			if !(r > 0 && r <= 1e7) {
				t.Fatalf("ParseRates(%q) accepted %v", s, r)
			}
		}
	})
}
