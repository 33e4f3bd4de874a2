package main

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // registers png
	_ "gonum.org/v1/plot/vg/vgsvg" // registers svg
)

// Building blocks for the figures: rendering to PNG and SVG, a figure
// title, bars on a log count axis, and time ticks for a log axis.

func init() {
	// Sans reads better than the default serif at small sizes on a screen.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
}

// plotFormats are the image formats every figure is written in.
var plotFormats = []string{"png", "svg"}

// render draws a figure of w by h into an image of the given format
// ("png" or "svg") and returns its bytes. The canvas is painted white
// first: an SVG is otherwise transparent outside the plots.
func render(format string, w, h vg.Length, drawFig func(dc draw.Canvas)) ([]byte, error) {
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return nil, err
	}
	dc := draw.New(c)
	r := dc.Rectangle
	dc.FillPolygon(color.White, []vg.Point{r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}})
	drawFig(dc)
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("render %s: %w", format, err)
	}
	return buf.Bytes(), nil
}

// titleHeight is the band at the top of a multi-panel figure for its title.
const titleHeight = 0.6 * vg.Inch

// drawTitle writes title (one or two lines, split by \\n) centred in the top band of dc
// and returns the canvas below it.
func drawTitle(dc draw.Canvas, title string) draw.Canvas {
	sty := text.Style{
		Color:   color.Black,
		Font:    font.From(plot.DefaultFont, 13),
		XAlign:  draw.XCenter,
		YAlign:  draw.YTop,
		Handler: plot.DefaultTextHandler,
	}
	dc.FillText(sty, vg.Point{X: dc.Center().X, Y: dc.Max.Y - 0.08*vg.Inch}, title)
	return draw.Crop(dc, 0, 0, 0, -titleHeight)
}

// poolColors gives each pool one colour in every figure: fairpool green,
// the pools that starve someone warm, the fair peers cool.
var poolColors = map[string]color.Color{
	"fairpool":      rgb(0x2c, 0xa0, 0x2c),
	"fairpool-lifo": rgb(0xbc, 0xbd, 0x22),
	"sql":           rgb(0xd6, 0x27, 0x28),
	"puddle":        rgb(0x1f, 0x77, 0xb4),
	"chan":          rgb(0x94, 0x67, 0xbd),
	"unfair":        rgb(0xff, 0x7f, 0x0e),
	// The --dsn pools: fairpool's in two greens, and pgxpool in puddle's
	// blue, as it is built on puddle; database/sql is "sql" above.
	"fairpgx":   rgb(0x2c, 0xa0, 0x2c),
	"sqlpool":   rgb(0x17, 0x66, 0x17),
	"pgxpool":   rgb(0x1f, 0x77, 0xb4),
	"signal":    rgb(0xd6, 0x27, 0x28),
	"broadcast": rgb(0xff, 0x7f, 0x0e),
}

// poolColor returns the colour of a pool; grey for one not listed.
func poolColor(name string) color.Color {
	if c, ok := poolColors[name]; ok {
		return c
	}
	return color.Gray{Y: 0x80}
}

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{R: r, G: g, B: b, A: 0xff} }

// legendWidth is the column at the right of a figure that holds its legend.
const legendWidth = 1.7 * vg.Inch

// drawSideLegend draws leg in a column at the right of dc, level with the
// plots' tops, and returns the canvas left of it. Beside the plots, a
// legend never hides a line.
func drawSideLegend(dc draw.Canvas, leg plot.Legend, top vg.Length) draw.Canvas {
	col := draw.Crop(dc, dc.Max.X-dc.Min.X-legendWidth+0.1*vg.Inch, 0, 0, -top)
	leg.Top, leg.Left = true, true
	leg.Draw(col)
	return draw.Crop(dc, 0, -legendWidth, 0, 0)
}

// logBars draws histogram bars on a log count axis. plotter.Histogram
// fills down to y = 0, which a log axis cannot place; these bars stand on
// floor instead, and an empty bin draws nothing.
type logBars struct {
	lo, hi []float64 // bin edges, in axis units
	counts []float64
	floor  float64
	color  color.Color
}

// Plot implements plot.Plotter.
func (b *logBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, n := range b.counts {
		if n <= 0 {
			continue
		}
		x0, x1, y0, y1 := trX(b.lo[i]), trX(b.hi[i]), trY(b.floor), trY(n)
		c.FillPolygon(b.color, c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}}))
	}
}

// DataRange implements plot.DataRanger.
func (b *logBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax, ymax = b.lo[0], b.hi[len(b.hi)-1], b.floor
	for _, n := range b.counts {
		ymax = max(ymax, n)
	}
	return xmin, xmax, b.floor, ymax
}

// histBars turns a histogram of durations into bars in milliseconds.
func histBars(h *logHistogram, c color.Color) *logBars {
	b := &logBars{floor: 0.7, color: c}
	for i, n := range h.Counts {
		b.lo = append(b.lo, ms(h.Edges[i]))
		b.hi = append(b.hi, ms(h.Edges[i+1]))
		b.counts = append(b.counts, float64(n))
	}
	return b
}

// msDecadeTicks labels each power of ten of an axis in milliseconds as a
// duration (1µs, 10µs ... 1s, 10s), with minor ticks at 2..9 times it.
var msDecadeTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi*1.0001; e++ {
		v := math.Pow(10, e)
		ticks = append(ticks, plot.Tick{Value: v, Label: fmtDecade(time.Duration(math.Round(v * float64(time.Millisecond))))})
		for k := 2.0; k < 10; k++ {
			if k*v <= hi {
				ticks = append(ticks, plot.Tick{Value: k * v})
			}
		}
	}
	return ticks
})

// countDecadeTicks labels the powers of ten of a count axis: 1, 10, 100,
// 1k, 10k ...
var countDecadeTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := math.Ceil(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		v := math.Pow(10, e)
		label := fmt.Sprintf("%.0f", v)
		if v >= 1000 {
			label = fmt.Sprintf("%.0fk", v/1000)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
})

// nTicks labels exactly the N a sweep measured, so a reader can match a
// point to a row of the table.
func nTicks(ns []int) plot.Ticker {
	var ticks plot.ConstantTicks
	for _, n := range ns {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: fmt.Sprint(n)})
	}
	return ticks
}

// percentTicks labels a percent axis from 0 every 1, 2, 5 or 10 points,
// whichever gives at most ten labels.
var percentTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	step := 10.0
	for _, s := range []float64{1, 2, 5} {
		if hi/s <= 10 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for v := 0.0; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
	}
	return ticks
})

// dashed is the style of reference lines: the ideal wait, the floor.
func dashed(c color.Color) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: vg.Points(1.2), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
}
