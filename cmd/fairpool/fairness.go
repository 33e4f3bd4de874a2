package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"
)

// fairnessConfig is the fairness experiment: for every N in Workers and every
// pool in Pools, N goroutines share a pool of Size connections; each
// request acquires, holds its connection for Hold and releases it;
// Requests requests in all, split evenly; every wait is recorded.
type fairnessConfig struct {
	Workers  []int         `json:"workers"`
	Size     int           `json:"size"`
	Hold     time.Duration `json:"hold_ns"`
	Requests int           `json:"requests"`
	Timeout  time.Duration `json:"timeout_ns"`
	Pools    []string      `json:"pools"`
	DB       *dbTarget     `json:"db,omitempty"` // --dsn: the server; nil runs in-process over no-op connections
}

// ideal is the wait every request sees in a fair pool, (N/S)·h, as the fairness experiment
// reasons: a request that starts N-th in line waits for N/S holds. With no
// more workers than connections nobody waits.
func (c *fairnessConfig) ideal(n int) time.Duration {
	if n <= c.Size {
		return 0
	}
	return time.Duration(float64(n) / float64(c.Size) * float64(c.Hold))
}

// waitSummary is the distribution of waits of the requests that got a
// connection, in milliseconds, for tables, plots and results.json.
type waitSummary struct {
	P1   float64 `json:"p1_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p99_9_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// summarize describes sorted, an ascending slice of waits.
func summarize(sorted []time.Duration) waitSummary {
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	mean := 0.0
	if len(sorted) > 0 {
		mean = ms(sum) / float64(len(sorted))
	}
	return waitSummary{
		P1: ms(percentile(sorted, 0.01)), P50: ms(percentile(sorted, 0.50)),
		P90: ms(percentile(sorted, 0.90)), P99: ms(percentile(sorted, 0.99)),
		P999: ms(percentile(sorted, 0.999)), Max: ms(percentile(sorted, 1)),
		Mean: mean,
	}
}

// ms converts d to fractional milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fairnessRun is one pool at one N.
type fairnessRun struct {
	Pool     string        `json:"pool"`
	Workers  int           `json:"workers"`
	IdealMs  float64       `json:"ideal_ms"`
	Served   int           `json:"served"`   // requests that got a connection
	Timeouts int           `json:"timeouts"` // requests that gave up at the acquire timeout
	Errors   int           `json:"errors"`   // requests that failed otherwise (should be 0)
	Error    string        `json:"first_error,omitempty"`
	Wait     waitSummary   `json:"wait"`
	HoldMs   float64       `json:"hold_mean_ms"`      // measured, from getting the connection to giving it back
	FIFOMs   float64       `json:"fifo_ms,omitempty"` // --dsn: (N−S)/S × HoldMs, the steady wait in a FIFO pool
	Seconds  float64       `json:"seconds"`
	Hist     *logHistogram `json:"histogram"` // waits, 4 bins per decade from 1 µs to 10 s

	waits []time.Duration // every wait, ascending; in the raw CSV, not in JSON
}

// The histogram's range: from 1 µs (an uncontended acquire) to 10 s, past
// the default acquire timeout. The last bin also counts anything longer.
const (
	histLo = time.Microsecond
	histHi = 10 * time.Second
)

// runFairness runs the experiment for every N and pool, in that order, and
// returns one run per pair.
func runFairness(ctx context.Context, cfg *fairnessConfig, prog *progress) ([]*fairnessRun, error) {
	var runs []*fairnessRun
	steps, step := len(cfg.Workers)*len(cfg.Pools), 0
	for _, n := range cfg.Workers {
		for _, name := range cfg.Pools {
			step++
			prog.begin(fmt.Sprintf("fairness [%d/%d] %s, N=%d", step, steps, name, n), int64(cfg.Requests))
			r, err := runFairnessOnce(ctx, cfg, name, n, prog)
			prog.end()
			if err != nil {
				return nil, err
			}
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// lookupFairnessPool finds a pool by its --pools name.
func lookupFairnessPool(name string) (fairnessPool, bool) {
	for _, fp := range fairnessPools {
		if fp.name == name {
			return fp, true
		}
	}
	return fairnessPool{}, false
}

// openFairnessPool opens the pool called name: against the server of a
// --dsn run, with its S connections open, or in-process.
func openFairnessPool(ctx context.Context, cfg *fairnessConfig, name string) (requester, error) {
	if cfg.DB != nil {
		dp, _ := lookupDBPool(name)
		// Opening S connections and holding each once is bounded like a wait.
		wctx, cancel := context.WithTimeout(ctx, cfg.Timeout+time.Duration(cfg.Size)*cfg.Hold)
		defer cancel()
		return dp.open(wctx, cfg.DB, cfg.Size, cfg.Timeout, cfg.DB.HoldSQL)
	}
	fp, _ := lookupFairnessPool(name)
	p, err := fp.open(cfg.Size, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return sleepHold{p, cfg.Hold}, nil
}

// runFairnessOnce runs one pool at one N.
func runFairnessOnce(ctx context.Context, cfg *fairnessConfig, name string, n int, prog *progress) (*fairnessRun, error) {
	runtime.GC() // so the previous pool's garbage is not collected on this one's time
	pool, err := openFairnessPool(ctx, cfg, name)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%s: %s", name, oneLine(err))
	}
	type worker struct {
		waits          []time.Duration
		timeouts, errs int
		firstErr       error
		held           time.Duration
	}
	workers := make([]worker, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		quota := cfg.Requests / n
		if w < cfg.Requests%n {
			quota++
		}
		wk := &workers[w]
		wk.waits = make([]time.Duration, 0, quota)
		wg.Go(func() {
			<-start
			for range quota {
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				got, err := pool.request(ctx)
				t2 := time.Now()
				prog.add(1)
				switch {
				case err == nil:
				case got.IsZero() && isTimeout(err):
					wk.timeouts++
					continue
				default: // no connection, or the hold statement failed on it
					if wk.errs++; wk.firstErr == nil {
						wk.firstErr = err
					}
					continue
				}
				wk.waits = append(wk.waits, got.Sub(t0))
				wk.held += t2.Sub(got)
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	if err := pool.close(); err != nil {
		return nil, fmt.Errorf("%s: close: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &fairnessRun{Pool: name, Workers: n, IdealMs: ms(cfg.ideal(n)), Seconds: elapsed.Seconds(),
		Hist: newLogHistogram(histLo, histHi, 4)}
	var held time.Duration
	for i := range workers {
		wk := &workers[i]
		r.waits = append(r.waits, wk.waits...)
		r.Timeouts += wk.timeouts
		r.Errors += wk.errs
		held += wk.held
		if wk.firstErr != nil && r.Error == "" {
			r.Error = wk.firstErr.Error()
		}
	}
	slices.Sort(r.waits)
	r.Served = len(r.waits)
	for _, d := range r.waits {
		r.Hist.add(d)
	}
	r.Wait = summarize(r.waits)
	if r.Served > 0 {
		r.HoldMs = ms(held) / float64(r.Served)
	}
	if cfg.DB != nil && n > cfg.Size {
		r.FIFOMs = float64(n-cfg.Size) / float64(cfg.Size) * r.HoldMs
	}
	return r, nil
}

// throughput is the requests served per second of the run.
func (r *fairnessRun) throughput() float64 {
	if r.Seconds == 0 {
		return 0
	}
	return float64(r.Served) / r.Seconds
}
