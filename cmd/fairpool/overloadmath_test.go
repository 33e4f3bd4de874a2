package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A Poisson schedule has about rate·d arrivals, in order, inside the
// window, with exponential gaps (mean 1/rate), and repeats with its seed.
func TestPoissonSchedule(t *testing.T) {
	const rate = 2000.0
	d := 5 * time.Second
	a := poissonSchedule(rand.New(rand.NewPCG(1, 2)), phase{rate, d})
	want := rate * d.Seconds()
	// The count is Poisson: standard deviation sqrt(10000) = 100.
	if n := float64(len(a)); math.Abs(n-want) > 5*math.Sqrt(want) {
		t.Errorf("%d arrivals, want %.0f ± %.0f", len(a), want, 5*math.Sqrt(want))
	}
	if !slices.IsSorted(a) || a[0] < 0 || a[len(a)-1] >= d {
		t.Errorf("arrivals not ascending within [0, %v): first %v, last %v", d, a[0], a[len(a)-1])
	}
	// Exponential gaps: as many shorter than the mean·ln 2 (the median) as
	// longer, and about e^-2 = 13.5% longer than twice the mean.
	mean := time.Duration(float64(time.Second) / rate)
	short, long := 0, 0
	for i := 1; i < len(a); i++ {
		gap := a[i] - a[i-1]
		if gap < time.Duration(float64(mean)*math.Ln2) {
			short++
		}
		if gap > 2*mean {
			long++
		}
	}
	if f := float64(short) / float64(len(a)-1); math.Abs(f-0.5) > 0.03 {
		t.Errorf("%.3f of gaps below the median of an exponential, want 0.5", f)
	}
	if f := float64(long) / float64(len(a)-1); math.Abs(f-math.Exp(-2)) > 0.02 {
		t.Errorf("%.3f of gaps above twice the mean, want %.3f", f, math.Exp(-2))
	}
	if b := poissonSchedule(rand.New(rand.NewPCG(1, 2)), phase{rate, d}); !slices.Equal(a, b) {
		t.Error("the same seed gave another schedule")
	}
}

// Phases follow one another: each has its own rate, over its own stretch.
func TestPoissonSchedulePhases(t *testing.T) {
	s := poissonSchedule(rand.New(rand.NewPCG(7, 7)),
		phase{1000, time.Second}, phase{0, time.Second}, phase{3000, time.Second})
	count := func(lo, hi time.Duration) int {
		n := 0
		for _, a := range s {
			if a >= lo && a < hi {
				n++
			}
		}
		return n
	}
	if n := count(0, time.Second); n < 850 || n > 1150 {
		t.Errorf("first phase: %d arrivals, want about 1000", n)
	}
	if n := count(time.Second, 2*time.Second); n != 0 {
		t.Errorf("a phase of rate 0 has %d arrivals", n)
	}
	if n := count(2*time.Second, 3*time.Second); n < 2750 || n > 3250 {
		t.Errorf("last phase: %d arrivals, want about 3000", n)
	}
	if len(s) != count(0, 3*time.Second) {
		t.Error("arrivals past the last phase")
	}
}

