package main

import (
	"slices"
	"testing"
	"time"
)

// Nearest rank on ten values 1..10 ms: the q-quantile is the value of rank
// ceil(q·10), counted from 1.
func TestPercentileNearestRank(t *testing.T) {
	var waits []time.Duration
	for i := 1; i <= 10; i++ {
		waits = append(waits, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0, 1 * time.Millisecond},    // rank 0 clamps to the first
		{0.01, 1 * time.Millisecond}, // ceil(0.1) = 1
		{0.10, 1 * time.Millisecond}, // ceil(1.0) = 1, not 2: no float slop
		{0.11, 2 * time.Millisecond}, // ceil(1.1) = 2
		{0.50, 5 * time.Millisecond}, // ceil(5) = 5
		{0.90, 9 * time.Millisecond},
		{0.99, 10 * time.Millisecond}, // ceil(9.9) = 10
		{0.999, 10 * time.Millisecond},
		{1, 10 * time.Millisecond},
	} {
		if got := percentile(waits, c.q); got != c.want {
			t.Errorf("percentile(1..10ms, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(empty) = %v, want 0", got)
	}
}

// p99.9 of 1000 values is the 999th, not the 1000th: 0.999*1000 is
// 998.9999999999999 in floating point, and must still mean rank 999.
func TestPercentileP999Of1000(t *testing.T) {
	waits := make([]time.Duration, 1000)
	for i := range waits {
		waits[i] = time.Duration(i + 1)
	}
	if got := percentile(waits, 0.999); got != 999 {
		t.Errorf("p99.9 of 1..1000 = %d, want 999", got)
	}
	if got := percentile(waits, 0.99); got != 990 {
		t.Errorf("p99 of 1..1000 = %d, want 990", got)
	}
}

func TestSummarize(t *testing.T) {
	// 1, 2, 3, 4 ms and one of 90 ms: mean 20 ms, p50 the 3rd value.
	waits := []time.Duration{1e6, 2e6, 3e6, 4e6, 90e6}
	s := summarize(waits)
	want := waitSummary{P1: 1, P50: 3, P90: 90, P99: 90, P999: 90, Max: 90, Mean: 20}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
}

func TestLogHistogramEdges(t *testing.T) {
	// One bin per decade from 1 µs to 1 s: edges are the powers of ten.
	h := newLogHistogram(time.Microsecond, time.Second, 1)
	want := []time.Duration{time.Microsecond, 10 * time.Microsecond, 100 * time.Microsecond,
		time.Millisecond, 10 * time.Millisecond, 100 * time.Millisecond, time.Second}
	if !slices.Equal(h.Edges, want) {
		t.Fatalf("edges = %v, want %v", h.Edges, want)
	}
	if len(h.Counts) != 6 {
		t.Fatalf("%d bins, want 6", len(h.Counts))
	}

	// Four per decade: 1, 1.778, 3.162, 5.623, 10 (rounded to the ns).
	h4 := newLogHistogram(1000, 10000, 4)
	if want := []time.Duration{1000, 1778, 3162, 5623, 10000}; !slices.Equal(h4.Edges, want) {
		t.Errorf("edges at 4 per decade = %v, want %v", h4.Edges, want)
	}

	// At 1 ns and 20 per decade, rounding would repeat edges; they must
	// still increase strictly.
	hs := newLogHistogram(1, 100, 20)
	for i := 1; i < len(hs.Edges); i++ {
		if hs.Edges[i] <= hs.Edges[i-1] {
			t.Fatalf("edges not increasing at %d: %v", i, hs.Edges)
		}
	}
}

func TestLogHistogramBins(t *testing.T) {
	h := newLogHistogram(time.Microsecond, time.Second, 1) // bins [1µs,10µs) ... [100ms,1s)
	samples := []time.Duration{
		0,                      // below the first edge: bin 0
		999 * time.Nanosecond,  // bin 0
		time.Microsecond,       // on the first edge: bin 0
		9999 * time.Nanosecond, // bin 0
		10 * time.Microsecond,  // on an edge: the bin that starts there, 1
		5 * time.Millisecond,   // [1ms,10ms): bin 3
		10 * time.Millisecond,  // bin 4
		999 * time.Millisecond, // bin 5
		time.Second,            // on the last edge: bin 5, the last
		time.Hour,              // above: bin 5
	}
	for _, d := range samples {
		h.add(d)
	}
	if want := []int{4, 1, 0, 1, 1, 3}; !slices.Equal(h.Counts, want) {
		t.Errorf("counts = %v, want %v", h.Counts, want)
	}
	if h.total() != len(samples) {
		t.Errorf("total = %d, want %d", h.total(), len(samples))
	}
}

func TestSparkline(t *testing.T) {
	// Heights follow log(1+count) against log(1+max): with max 999,
	// count 1 is log 2/log 1000 = 0.100, 0.80 of a step -> level 1 of 8
	// (▁); 20 is log 21/log 1000 = 0.441, 3.5 steps -> 4 (▄); 999 is 8
	// (█). Zero is blank. Each bin two columns wide.
	got := sparkline([]int{0, 1, 20, 999}, 2)
	if want := "  ▁▁▄▄██"; got != want {
		t.Errorf("sparkline = %q, want %q", got, want)
	}
	if got := sparkline([]int{0, 0}, 1); got != "  " {
		t.Errorf("sparkline of zeros = %q, want blanks", got)
	}
}

func TestLevelLine(t *testing.T) {
	// Linear from 0 to 8: 0 -> ▁ (lowest, still a reading), 1 -> ▁, 4 -> ▄,
	// 8 -> █, and anything past the top clamps to █.
	if got, want := levelLine([]float64{0, 1, 4, 8, 9}, 8), "▁▁▄██"; got != want {
		t.Errorf("levelLine = %q, want %q", got, want)
	}
}

func TestIdealAndFloor(t *testing.T) {
	fc := fairnessConfig{Size: 5, Hold: time.Millisecond}
	if got := fc.ideal(50); got != 10*time.Millisecond {
		t.Errorf("ideal(50) = %v, want 10ms", got)
	}
	if got := fc.ideal(5); got != 0 {
		t.Errorf("ideal(5) with S=5 = %v, want 0: nobody waits", got)
	}
	// The pinned-sockets experiment: holds 1..20 (mean 10.5), think 1, 10 sockets. Ten threads
	// keep 10·10.5/11.5 = 9.13 sockets busy: 8.7% unused. Twenty threads
	// want more than ten sockets: the floor is 0.
	pc := pinnedConfig{Sockets: 10, HoldMin: 1, HoldMax: 20, Think: 1}
	if got := pc.floor(10); got < 0.0869 || got > 0.0870 {
		t.Errorf("floor(10) = %v, want 1-10.5/11.5 = 0.08696", got)
	}
	if got := pc.floor(20); got != 0 {
		t.Errorf("floor(20) = %v, want 0", got)
	}
}
