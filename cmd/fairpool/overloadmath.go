package main

import (
	"math/rand/v2"
	"slices"
	"time"
)

// The arithmetic of the overload experiment, apart from any clock or pool:
// the arrival schedule, and what a step's outcomes add up to.

// phase is a stretch of an open-loop schedule: arrivals at rate per second
// for dur.
type phase struct {
	rate float64
	dur  time.Duration
}

// poissonSchedule returns the arrival times, from 0, of a Poisson process
// that runs through phases one after another: the gaps are exponential
// with mean 1/rate of the phase they start in. Open loop: when a request
// arrives does not depend on how fast earlier ones were served, which is
// what overload is (a closed loop slows down with the pool and never
// overloads it). The same rng seed gives the same schedule.
func poissonSchedule(rng *rand.Rand, phases ...phase) []time.Duration {
	var arrivals []time.Duration
	var start time.Duration
	for _, ph := range phases {
		end := start + ph.dur
		if ph.rate > 0 {
			t := float64(start)
			for {
				t += rng.ExpFloat64() / ph.rate * float64(time.Second)
				if t >= float64(end) {
					break
				}
				arrivals = append(arrivals, time.Duration(t))
			}
		}
		start = end
	}
	return arrivals
}

// outcomeKind is what became of one request.
type outcomeKind uint8

const (
	inTime  outcomeKind = iota // got a connection and finished by its deadline
	late                       // got a connection, finished after its deadline
	failed                     // never got a connection: shed, timed out, cancelled
	errored                    // got one, but the work on it failed (a server error)
)

// outcome is one request of an open-loop run. Times are from its arrival.
type outcome struct {
	arrival time.Duration // from the start of the run
	kind    outcomeKind
	shed    bool          // failed with fairpool.ErrOverload: turned away by the pool
	wait    time.Duration // until it got a connection, or until it failed
	latency time.Duration // until it finished (in time or late)
}

// overloadStep is one pool at one offered load: what the requests that
// arrived in the step became.
type overloadStep struct {
	Pool       string  `json:"pool"`
	Load       float64 `json:"load"`        // offered, as a multiple of the pool's capacity
	OfferedRPS float64 `json:"offered_rps"` // arrivals per second asked of the schedule
	Arrivals   int     `json:"arrivals"`
	InTime     int     `json:"in_time"`
	Late       int     `json:"late"`
	Failed     int     `json:"failed"` // never got a connection
	Shed       int     `json:"shed"`   // of Failed: turned away with fairpool.ErrOverload
	Errors     int     `json:"errors"` // the work failed on a connection (a --dsn run)
	GoodputRPS float64 `json:"goodput_rps"`
	GoodputPct float64 `json:"goodput_pct"` // in time per second, in % of the capacity
	FailP50Ms  float64 `json:"fail_p50_ms"` // median time from arrival to failure
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"` // of the requests served, in time or late
	WaitP99Ms  float64 `json:"wait_p99_ms"`    // for a connection, of the requests served
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"` // wall time of the step, draining included
}

// summarizeStep adds up the outcomes of a step that offered arrivals for
// window at the given rate to a pool that serves capacity requests per
// second. Goodput is what the requests gave to their callers: those
// served in time, per second of the window, in % of the capacity.
func summarizeStep(pool string, load, rate float64, window time.Duration, capacity float64, outs []outcome) *overloadStep {
	s := &overloadStep{Pool: pool, Load: load, OfferedRPS: rate, Arrivals: len(outs)}
	var fails, lats, waits []time.Duration
	for _, o := range outs {
		switch o.kind {
		case inTime, late:
			if o.kind == inTime {
				s.InTime++
			} else {
				s.Late++
			}
			lats = append(lats, o.latency)
			waits = append(waits, o.wait)
		case failed:
			s.Failed++
			if o.shed {
				s.Shed++
			}
			fails = append(fails, o.wait)
		case errored:
			s.Errors++
		}
	}
	slices.Sort(fails)
	slices.Sort(lats)
	slices.Sort(waits)
	if window > 0 {
		s.GoodputRPS = float64(s.InTime) / window.Seconds()
	}
	if capacity > 0 {
		s.GoodputPct = 100 * s.GoodputRPS / capacity
	}
	s.FailP50Ms = ms(percentile(fails, 0.5))
	s.LatencyP50 = ms(percentile(lats, 0.5))
	s.LatencyP99 = ms(percentile(lats, 0.99))
	s.WaitP99Ms = ms(percentile(waits, 0.99))
	return s
}