func TestSummarizeStep(t *testing.T) {
	ms := time.Millisecond
	outs := []outcome{
		{kind: inTime, wait: 1 * ms, latency: 3 * ms},
		{kind: inTime, wait: 2 * ms, latency: 4 * ms},
		{kind: inTime, wait: 3 * ms, latency: 5 * ms},
		{kind: late, wait: 99 * ms, latency: 101 * ms},
		{kind: failed, shed: true, wait: 1 * ms},
		{kind: failed, shed: true, wait: 2 * ms},
		{kind: failed, wait: 100 * ms},
		{kind: errored, wait: 1 * ms},
	}
	s := summarizeStep("p", 2, 8, time.Second, 2, outs)
	if s.Arrivals != 8 || s.InTime != 3 || s.Late != 1 || s.Failed != 3 || s.Shed != 2 || s.Errors != 1 {
		t.Errorf("counts: %+v", *s)
	}
	// 3 in time in 1 s against a capacity of 2 per second: 150%.
	if s.GoodputRPS != 3 || s.GoodputPct != 150 {
		t.Errorf("goodput %.2f/s, %.1f%%; want 3/s, 150%%", s.GoodputRPS, s.GoodputPct)
	}
	// Nearest rank: the median of 1, 2, 100 ms is 2 ms; the p99 of the four
	// latencies served is the late one.
	if s.FailP50Ms != 2 || s.LatencyP50 != 4 || s.LatencyP99 != 101 || s.WaitP99Ms != 99 {
		t.Errorf("fail p50 %v, latency p50 %v p99 %v, wait p99 %v; want 2, 4, 101, 99",
			s.FailP50Ms, s.LatencyP50, s.LatencyP99, s.WaitP99Ms)
	}
	if e := summarizeStep("p", 1, 1, time.Second, 0, nil); e.GoodputPct != 0 || e.FailP50Ms != 0 {
		t.Errorf("an empty step: %+v", *e)
	}
}

// burstOutcomes makes a run of 100 arrivals per 200 ms window, each served
// after waitAt(arrival), or failed if waitAt returns a negative wait.
func burstOutcomes(total time.Duration, waitAt func(time.Duration) time.Duration) []outcome {
	var outs []outcome
	for a := time.Duration(0); a < total; a += 2 * time.Millisecond {
		w := waitAt(a)
		if w < 0 {
			outs = append(outs, outcome{arrival: a, kind: failed, wait: time.Millisecond})
			continue
		}
		outs = append(outs, outcome{arrival: a, kind: inTime, wait: w, latency: w + 2*time.Millisecond})
	}
	return outs
}

func TestAnalyzeBurst(t *testing.T) {
	sec := time.Second
	before, burst, total := sec, 2*sec, 4*sec // the burst ends at 3 s
	for _, c := range []struct {
		name   string
		waitAt func(time.Duration) time.Duration
		want   float64
	}{
		{"waits long until 3.5 s", func(a time.Duration) time.Duration {
			if a >= before && a < 3500*time.Millisecond {
				return 80 * time.Millisecond
			}
			return time.Millisecond
		}, 600}, // the window [3.4 s, 3.6 s) is the last one not normal
		{"sheds during the burst only", func(a time.Duration) time.Duration {
			if a >= before && a < before+burst && a%(4*time.Millisecond) == 0 {
				return -1
			}
			return time.Millisecond
		}, 0},
		{"sheds until 3.2 s", func(a time.Duration) time.Duration {
			if a >= before && a < 3200*time.Millisecond && a%(4*time.Millisecond) == 0 {
				return -1
			}
			return time.Millisecond
		}, 200},
		{"never comes back", func(a time.Duration) time.Duration {
			if a >= before {
				return 80 * time.Millisecond
			}
			return time.Millisecond
		}, -1},
	} {
		r := analyzeBurst("p", burstOutcomes(total, c.waitAt), before, burst, total, 500)
		if r.BaselineP99Ms != 1 {
			t.Errorf("%s: baseline p99 %v ms, want 1", c.name, r.BaselineP99Ms)
		}
		if r.RecoveredMs != c.want {
			t.Errorf("%s: recovered after %v ms, want %v", c.name, r.RecoveredMs, c.want)
		}
		if len(r.Windows) != 20 || r.Windows[19].StartMs != 3800 {
			t.Errorf("%s: %d windows, want 20 of 200 ms", c.name, len(r.Windows))
		}
	}
	// Half the arrivals of the burst served in time: 250 per second against
	// a capacity of 500.
	r := analyzeBurst("p", burstOutcomes(total, func(a time.Duration) time.Duration {
		if a >= before && a < before+burst && a%(4*time.Millisecond) == 0 {
			return -1
		}
		return time.Millisecond
	}), before, burst, total, 500)
	if r.BurstGoodput != 50 {
		t.Errorf("goodput during the burst %v%%, want 50%%", r.BurstGoodput)
	}
}
