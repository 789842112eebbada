package bench

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"
)

// TestChartLayout: the model is named in the titles, the legend sits
// right of both plots (not over the lines), and the y axes have enough
// labelled ticks to read values off.
func TestChartLayout(t *testing.T) {
	other := sampleResult()
	other.Label = "pytorch"
	var b bytes.Buffer
	if err := WriteChart(&b, "svg", []*Result{sampleResult(), other}); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []string{">Throughput, m3e-base-trt<", ">p95 latency, m3e-base-trt<"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("SVG lacks the title %q", want)
		}
	}
	text := regexp.MustCompile(`<text x="([0-9.]+)"[^>]*\n?[^>]*>([^<]*)</text>`)
	var legendX, rightmostTick float64
	for _, m := range text.FindAllStringSubmatch(svg, -1) {
		x, _ := strconv.ParseFloat(m[1], 64)
		switch m[2] {
		case "pytorch", "m3e-tiny cpu":
			legendX = x
		case "32": // the last x tick of the second plot
			rightmostTick = max(rightmostTick, x)
		}
	}
	if legendX == 0 || legendX <= rightmostTick {
		t.Errorf("legend at x=%v is not right of the plots (last tick at x=%v)", legendX, rightmostTick)
	}
}

func TestNiceTicks(t *testing.T) {
	for _, r := range [][2]float64{{0, 472}, {0, 151.2}, {0, 0.9}, {0, 23500}, {0, 3.3}} {
		labelled := 0
		for _, tk := range (niceTicks{n: 8}).Ticks(r[0], r[1]) {
			if tk.Label != "" {
				labelled++
				if tk.Value < r[0] || tk.Value > r[1]*1.0001 {
					t.Errorf("range %v: tick %v outside", r, tk.Value)
				}
			}
		}
		if labelled < 5 || labelled > 11 {
			t.Errorf("range %v: %d labelled ticks, want 5 to 11", r, labelled)
		}
	}
}
