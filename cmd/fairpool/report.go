package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The text report: what `fairpool sim` prints on stdout. Tables are
// right-aligned numbers; histograms are one sparkline per pool on a shared
// log axis.

// printFairness prints, for every N, the table of wait percentiles and the
// histograms, then, for a sweep, the percentiles against N.
func printFairness(w io.Writer, cfg *fairnessConfig, runs []*fairnessRun) {
	if db := cfg.DB; db == nil {
		fmt.Fprintf(w, "Fairness: N goroutines share S=%d connections; each request acquires,\n", cfg.Size)
		fmt.Fprintf(w, "holds the connection %v, releases; %d requests per pool, acquire timeout %v.\n", cfg.Hold, cfg.Requests, cfg.Timeout)
	} else {
		fmt.Fprintf(w, "Fairness against %s: N goroutines share S=%d\n", db.name(), cfg.Size)
		fmt.Fprintf(w, "connections; each request acquires one, runs %s on it, releases it;\n", db.HoldSQL)
		fmt.Fprintf(w, "%d requests per pool, acquire timeout %v.\n", cfg.Requests, cfg.Timeout)
	}
	for _, n := range cfg.Workers {
		byN := runsAt(runs, n)
		if cfg.DB == nil {
			printWaits(w, cfg, n, byN)
		} else {
			printDBWaits(w, cfg, n, byN)
		}
		fmt.Fprintln(w, "\nWait histogram, log time axis; bar height grows with log(count), so a handful of starved requests shows:")
		printHistograms(w, byN)
		for _, r := range byN {
			if r.Error != "" {
				fmt.Fprintf(w, "%s: %d errors, first: %s\n", r.Pool, r.Errors, r.Error)
			}
		}
	}
	if len(cfg.Workers) > 1 {
		printSweep(w, cfg, runs, "p50", func(s waitSummary) float64 { return s.P50 })
		printSweep(w, cfg, runs, "p99.9", func(s waitSummary) float64 { return s.P999 })
	}
}

// printWaits prints the table of waits at N = n of an in-process run,
// against the ideal (N/S)·h.
func printWaits(w io.Writer, cfg *fairnessConfig, n int, runs []*fairnessRun) {
	ideal := cfg.ideal(n)
	fmt.Fprintf(w, "\nN=%d: ideal wait (N/S)·h = %s. Waits in ms, over the requests that got a connection.\n", n, fmtIdeal(ideal))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tp1\tp50\tp90\tp99\tp99.9\tmax\tmax/ideal\ttimeouts\terrors\t")
	for _, r := range runs {
		s := r.Wait
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", r.Pool,
			fmtMs(s.P1), fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.P999), fmtMs(s.Max),
			ratio(s.Max, r.IdealMs), r.Timeouts, r.Errors)
	}
	if i := fmtMs(ms(ideal)); ideal > 0 {
		fmt.Fprintf(tw, "ideal\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\n", i, i, i, i, i, i)
	}
	tw.Flush()
}

// printDBWaits prints the table of waits at N = n of a --dsn run. On a
// server a hold lasts longer than h (the sleep overshoots, the round trip
// and release add to it), and by a different amount in each pool, so each
// pool is held to its own FIFO wait, (N−S)/S of its measured holds,
// rather than to (N/S)·h.
func printDBWaits(w io.Writer, cfg *fairnessConfig, n int, runs []*fairnessRun) {
	fmt.Fprintf(w, "\nN=%d: waits in ms, over the requests that got a connection. ", n)
	if n <= cfg.Size {
		fmt.Fprintln(w, "No more workers than\nconnections: nobody need wait.")
	} else {
		fmt.Fprintf(w, "(N/S)·h = %v, but a hold\nlasts longer than h here, so fifo = (N−S)/S × hold, the steady wait in a FIFO pool.\n", cfg.ideal(n))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tp1\tp50\tp90\tp99\tp99.9\tmax\thold\tfifo\tmax/fifo\treq/s\ttimeouts\terrors\t")
	for _, r := range runs {
		s := r.Wait
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%d\t\n", r.Pool,
			fmtMs(s.P1), fmtMs(s.P50), fmtMs(s.P90), fmtMs(s.P99), fmtMs(s.P999), fmtMs(s.Max),
			fmtMs(r.HoldMs), fmtMs(r.FIFOMs), ratio(s.Max, r.FIFOMs), r.throughput(), r.Timeouts, r.Errors)
	}
	tw.Flush()
	fmt.Fprintln(w, "hold: mean ms from getting a connection to giving it back (statement, round trip, release);")
	fmt.Fprintln(w, "req/s: requests served per second.")
}

// runsAt returns the runs at N = n, in pool order.
func runsAt(runs []*fairnessRun, n int) []*fairnessRun {
	var out []*fairnessRun
	for _, r := range runs {
		if r.Workers == n {
			out = append(out, r)
		}
	}
	return out
}

// histColumns is how many characters one histogram bin takes: two, so a
// decade (four bins) is eight columns wide and its label fits.
const histColumns = 2