// burstWindow is a slice of the burst run's timeline, by arrival time.
type burstWindow struct {
	StartMs float64 `json:"start_ms"` // from the start of the run
	Served  int     `json:"served"`
	Failed  int     `json:"failed"`
	WaitP99 float64 `json:"wait_p99_ms"` // of the requests served; 0 when none was
	normal  bool
}

// burstResult is what a burst did to one pool: the wait before it, and
// how long after it the waits came back.
type burstResult struct {
	Pool          string        `json:"pool"`
	BaselineP99Ms float64       `json:"baseline_wait_p99_ms"` // before the burst
	BurstP99Ms    float64       `json:"burst_wait_p99_ms"`    // of requests arriving during it
	BurstGoodput  float64       `json:"burst_goodput_pct"`    // served in time during it, in % of capacity
	RecoveredMs   float64       `json:"recovered_ms"`         // after the burst's end, -1: not within the run
	Windows       []burstWindow `json:"windows"`
}

// burstWindowLen is the resolution of the recovery time: long enough that
// a window at the normal load holds a few hundred requests, so its p99 is
// not one unlucky request.
const burstWindowLen = 200 * time.Millisecond

// analyzeBurst measures a run of normal load for before, a burst for
// burst, then normal load to the end. The baseline is the p99 wait of the
// requests served before the burst, skipping the first window (the pool
// settling in). A window is back to normal when the p99 wait of the
// requests arriving in it is within 2x the baseline and at most 1% of them
// failed: a pool still turning callers away at normal load has not
// recovered, however short its waits. The recovery time runs from the
// burst's end to the end of the last window that was not normal: from
// then on every window is.
func analyzeBurst(pool string, outs []outcome, before, burst, total time.Duration, capacity float64) *burstResult {
	r := &burstResult{Pool: pool, RecoveredMs: -1}
	var base, during []time.Duration
	inTimeN := 0
	n := int((total + burstWindowLen - 1) / burstWindowLen)
	waits := make([][]time.Duration, n)
	r.Windows = make([]burstWindow, n)
	for _, o := range outs {
		i := min(int(o.arrival/burstWindowLen), n-1)
		w := &r.Windows[i]
		served := o.kind == inTime || o.kind == late
		switch {
		case served:
			w.Served++
			waits[i] = append(waits[i], o.wait)
		case o.kind == failed:
			w.Failed++
		}
		switch {
		case o.arrival >= burstWindowLen && o.arrival < before && served:
			base = append(base, o.wait)
		case o.arrival >= before && o.arrival < before+burst:
			if served {
				during = append(during, o.wait)
			}
			if o.kind == inTime {
				inTimeN++
			}
		}
	}
	slices.Sort(base)
	slices.Sort(during)
	r.BaselineP99Ms = ms(percentile(base, 0.99))
	r.BurstP99Ms = ms(percentile(during, 0.99))
	if burst > 0 && capacity > 0 {
		r.BurstGoodput = 100 * float64(inTimeN) / burst.Seconds() / capacity
	}
	end := before + burst
	lastBad := time.Duration(-1)
	for i := range r.Windows {
		w := &r.Windows[i]
		slices.Sort(waits[i])
		w.StartMs = ms(time.Duration(i) * burstWindowLen)
		w.WaitP99 = ms(percentile(waits[i], 0.99))
		arrivals := w.Served + w.Failed
		w.normal = arrivals > 0 && w.Served > 0 && w.WaitP99 <= 2*r.BaselineP99Ms &&
			float64(w.Failed) <= 0.01*float64(arrivals)
		wEnd := time.Duration(i+1) * burstWindowLen
		if wEnd > end && !w.normal {
			lastBad = wEnd
		}
	}
	switch {
	case lastBad < 0:
		r.RecoveredMs = 0
	case !r.Windows[n-1].normal:
		// still not normal at the end of the run: RecoveredMs stays -1
	default:
		r.RecoveredMs = ms(lastBad - end)
	}
	return r
}
