package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/fairpool/fairpool"
)

// overloadConfig is the overload experiment: requests arrive open-loop
// (Poisson) at Loads times each pool's capacity, measured first in the
// same run; every request has Deadline from its arrival to get a
// connection and finish its Hold. With Burst, a burst run replaces the
// sweep: BaseLoad, then BurstLoad for BurstTime, then BaseLoad again.
type overloadConfig struct {
	Size         int           `json:"size"`
	Hold         time.Duration `json:"hold_ns"`
	Deadline     time.Duration `json:"deadline_ns"`
	Loads        []float64     `json:"loads"`
	Step         time.Duration `json:"step_ns"`     // arrivals per load step
	CapacityTime time.Duration `json:"capacity_ns"` // closed loop that measures the capacity
	Burst        bool          `json:"burst"`
	BaseLoad     float64       `json:"base_load"`
	BurstLoad    float64       `json:"burst_load"`
	BurstTime    time.Duration `json:"burst_ns"`
	Seed         uint64        `json:"seed"`
	Pools        []string      `json:"pools"`
	DB           *dbTarget     `json:"db,omitempty"`
}

// The burst run's normal stretches: before, long enough for a baseline of
// about a thousand requests; after, twice the 1 s the pool has to recover.
const (
	burstBefore = 1500 * time.Millisecond
	burstAfter  = 2 * time.Second
)

// overloadPoolRun is one pool's part of the experiment.
type overloadPoolRun struct {
	Pool        string          `json:"pool"`
	CapacityRPS float64         `json:"capacity_rps"` // closed loop, 2·S goroutines, no deadlines
	HoldMs      float64         `json:"hold_mean_ms"` // measured in the closed loop
	Steps       []*overloadStep `json:"steps,omitempty"`
	Burst       *burstResult    `json:"burst,omitempty"`

	outs [][]outcome // per step (or the burst run), for the raw CSV
}

// overloadSteps is the number of progress steps of the experiment.
func (c *overloadConfig) overloadSteps() int {
	if c.Burst {
		return len(c.Pools)
	}
	return len(c.Pools) * (len(c.Loads) + 1)
}

// runOverload runs the experiment for every pool in turn: it opens the
// pool, measures its capacity, and offers it each load (or the burst).
func runOverload(ctx context.Context, cfg *overloadConfig, prog *progress) ([]*overloadPoolRun, error) {
	var runs []*overloadPoolRun
	step, steps := 0, cfg.overloadSteps()
	for _, name := range cfg.Pools {
		r, err := runOverloadPool(ctx, cfg, name, prog, &step, steps)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func runOverloadPool(ctx context.Context, cfg *overloadConfig, name string, prog *progress, step *int, steps int) (*overloadPoolRun, error) {
	def, _ := lookupOverloadPool(name, cfg.DB != nil)
	runtime.GC() // so the previous pool's garbage is not collected on this one's time
	octx, cancel := context.WithTimeout(ctx, overloadTimeout+time.Duration(cfg.Size)*cfg.Hold)
	pool, err := def.open(octx, cfg)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %s", name, oneLine(err))
	}
	r := &overloadPoolRun{Pool: name}
	err = r.measure(ctx, cfg, pool, prog, step, steps)
	if cerr := pool.close(); cerr != nil && err == nil {
		err = fmt.Errorf("%s: close: %w", name, cerr)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, err
}

func (r *overloadPoolRun) measure(ctx context.Context, cfg *overloadConfig, pool requester, prog *progress, step *int, steps int) error {
	if !cfg.Burst {
		*step++
		prog.beginTimed(fmt.Sprintf("overload [%d/%d] %s, capacity", *step, steps, r.Pool), cfg.CapacityTime)
	}
	var err error
	r.CapacityRPS, r.HoldMs, err = measureCapacity(ctx, pool, 2*cfg.Size, cfg.CapacityTime)
	if !cfg.Burst {
		prog.end()
	}
	if err != nil {
		return fmt.Errorf("%s: capacity: %s", r.Pool, oneLine(err))
	}
	if r.CapacityRPS <= 0 {
		return fmt.Errorf("%s: capacity: no request finished in %v", r.Pool, cfg.CapacityTime)
	}
	if cfg.Burst {
		*step++
		total := burstBefore + cfg.BurstTime + burstAfter
		prog.beginTimed(fmt.Sprintf("overload burst [%d/%d] %s, %gx for %v", *step, steps, r.Pool, cfg.BurstLoad, cfg.BurstTime), total)
		base, burst := cfg.BaseLoad*r.CapacityRPS, cfg.BurstLoad*r.CapacityRPS
		rng := rand.New(rand.NewPCG(cfg.Seed, 0))
		sched := poissonSchedule(rng, phase{base, burstBefore}, phase{burst, cfg.BurstTime}, phase{base, burstAfter})
		outs, _ := runOpenLoop(ctx, pool, sched, cfg.Deadline)
		prog.end()
		r.Burst = analyzeBurst(r.Pool, outs, burstBefore, cfg.BurstTime, total, r.CapacityRPS)
		r.outs = append(r.outs, outs)
		return ctx.Err()
	}
	for i, load := range cfg.Loads {
		*step++
		prog.beginTimed(fmt.Sprintf("overload [%d/%d] %s, %gx", *step, steps, r.Pool, load), cfg.Step)
		rate := load * r.CapacityRPS
		// The same seed at the same load: each pool meets the same pattern
		// of gaps, scaled to its capacity.
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))
		sched := poissonSchedule(rng, phase{rate, cfg.Step})
		t0 := time.Now()
		outs, firstErr := runOpenLoop(ctx, pool, sched, cfg.Deadline)
		prog.end()
		if err := ctx.Err(); err != nil {
			return err
		}
		s := summarizeStep(r.Pool, load, rate, cfg.Step, r.CapacityRPS, outs)
		s.Seconds = time.Since(t0).Seconds()
		if firstErr != nil {
			s.FirstError = oneLine(firstErr)
		}
		r.Steps = append(r.Steps, s)
		r.outs = append(r.outs, outs)
		runtime.GC() // between steps, not during the next one
	}
	return nil
}

