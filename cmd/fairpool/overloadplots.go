package main

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The overload figures: goodput, latency and time to failure against the
// offered load; the p99 wait through a burst.

// loadTicks labels exactly the loads measured.
func loadTicks(loads []float64) plot.Ticker {
	var ticks plot.ConstantTicks
	for _, l := range loads {
		ticks = append(ticks, plot.Tick{Value: l, Label: fmt.Sprintf("%gx", l)})
	}
	return ticks
}

// overloadFigure draws three panels against the offered load, one line
// per pool: goodput (with the most any pool can give), the p99 latency of
// the requests served and the median time to failure (with the deadline).
func overloadFigure(cfg *overloadConfig, runs []*overloadPoolRun, format string) ([]byte, error) {
	type panel struct {
		title, ylabel string
		log           bool
		pick          func(*overloadStep) (float64, bool)
	}
	panels := []panel{
		{"goodput: served in time", "% of capacity", false,
			func(s *overloadStep) (float64, bool) { return s.GoodputPct, true }},
		{"p99 latency of requests served", "arrival to done (log scale)", true,
			func(s *overloadStep) (float64, bool) { return s.LatencyP99, s.InTime+s.Late > 0 }},
		{"median time to failure", "arrival to error (log scale)", true,
			func(s *overloadStep) (float64, bool) { return s.FailP50Ms, s.Failed > 0 }},
	}
	plots := [][]*plot.Plot{make([]*plot.Plot, len(panels))}
	legend := plot.NewLegend()
	deadline := ms(cfg.Deadline)
	lo, hi := cfg.Loads[0], cfg.Loads[0]
	for _, l := range cfg.Loads {
		lo, hi = min(lo, l), max(hi, l)
	}
	for k, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.Add(plotter.NewGrid())
		p.X.Label.Text = "offered load (× capacity)"
		p.X.Tick.Marker = loadTicks(cfg.Loads)
		p.Y.Label.Text = pn.ylabel
		var ref plotter.XYs
		refName := ""
		if k == 0 {
			// Nobody serves more than was asked, nor more than the capacity.
			for _, l := range []float64{lo, min(max(lo, 1), hi), hi} {
				ref = append(ref, plotter.XY{X: l, Y: 100 * min(l, 1)})
			}
			refName = "most possible"
		} else {
			ref = plotter.XYs{{X: lo, Y: deadline}, {X: hi, Y: deadline}}
			refName = "deadline"
		}
		l, err := plotter.NewLine(ref)
		if err != nil {
			return nil, err
		}
		l.LineStyle = dashed(color.Black)
		p.Add(l)
		if k <= 1 {
			legend.Add(refName, l)
		}
		for _, r := range runs {
			var xys plotter.XYs
			for _, s := range r.Steps {
				if v, ok := pn.pick(s); ok {
					// A log axis cannot show 0; 1 µs is "at once".
					if pn.log {
						v = max(v, 0.001)
					}
					xys = append(xys, plotter.XY{X: s.Load, Y: v})
				}
			}
			if err := addSeries(p, &legend, k == 0, r.Pool, poolColor(r.Pool), xys); err != nil {
				return nil, err
			}
		}
		if pn.log {
			p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, msDecadeTicks
			p.Y.Min, p.Y.Max = max(p.Y.Min/2, 0.001), p.Y.Max*2
		} else {
			p.Y.Min, p.Y.Max = 0, max(p.Y.Max, 105)
		}
		plots[0][k] = p
	}
	title := overloadTitle(cfg) + fmt.Sprintf("\nLoad in multiples of each pool's capacity, measured in the same run; %v of arrivals per load", cfg.Step)
	return render(format, 13*vg.Inch, titleHeight+4.5*vg.Inch, func(dc draw.Canvas) {
		tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: 0.3 * vg.Inch,
			PadLeft: 0.1 * vg.Inch, PadRight: 0.2 * vg.Inch, PadBottom: 0.1 * vg.Inch}
		body := drawSideLegend(drawTitle(dc, title), legend, 0.3*vg.Inch)
		canvases := plot.Align(plots, tiles, body)
		for j, p := range plots[0] {
			p.Draw(canvases[0][j])
		}
	})
}

// burstFigure draws the p99 wait of each window of the burst run, per
// pool, with the burst marked.
func burstFigure(cfg *overloadConfig, runs []*overloadPoolRun, format string) ([]byte, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("p99 wait per %v window: %gx, then %gx for %v, then %gx",
		burstWindowLen, cfg.BaseLoad, cfg.BurstLoad, cfg.BurstTime, cfg.BaseLoad)
	p.Add(plotter.NewGrid())
	p.X.Label.Text = "time (s), windows by arrival"
	p.Y.Label.Text = "p99 wait of requests served (log scale)"
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, msDecadeTicks
	legend := plot.NewLegend()
	for _, r := range runs {
		if r.Burst == nil {
			continue
		}
		var xys plotter.XYs
		for _, w := range r.Burst.Windows {
			if w.Served > 0 {
				mid := w.StartMs/1000 + burstWindowLen.Seconds()/2
				xys = append(xys, plotter.XY{X: mid, Y: max(w.WaitP99, 0.001)})
			}
		}
		if err := addSeries(p, &legend, true, r.Pool, poolColor(r.Pool), xys); err != nil {
			return nil, err
		}
	}
	p.Y.Min, p.Y.Max = max(p.Y.Min/2, 0.001), max(p.Y.Max*2, ms(cfg.Deadline)*2)
	for _, t := range []float64{burstBefore.Seconds(), (burstBefore + cfg.BurstTime).Seconds()} {
		l, err := plotter.NewLine(plotter.XYs{{X: t, Y: p.Y.Min}, {X: t, Y: p.Y.Max}})
		if err != nil {
			return nil, err
		}
		l.LineStyle = dashed(color.Black)
		p.Add(l)
	}
	title := overloadTitle(cfg) + "\nDashed: the burst's start and end"
	return render(format, 10*vg.Inch, titleHeight+5*vg.Inch, func(dc draw.Canvas) {
		body := drawSideLegend(drawTitle(dc, title), legend, 0.3*vg.Inch)
		p.Draw(draw.Crop(body, 0.05*vg.Inch, -0.15*vg.Inch, 0.05*vg.Inch, 0))
	})
}
