package main

import (
	"math"
	"slices"
	"strings"
	"time"
)

// percentile returns the q-quantile (0 <= q <= 1) of sorted, an ascending
// slice, by the nearest-rank method: the smallest value that at least a
// share q of the data does not exceed. It never interpolates, so every
// figure in a table is a wait that some request really had. An empty slice
// gives 0.
func percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The 1e-9 keeps q*n = 999.0000000001 (a float artefact of 0.999*1000)
	// from rounding up to the next rank.
	i := int(math.Ceil(q*float64(n)-1e-9)) - 1
	return sorted[min(max(i, 0), n-1)]
}

// logHistogram counts durations in bins whose edges grow by a constant
// factor, so waits of 2 µs and 4 s show on one axis. Bin i holds
// [Edges[i], Edges[i+1]); the first bin also holds anything shorter and the
// last anything longer, so no sample is dropped.
type logHistogram struct {
	Edges  []time.Duration `json:"edges_ns"`
	Counts []int           `json:"counts"`
}

// newLogHistogram returns an empty histogram from lo to at least hi with
// perDecade bins per factor of ten. Edges are rounded to whole nanoseconds
// once, here, and binning compares against them, so a sample equal to an
// edge always lands in the bin that starts there.
func newLogHistogram(lo, hi time.Duration, perDecade int) *logHistogram {
	h := &logHistogram{Edges: []time.Duration{lo}}
	for i := 1; h.Edges[len(h.Edges)-1] < hi; i++ {
		e := time.Duration(math.Round(float64(lo) * math.Pow(10, float64(i)/float64(perDecade))))
		// Below a few nanoseconds rounding could repeat an edge; edges must
		// strictly increase for bin to be right.
		h.Edges = append(h.Edges, max(e, h.Edges[len(h.Edges)-1]+1))
	}
	h.Counts = make([]int, len(h.Edges)-1)
	return h
}

// bin returns the index of the bin that counts d.
func (h *logHistogram) bin(d time.Duration) int {
	// The number of inner edges <= d is the bin index.
	inner := h.Edges[1 : len(h.Edges)-1]
	i, found := slices.BinarySearch(inner, d)
	if found {
		i++
	}
	return i
}

// add counts d.
func (h *logHistogram) add(d time.Duration) { h.Counts[h.bin(d)]++ }

// total returns the number of samples counted.
func (h *logHistogram) total() int {
	n := 0
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// sparkRunes are the eight block heights of a sparkline.
var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// sparkline draws counts as one line of block characters, width columns
// per count. Heights follow log(1+count), because in a histogram of waits
// the interesting bins (the starved requests) hold a hundredth of a
// percent of the samples: on a linear scale they would not show. Any
// non-zero count shows at least the lowest block; zero is a space.
func sparkline(counts []int, width int) string {
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	var b strings.Builder
	for _, c := range counts {
		r := ' '
		if c > 0 {
			level := math.Log1p(float64(c)) / math.Log1p(float64(top))
			r = sparkRunes[max(int(math.Ceil(level*8))-1, 0)]
		}
		for range width {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// levelLine draws values (all >= 0) as block characters on a linear scale
// from 0 to top, one per value: for a series such as waste against N, where
// zero must look like zero. A value of 0 draws the lowest block so the
// column still reads as a measurement; top <= 0 draws the lowest block for
// everything.
func levelLine(values []float64, top float64) string {
	var b strings.Builder
	for _, v := range values {
		i := 0
		if top > 0 && v > 0 {
			i = min(int(math.Ceil(v/top*8))-1, 7)
		}
		b.WriteRune(sparkRunes[max(i, 0)])
	}
	return b.String()
}
