package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The figures, one function each: the fairness experiment's wait histograms, its
// waits against N, and the pinned-sockets experiment's unused socket-time against N.

// histogram panels plot waits at 10 bins per decade: finer than the 4 of
// the terminal, coarse enough that a bin of a 20,000-request run is not
// noise.
const plotBinsPerDecade = 10

// fairnessHistFigure draws one histogram panel per pool for the runs at
// N = n, on shared log axes, with the ideal wait marked.
func fairnessHistFigure(cfg *fairnessConfig, n int, runs []*fairnessRun, format string) ([]byte, error) {
	cols := min(2, len(runs))
	rows := (len(runs) + cols - 1) / cols
	ideal := ms(cfg.ideal(n))
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, cols)
	}
	for i, r := range runs {
		p := plot.New()
		p.Title.Text = fmt.Sprintf("%s: p50 %s, p99.9 %s, max %s", r.Pool,
			fmtMsUnit(r.Wait.P50), fmtMsUnit(r.Wait.P999), fmtMsUnit(r.Wait.Max))
		if r.Timeouts > 0 {
			p.Title.Text += fmt.Sprintf(", %d timeouts", r.Timeouts)
		}
		h := newLogHistogram(histLo, histHi, plotBinsPerDecade)
		for _, d := range r.waits {
			h.add(d)
		}
		p.Add(plotter.NewGrid(), histBars(h, poolColor(r.Pool)))
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, msDecadeTicks
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, countDecadeTicks
		p.X.Min, p.X.Max = ms(histLo), ms(histHi)
		p.Y.Min, p.Y.Max = 0.7, max(p.Y.Max*2.5, 10)
		p.X.Label.Text = "wait for a connection (log scale)"
		p.Y.Label.Text = "requests (log scale)"
		mark := ideal
		if cfg.DB != nil {
			mark = r.FIFOMs
		}
		if mark > 0 {
			l, err := plotter.NewLine(plotter.XYs{{X: mark, Y: p.Y.Min}, {X: mark, Y: p.Y.Max}})
			if err != nil {
				return nil, err
			}
			l.LineStyle = dashed(color.Black)
			p.Add(l)
		}
		plots[i/cols][i%cols] = p
	}
	title := fmt.Sprintf("Fairness: wait per request, N=%d goroutines, pool of S=%d, hold h=%v, %d requests per pool",
		n, cfg.Size, cfg.Hold, cfg.Requests)
	if db := cfg.DB; db != nil {
		title = fmt.Sprintf("Fairness on %s: wait per request, N=%d goroutines, pool of S=%d, %s, %d requests per pool",
			db.Server, n, cfg.Size, db.HoldSQL, cfg.Requests)
	}
	switch {
	case cfg.DB != nil && ideal > 0:
		title += "\nDashed: (N−S)/S × the pool's mean hold, the steady wait in a FIFO pool"
	case ideal > 0:
		title += fmt.Sprintf("\nDashed: the ideal wait (N/S)·h = %s", fmtMsUnit(ideal))
	}
	w, h := 11*vg.Inch, titleHeight+vg.Length(rows)*2.6*vg.Inch
	return render(format, w, h, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: 0.3 * vg.Inch, PadY: 0.2 * vg.Inch,
			PadLeft: 0.1 * vg.Inch, PadRight: 0.2 * vg.Inch, PadBottom: 0.1 * vg.Inch}
		canvases := plot.Align(plots, tiles, drawTitle(dc, title))
		for i := range plots {
			for j, p := range plots[i] {
				if p != nil {
					p.Draw(canvases[i][j])
				}
			}
		}
	})
}