// capacityWindows is how many slices the capacity's closed loop is cut
// into. The capacity is the best slice's rate: a pool never serves more
// than it can, so a slow slice is the machine's other work (a shared
// 2-core machine stalls for tens of ms at times), not the pool's limit.
const capacityWindows = 4

// measureCapacity runs a closed loop of workers goroutines, each
// requesting again as soon as it is served, for d, with no deadline: the
// pool is never idle, so what it serves per second is its capacity. It
// returns that (the best of capacityWindows slices) and the mean hold.
func measureCapacity(ctx context.Context, pool requester, workers int, d time.Duration) (rps, holdMs float64, err error) {
	var mu sync.Mutex
	var perSlice [capacityWindows]int
	var held time.Duration
	var firstErr error
	start := time.Now()
	slice := d / capacityWindows
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var n [capacityWindows]int
			h := time.Duration(0)
			var werr error
			for ctx.Err() == nil && time.Since(start) < d {
				got, err := pool.request(ctx)
				now := time.Now()
				if err != nil && got.IsZero() && isTimeout(err) {
					// Adaptive gives newcomers 5 ms while a line stands, and
					// in a closed loop the line always stands: they ask again.
					continue
				}
				if err != nil {
					werr = err
					break
				}
				if i := int(now.Sub(start) / slice); i < capacityWindows { // what finished inside the window
					n[i]++
					h += now.Sub(got)
				}
			}
			mu.Lock()
			for i := range n {
				perSlice[i] += n[i]
			}
			held += h
			if firstErr == nil {
				firstErr = werr
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if firstErr != nil {
		return 0, 0, firstErr
	}
	done, best := 0, 0
	for _, n := range perSlice {
		done, best = done+n, max(best, n)
	}
	if done > 0 {
		holdMs = ms(held) / float64(done)
	}
	return float64(best) / slice.Seconds(), holdMs, nil
}

// runOpenLoop sends a request at each time of sched (from now), each in
// its own goroutine with deadline from its arrival, and waits for all to
// end. A request's arrival is its scheduled time: if the sender runs
// behind, the lost time counts against the request, as a client's would.
// It returns every outcome in the order of sched and the first error that
// was not the deadline or the pool turning a request away.
func runOpenLoop(ctx context.Context, pool requester, sched []time.Duration, deadline time.Duration) ([]outcome, error) {
	outs := make([]outcome, len(sched))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for i, off := range sched {
		if d := time.Until(start.Add(off)); d > 0 {
			// Sleeping overshoots by tens of µs; arrivals that came due
			// meanwhile go out at once, at their own arrival times.
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			outs = outs[:i]
			break
		}
		arrival := start.Add(off)
		wg.Go(func() {
			rctx, cancel := context.WithDeadline(ctx, arrival.Add(deadline))
			got, err := pool.request(rctx)
			now := time.Now()
			cancel()
			o := &outs[i]
			o.arrival = off
			switch {
			case err == nil:
				o.wait, o.latency = got.Sub(arrival), now.Sub(arrival)
				o.kind = inTime
				if now.After(arrival.Add(deadline)) {
					o.kind = late
				}
				return
			case got.IsZero():
				o.kind, o.wait = failed, now.Sub(arrival)
				o.shed = errors.Is(err, fairpool.ErrOverload)
				if isTimeout(err) {
					return
				}
			default:
				o.kind, o.wait = errored, got.Sub(arrival)
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return outs, firstErr
}