// printHistograms prints one sparkline per run under a decade scale.
func printHistograms(w io.Writer, runs []*fairnessRun) {
	if len(runs) == 0 {
		return
	}
	namew := 0
	for _, r := range runs {
		namew = max(namew, len(r.Pool))
	}
	h := runs[0].Hist
	var scale strings.Builder
	for i, e := range h.Edges {
		if !isPowerOfTen(e) {
			continue
		}
		if pad := i*histColumns - len([]rune(scale.String())); pad >= 0 {
			scale.WriteString(strings.Repeat(" ", pad) + fmtDecade(e))
		}
	}
	fmt.Fprintf(w, "%-*s  %s\n", namew, "", scale.String())
	for _, r := range runs {
		fmt.Fprintf(w, "%-*s  %s\n", namew, r.Pool, sparkline(r.Hist.Counts, histColumns))
	}
}

// printSweep prints one percentile of every pool against N.
func printSweep(w io.Writer, cfg *fairnessConfig, runs []*fairnessRun, name string, pick func(waitSummary) float64) {
	fmt.Fprintf(w, "\n%s wait (ms) against N:\n", name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "pool\t")
	for _, n := range cfg.Workers {
		fmt.Fprintf(tw, "N=%d\t", n)
	}
	fmt.Fprint(tw, "\nideal\t")
	for _, n := range cfg.Workers {
		fmt.Fprintf(tw, "%s\t", fmtMs(ms(cfg.ideal(n))))
	}
	fmt.Fprintln(tw)
	for _, pool := range cfg.Pools {
		fmt.Fprintf(tw, "%s\t", pool)
		for _, n := range cfg.Workers {
			i := slices.IndexFunc(runs, func(r *fairnessRun) bool { return r.Pool == pool && r.Workers == n })
			fmt.Fprintf(tw, "%s\t", fmtMs(pick(runs[i].Wait)))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// printPinned prints unused socket-time against N, one column per pool, a
// trend line per pool and a one-line verdict per pool.
func printPinned(w io.Writer, cfg *pinnedConfig, runs []*pinnedRun) {
	fmt.Fprintf(w, "Pinned sockets: N threads share S=%d sockets; each holds a socket for %d–%d units,\n", cfg.Sockets, cfg.HoldMin, cfg.HoldMax)
	fmt.Fprintf(w, "thinks %d unit(s), asks again; 1 unit = %v; %d units measured after %d of warm-up; seed %d.\n",
		cfg.Think, cfg.Unit, cfg.Duration, cfg.Warmup, cfg.Seed)
	fmt.Fprintln(w, "\nUnused socket-time, % (floor: what the think time alone leaves unused):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "N\tfloor\t")
	for _, p := range cfg.Pools {
		fmt.Fprintf(tw, "%s\t", p)
	}
	fmt.Fprintln(tw)
	for _, n := range cfg.Threads {
		fmt.Fprintf(tw, "%d\t%.1f\t", n, 100*cfg.floor(n))
		for _, p := range cfg.Pools {
			fmt.Fprintf(tw, "%.2f\t", pinnedAt(runs, p, n).WastePct)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()

	top := 0.0
	for _, r := range runs {
		top = max(top, r.WastePct)
	}
	fmt.Fprintf(w, "\nAgainst N (%d to %d, linear, 0 to %.1f%%):\n", cfg.Threads[0], cfg.Threads[len(cfg.Threads)-1], top)
	namew := len("floor")
	for _, p := range cfg.Pools {
		namew = max(namew, len(p))
	}
	for _, p := range cfg.Pools {
		var vs []float64
		for _, n := range cfg.Threads {
			vs = append(vs, pinnedAt(runs, p, n).WastePct)
		}
		fmt.Fprintf(w, "%-*s  %s  %s\n", namew, p, levelLine(vs, top), verdict(cfg, runs, p))
	}
}

// pinnedAt returns the run of pool at N = n.
func pinnedAt(runs []*pinnedRun, pool string, n int) *pinnedRun {
	i := slices.IndexFunc(runs, func(r *pinnedRun) bool { return r.Pool == pool && r.Threads == n })
	return runs[i]
}

// verdict sums a pool up over the N where thinking alone leaves nothing
// unused (floor 0): the range of its waste there.
func verdict(cfg *pinnedConfig, runs []*pinnedRun, pool string) string {
	lo, hi, from, to := 100.0, 0.0, 0, 0
	for _, n := range cfg.Threads {
		if cfg.floor(n) > 0 {
			continue
		}
		v := pinnedAt(runs, pool, n).WastePct
		lo, hi = min(lo, v), max(hi, v)
		if from == 0 {
			from = n
		}
		to = n
	}
	if from == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f–%.2f%% unused at N=%d..%d", lo, hi, from, to)
}

// fmtMs formats milliseconds with three significant digits or so.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 0.01:
		return fmt.Sprintf("%.4f", v)
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// fmtIdeal formats the ideal wait, which is zero without contention.
func fmtIdeal(d time.Duration) string {
	if d == 0 {
		return "0 (no more workers than connections)"
	}
	return d.String()
}

// ratio formats a/b, or "-" when b is zero.
func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// isPowerOfTen reports whether d is a whole power of ten of nanoseconds.
func isPowerOfTen(d time.Duration) bool {
	for d >= 10 && d%10 == 0 {
		d /= 10
	}
	return d == 1
}

// fmtDecade labels a power of ten: 1µs, 10µs, 100µs, 1ms ... 10s.
func fmtDecade(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%ds", d/time.Second)
	case d >= time.Millisecond:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d >= time.Microsecond:
		return fmt.Sprintf("%dµs", d/time.Microsecond)
	}
	return fmt.Sprintf("%dns", d)
}
