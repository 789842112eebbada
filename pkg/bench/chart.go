package bench

import (
	"fmt"
	"image/color"
	"io"
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
	tput := plot.New()
	tput.Title.Text = "Throughput"
	tput.Y.Label.Text = "infer/s"
	lat := plot.New()
	lat.Title.Text = "p95 latency"
	lat.Y.Label.Text = "ms"
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
			pair.p.Legend.Add(name, l, s)
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
		p.Y.Max *= 1.35 // headroom for the legend above the lines
		p.Legend.Top = true
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
		p.BackgroundColor = color.White
	}
	width, height := 12*vg.Inch, 4.5*vg.Inch
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{tput, lat}}
	switch format {
	case "svg":
		c := vgsvg.New(width, height)
		drawTiles(draw.New(c), plots, tiles)
		_, err := c.WriteTo(w)
		return err
	case "png":
		c := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
		drawTiles(draw.New(c), plots, tiles)
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
