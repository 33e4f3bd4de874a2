package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
)

// pinnedConfig is the pinned-sockets experiment: for every N in Threads and every
// pool in Pools, N threads share Sockets sockets. Each thread holds its
// socket for a random HoldMin..HoldMax time units, thinks for Think units
// and asks again. Time is scaled: one unit is Unit of wall-clock time. The
// first Warmup units (sockets being created, threads being pinned) are not
// measured; the next Duration units are.
type pinnedConfig struct {
	Sockets  int           `json:"sockets"`
	Threads  []int         `json:"threads"`
	Unit     time.Duration `json:"unit_ns"`
	HoldMin  int           `json:"hold_min_units"`
	HoldMax  int           `json:"hold_max_units"`
	Think    int           `json:"think_units"`
	Warmup   int           `json:"warmup_units"`
	Duration int           `json:"duration_units"`
	Seed     uint64        `json:"seed"`
	Pools    []string      `json:"pools"`
}

// floor is the unused share of socket-time that no pool can avoid: N
// threads that never wait keep N·h/(h+think) sockets busy on average (h
// the mean hold), so below S of them some sockets must sit idle. A pool
// that never leaves a socket idle while a thread wants one stays near this
// floor; the pinned-sockets write-up's "fake inefficiency due to the 1-second sleep" at N=S=10
// is this figure.
func (c *pinnedConfig) floor(n int) float64 {
	h := float64(c.HoldMin+c.HoldMax) / 2
	demand := float64(n) * h / (h + float64(c.Think))
	return max(0, 1-demand/float64(c.Sockets))
}

// runSeconds is the wall-clock length of one run.
func (c *pinnedConfig) runLength() time.Duration {
	return time.Duration(c.Warmup+c.Duration) * c.Unit
}

// pinnedRun is one pool at one N.
type pinnedRun struct {
	Pool     string  `json:"pool"`
	Threads  int     `json:"threads"`
	WastePct float64 `json:"unused_pct"` // unused socket-time in the measured window, percent
	FloorPct float64 `json:"floor_pct"`  // the think-time floor, percent
	Holds    int     `json:"holds"`      // checkouts that ended in the window
	WaitMs   float64 `json:"wait_mean_ms"`
	Wakeups  int64   `json:"wakeups,omitempty"`        // returns from cond.Wait (signal, broadcast)
	Futile   int64   `json:"futile_wakeups,omitempty"` // of which found the thread's socket still out
	Seconds  float64 `json:"seconds"`
}

// runPinned runs the experiment for every N and pool, in that order.
func runPinned(ctx context.Context, cfg *pinnedConfig, prog *progress) ([]*pinnedRun, error) {
	var runs []*pinnedRun
	steps, step := len(cfg.Threads)*len(cfg.Pools), 0
	for _, n := range cfg.Threads {
		for _, name := range cfg.Pools {
			step++
			spec, _ := lookupPinnedPool(name)
			prog.beginTimed(fmt.Sprintf("pinned [%d/%d] %s, N=%d", step, steps, name, n), cfg.runLength())
			r, err := runPinnedOnce(ctx, cfg, spec, n)
			prog.end()
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// runPinnedOnce runs one pool at one N. Socket-time is measured from the
// threads' side: a socket is in use from the moment checkout returns it to
// the moment its thread checks it in, clipped to the measured window.
func runPinnedOnce(ctx context.Context, cfg *pinnedConfig, spec pinnedPoolSpec, n int) (*pinnedRun, error) {
	runtime.GC()
	pool := spec.open(cfg.Sockets, cfg.Seed)
	unit := cfg.Unit
	type thread struct {
		busy, waited time.Duration
		holds        int
	}
	threads := make([]thread, n)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	w0 := start.Add(time.Duration(cfg.Warmup) * unit)
	w1 := w0.Add(time.Duration(cfg.Duration) * unit)
	var wg sync.WaitGroup
	for i := range threads {
		th := &threads[i]
		// Each thread draws its holds from its own generator, so a run
		// repeats with the same --seed whatever the scheduling.
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		wg.Go(func() {
			for {
				t0 := time.Now()
				checkin, err := pool.checkout(runCtx, i)
				if err != nil {
					return // the run is over
				}
				ta := time.Now()
				hold := cfg.HoldMin + rng.IntN(cfg.HoldMax-cfg.HoldMin+1)
				time.Sleep(time.Duration(hold) * unit)
				tr := time.Now()
				checkin()
				if tr.After(w0) && !tr.After(w1) {
					th.holds++
					th.waited += ta.Sub(t0)
				}
				th.busy += overlap(ta, tr, w0, w1)
				if tr.After(w1) {
					return
				}
				time.Sleep(time.Duration(cfg.Think) * unit)
			}
		})
	}
	// The run ends at w1, or earlier if ctx does (an interrupt): either way
	// runCtx ends, which ends fairpool's waits, and stop wakes the driver
	// pool's, which know nothing of contexts.
	end := time.AfterFunc(time.Until(w1), cancel)
	stopPool := context.AfterFunc(runCtx, pool.stop)
	wg.Wait() // every thread has seen the end, so nothing waits any more
	end.Stop()
	stopPool()
	cancel()
	if err := pool.close(); err != nil {
		return nil, fmt.Errorf("%s: close: %w", spec.name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &pinnedRun{Pool: spec.name, Threads: n, FloorPct: 100 * cfg.floor(n),
		Seconds: time.Since(start).Seconds()}
	var busy, waited time.Duration
	for _, th := range threads {
		busy += th.busy
		waited += th.waited
		r.Holds += th.holds
	}
	window := w1.Sub(w0)
	r.WastePct = 100 * (1 - float64(busy)/(float64(cfg.Sockets)*float64(window)))
	if r.Holds > 0 {
		r.WaitMs = ms(waited) / float64(r.Holds)
	}
	if pp, ok := pool.(*pinnedPool); ok {
		r.Wakeups, r.Futile = pp.counts()
	}
	return r, nil
}

// overlap returns how much of [a, b] falls inside [lo, hi].
func overlap(a, b, lo, hi time.Time) time.Duration {
	if a.Before(lo) {
		a = lo
	}
	if b.After(hi) {
		b = hi
	}
	return max(b.Sub(a), 0)
}
