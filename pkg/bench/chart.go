package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WriteChartFile draws throughput and p95 latency against concurrency (or
// rate, in open loop) for every run, side by side in one image, and writes
// it as SVG or PNG according to the file's extension. Runs are overlaid and
// labelled, so two servers compare at a glance.
func WriteChartFile(path string, runs []*Result) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".svg" && ext != ".png" {
		return fmt.Errorf("chart %s: want a .svg or .png file", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteChart(f, ext[1:], runs); err != nil {
		f.Close()
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return f.Close()
}

// WriteChart renders the chart in format "svg" or "png".
func WriteChart(w io.Writer, format string, runs []*Result) error {
	if len(runs) == 0 {
		return fmt.Errorf("no results to draw")
	}
	xName := "concurrency"
	if runs[0].Mode == "open" {
		xName = "arrival rate (req/s)"
	}
	models := modelNames(runs)
	tput := plot.New()
	tput.Title.Text = "Throughput, " + models
	tput.Y.Label.Text = "infer/s"
	lat := plot.New()
	lat.Title.Text = "p95 latency, " + models
	lat.Y.Label.Text = "ms"
	// One legend for both plots, drawn beside them rather than over the
	// lines.
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	xs := map[float64]bool{}
	for i, r := range runs {
		name := runName(r, i)
		var tp, lp plotter.XYs
		for _, lv := range r.Levels {
			x := float64(lv.Concurrency)
			if r.Mode == "open" {
				x = lv.Rate
			}
			xs[x] = true
			tp = append(tp, plotter.XY{X: x, Y: lv.Throughput})
			lp = append(lp, plotter.XY{X: x, Y: lv.Latency.P95})
		}
		sort.Slice(tp, func(a, b int) bool { return tp[a].X < tp[b].X })
		sort.Slice(lp, func(a, b int) bool { return lp[a].X < lp[b].X })
		for _, pair := range []struct {
			p   *plot.Plot
			xys plotter.XYs
		}{{tput, tp}, {lat, lp}} {
			l, s, err := plotter.NewLinePoints(pair.xys)
			if err != nil {
				return err
			}
			c := plotutil.Color(i)
			l.Color, s.Color = c, c
			l.Width = vg.Points(1.5)
			s.Shape = plotutil.Shape(i)
			pair.p.Add(l, s)
			if pair.p == tput {
				legend.Add(name, l, s)
			}
		}
	}
	var ticks plot.ConstantTicks
	var vals []float64
	for x := range xs {
		vals = append(vals, x)
	}
	sort.Float64s(vals)
	for _, x := range vals {
		ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', -1, 64)})
	}
	for _, p := range []*plot.Plot{tput, lat} {
		p.X.Label.Text = xName
		if vals[0] > 0 && vals[len(vals)-1]/vals[0] >= 8 {
			p.X.Scale = plot.LogScale{}
		}
		p.X.Tick.Marker = ticks
		p.Y.Min = 0
		p.Y.Max *= 1.05
		p.Y.Tick.Marker = niceTicks{n: 8}
		p.Add(plotter.NewGrid())
		p.BackgroundColor = color.White
	}
	legendW := legendWidth(&legend, runs)
	width, height := 12*vg.Inch+legendW, 4.5*vg.Inch
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{tput, lat}}
	drawAll := func(dc draw.Canvas) {
		drawTiles(draw.Crop(dc, 0, -legendW, 0, 0), plots, tiles)
		lc := draw.Crop(dc, width-legendW, 0, 0, -vg.Millimeter*10)
		legend.Draw(lc)
	}
	switch format {
	case "svg":
		c := vgsvg.New(width, height)
		drawAll(draw.New(c))
		_, err := c.WriteTo(w)
		return err
	case "png":
		c := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
		drawAll(draw.New(c))
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
		return err
	}
	return fmt.Errorf("unknown chart format %q", format)
}

func drawTiles(dc draw.Canvas, plots [][]*plot.Plot, t draw.Tiles) {
	canvases := plot.Align(plots, t, dc)
	for i := range plots {
		for j, p := range plots[i] {
			p.Draw(canvases[i][j])
		}
	}
}

// runName is a run's legend entry: its label, else its URL and protocol.
func runName(r *Result, i int) string {
	switch {
	case r.Label != "":
		return r.Label
	case r.URL != "":
		return r.URL + " " + r.Protocol
	}
	return "run " + strconv.Itoa(i+1)
}

// modelNames names the models the runs measured, for the titles.
func modelNames(runs []*Result) string {
	var names []string
	seen := map[string]bool{}
	for _, r := range runs {
		m := r.Model
		if m == "" {
			m = "unknown model"
		}
		if !seen[m] {
			seen[m] = true
			names = append(names, m)
		}
	}
	return strings.Join(names, " vs ")
}

// legendWidth is the room the legend column needs: its longest entry plus
// the thumbnail and padding.
func legendWidth(l *plot.Legend, runs []*Result) vg.Length {
	longest := vg.Length(0)
	for i, r := range runs {
		longest = max(longest, l.TextStyle.Width(runName(r, i)))
	}
	return longest + l.ThumbnailWidth + l.Padding*2 + vg.Millimeter*6
}

// niceTicks places about n major ticks at round values (1, 2, 2.5 or 5
// times a power of ten), more than gonum's default of three, so that values
// can be read off the chart.
type niceTicks struct{ n int }

func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / float64(max(t.n-1, 1))
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	prec := max(0, -int(math.Floor(math.Log10(step)))+1)
	if step == math.Trunc(step) {
		prec = 0
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
		// Unlabelled minor ticks halfway.
		if mid := v + step/2; mid < hi {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}