// fairnessSweepFigure draws p50 and p99.9 against N for every pool, beside
// the ideal: the fairness experiment's second plot.
func fairnessSweepFigure(cfg *fairnessConfig, runs []*fairnessRun, format string) ([]byte, error) {
	panels := []struct {
		name string
		pick func(waitSummary) float64
	}{{"median (p50)", func(s waitSummary) float64 { return s.P50 }},
		{"p99.9", func(s waitSummary) float64 { return s.P999 }}}
	plots := [][]*plot.Plot{make([]*plot.Plot, len(panels))}
	legend := plot.NewLegend()
	for k, panel := range panels {
		p := plot.New()
		p.Title.Text = panel.name + " wait against N"
		p.Add(plotter.NewGrid())
		p.X.Label.Text = "goroutines N"
		p.X.Tick.Marker = nTicks(cfg.Workers)
		p.Y.Label.Text = "wait (log scale)"
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, msDecadeTicks
		var ideal plotter.XYs
		for _, n := range cfg.Workers {
			if v := ms(cfg.ideal(n)); v > 0 {
				ideal = append(ideal, plotter.XY{X: float64(n), Y: v})
			}
		}
		if len(ideal) > 0 {
			l, err := plotter.NewLine(ideal)
			if err != nil {
				return nil, err
			}
			l.LineStyle = dashed(color.Black)
			p.Add(l)
			if k == 0 {
				legend.Add("ideal (N/S)·h", l)
			}
		}
		for _, pool := range cfg.Pools {
			var xys plotter.XYs
			for _, n := range cfg.Workers {
				for _, r := range runsAt(runs, n) {
					if r.Pool == pool && r.Served > 0 {
						// A log axis cannot show 0; 1 µs is "did not wait".
						xys = append(xys, plotter.XY{X: float64(n), Y: max(panel.pick(r.Wait), ms(histLo))})
					}
				}
			}
			if err := addSeries(p, &legend, k == 0, pool, poolColor(pool), xys); err != nil {
				return nil, err
			}
		}
		p.Y.Min = max(p.Y.Min, ms(histLo))
		p.Y.Max *= 2
		plots[0][k] = p
	}
	title := fmt.Sprintf("Fairness: wait against N goroutines, pool of S=%d, hold h=%v, %d requests per point",
		cfg.Size, cfg.Hold, cfg.Requests)
	if db := cfg.DB; db != nil {
		title = fmt.Sprintf("Fairness on %s: wait against N goroutines, pool of S=%d, %s, %d requests per point",
			db.Server, cfg.Size, db.HoldSQL, cfg.Requests)
	}
	return render(format, 11*vg.Inch, titleHeight+4.5*vg.Inch, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: 0.3 * vg.Inch,
			PadLeft: 0.1 * vg.Inch, PadRight: 0.2 * vg.Inch, PadBottom: 0.1 * vg.Inch}
		body := drawSideLegend(drawTitle(dc, title), legend, 0.3*vg.Inch)
		canvases := plot.Align(plots, tiles, body)
		for j, p := range plots[0] {
			p.Draw(canvases[0][j])
		}
	})
}

// pinnedFigure draws unused socket-time against N for every pool, with the
// think-time floor: the pinned-sockets plot.
func pinnedFigure(cfg *pinnedConfig, runs []*pinnedRun, format string) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Pinned sockets: unused socket-time against threads, S=%d sockets\n"+
		"hold %d–%d units, think %d, 1 unit = %v, %d units measured per point", cfg.Sockets, cfg.HoldMin, cfg.HoldMax,
		cfg.Think, cfg.Unit, cfg.Duration)
	p.Title.TextStyle.Font.Size = 13
	p.Add(plotter.NewGrid())
	p.X.Label.Text = "threads N"
	p.Y.Label.Text = "unused socket-time (%)"
	var floor plotter.XYs
	for _, n := range cfg.Threads {
		floor = append(floor, plotter.XY{X: float64(n), Y: 100 * cfg.floor(n)})
	}
	l, err := plotter.NewLine(floor)
	if err != nil {
		return nil, err
	}
	l.LineStyle = dashed(color.Gray{Y: 0x60})
	p.Add(l)
	legend := plot.NewLegend()
	legend.Add("floor: think time", l)
	for _, pool := range cfg.Pools {
		var xys plotter.XYs
		for _, n := range cfg.Threads {
			xys = append(xys, plotter.XY{X: float64(n), Y: pinnedAt(runs, pool, n).WastePct})
		}
		if err := addSeries(p, &legend, true, pool, poolColor(pool), xys); err != nil {
			return nil, err
		}
	}
	p.Y.Min = 0
	p.Y.Max = max(p.Y.Max*1.1, 1)
	p.X.Tick.Marker, p.Y.Tick.Marker = nTicks(cfg.Threads), percentTicks
	return render(format, 10*vg.Inch, 5.5*vg.Inch, func(dc draw.Canvas) {
		body := drawSideLegend(dc, legend, 0.6*vg.Inch)
		p.Draw(draw.Crop(body, 0.05*vg.Inch, -0.15*vg.Inch, 0.05*vg.Inch, -0.1*vg.Inch))
	})
}

// addSeries adds a line with points in c to p and, if inLegend, to legend.
func addSeries(p *plot.Plot, legend *plot.Legend, inLegend bool, name string, c color.Color, xys plotter.XYs) error {
	if len(xys) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.LineStyle.Color, l.LineStyle.Width = c, vg.Points(1.5)
	s.GlyphStyle.Color, s.GlyphStyle.Shape, s.GlyphStyle.Radius = c, draw.CircleGlyph{}, vg.Points(2.5)
	p.Add(l, s)
	if inLegend {
		legend.Add(name, l, s)
	}
	return nil
}

// allFairnessPools and allPinnedPools name every pool, for stable colours.
func allFairnessPools() []string {
	var names []string
	for _, p := range fairnessPools {
		names = append(names, p.name)
	}
	return names
}

func allPinnedPools() []string {
	var names []string
	for _, p := range pinnedPools {
		names = append(names, p.name)
	}
	return names
}

// fmtMsUnit formats milliseconds with a unit, short: 850µs, 10.3ms, 4.40s.
func fmtMsUnit(v float64) string {
	switch {
	case v < 0.001:
		return "<1µs"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 1000:
		return fmtMs(v) + "ms"
	}
	return fmt.Sprintf("%.2fs", v/1000)
}
