package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// overloadResults is the overload experiment in results.json.
type overloadResults struct {
	Config *overloadConfig    `json:"config"`
	Runs   []*overloadPoolRun `json:"runs"`
}

// overloadFile is results.json of `fairpool sim overload`: the header every
// run has, and the experiment.
type overloadFile struct {
	*results
	Overload *overloadResults `json:"overload"`
}

// simulateOverload is simulate for `fairpool sim overload`: it runs the
// experiment, prints the report and writes the files, and returns the
// paths written.
func simulateOverload(ctx context.Context, opts *options, stdout io.Writer, prog *progress) ([]string, error) {
	cfg := opts.overload
	if cfg.DB != nil {
		// Before anything is printed: a server that is down fails the run in
		// one line.
		if err := cfg.DB.check(ctx, overloadTimeout); err != nil {
			return nil, err
		}
	}
	res := overloadFile{results: newResults("fairpool " + opts.command)}
	start := time.Now()
	if !opts.json {
		fmt.Fprintf(stdout, "%s on %s/%s, %d CPUs, GOMAXPROCS %d, %s", res.Command, res.OS, res.Arch, res.CPUs, res.GOMAXPROCS, res.Go)
		if res.LoadAvg != "" {
			fmt.Fprintf(stdout, ", load average %s", res.LoadAvg)
		}
		fmt.Fprintln(stdout)
	}
	runs, err := runOverload(ctx, cfg, prog)
	if err != nil {
		return nil, err
	}
	res.Overload = &overloadResults{Config: cfg, Runs: runs}
	res.Seconds = time.Since(start).Seconds()
	if !opts.json {
		fmt.Fprintln(stdout)
		printOverload(stdout, cfg, runs)
	}
	files, err := overloadFiles(&res, opts.raw)
	if err != nil {
		return nil, err
	}
	paths, err := writeFiles(opts.out, files)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", opts.out, err)
	}
	if opts.json {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "%s\n", data)
	}
	return paths, nil
}

// overloadFiles renders the figures, the raw data (if raw) and
// results.json, last, so that it can list the others.
func overloadFiles(res *overloadFile, raw bool) ([]outFile, error) {
	cfg, runs := res.Overload.Config, res.Overload.Runs
	name, fig := "overload", overloadFigure
	if cfg.Burst {
		name, fig = "overload-burst", burstFigure
	}
	var files []outFile
	for _, format := range plotFormats {
		data, err := fig(cfg, runs, format)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", name, format, err)
		}
		files = append(files, outFile{name + "." + format, data})
	}
	if raw {
		files = append(files, outFile{name + ".csv", overloadCSV(cfg, runs)})
	}
	for _, f := range files {
		res.Files = append(res.Files, f.name)
	}
	res.Files = append(res.Files, "results.json")
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(files, outFile{"results.json", append(data, '\n')}), nil
}

// kindNames are the outcomes as the raw CSV spells them.
var kindNames = [...]string{inTime: "in_time", late: "late", failed: "failed", errored: "error"}

// overloadCSV is one row per request: its pool, load, arrival, outcome,
// wait (to its connection or its failure) and latency (served only).
func overloadCSV(cfg *overloadConfig, runs []*overloadPoolRun) []byte {
	var b bytes.Buffer
	b.WriteString("pool,load,arrival_ns,outcome,shed,wait_ns,latency_ns\n")
	for _, r := range runs {
		for i, outs := range r.outs {
			load := "burst"
			if !cfg.Burst {
				load = strconv.FormatFloat(cfg.Loads[i], 'g', -1, 64)
			}
			for _, o := range outs {
				fmt.Fprintf(&b, "%s,%s,%d,%s,%t,%d,%d\n", r.Pool, load, int64(o.arrival), kindNames[o.kind], o.shed,
					int64(o.wait), int64(o.latency))
			}
		}
	}
	return b.Bytes()
}

// printOverload prints the report: the goodput of every pool at every
// load side by side, then each pool's detail; or the burst table.
func printOverload(w io.Writer, cfg *overloadConfig, runs []*overloadPoolRun) {
	where := "in-process, no-op connections held by sleeping"
	if cfg.DB != nil {
		where = fmt.Sprintf("on %s, each request runs %s", cfg.DB.Server, cfg.DB.HoldSQL)
	}
	if cfg.Burst {
		fmt.Fprintf(w, "Overload burst: S=%d, hold %v, deadline %v, %s\n", cfg.Size, cfg.Hold, cfg.Deadline, where)
		fmt.Fprintf(w, "Load in multiples of each pool's capacity: %gx for %v, then %gx for %v, then %gx for %v; wait p99 per %v window\n\n",
			cfg.BaseLoad, burstBefore, cfg.BurstLoad, cfg.BurstTime, cfg.BaseLoad, burstAfter, burstWindowLen)
		printBurst(w, runs)
		return
	}
	fmt.Fprintf(w, "Overload: S=%d, hold %v, deadline %v (wait + hold), %v of Poisson arrivals per load, %s\n",
		cfg.Size, cfg.Hold, cfg.Deadline, cfg.Step, where)
	fmt.Fprintf(w, "Load is in multiples of each pool's capacity, measured first in a closed loop.\n\n")
	fmt.Fprintln(w, "Goodput: served in time per second, in % of capacity")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "pool\tcapacity/s\t")
	for _, l := range cfg.Loads {
		fmt.Fprintf(tw, "%gx\t", l)
	}
	fmt.Fprintln(tw)
	for _, r := range runs {
		fmt.Fprintf(tw, "%s\t%.0f\t", r.Pool, r.CapacityRPS)
		for _, s := range r.Steps {
			fmt.Fprintf(tw, "%.1f%%\t", s.GoodputPct)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, r := range runs {
		fmt.Fprintf(w, "\n%s: capacity %.0f requests/s, mean hold %s\n", r.Pool, r.CapacityRPS, fmtMsUnit(r.HoldMs))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "load\toffered/s\tarrivals\tin time\tlate\tfailed\tshed\terrors\tgoodput\tfail p50\tlatency p50\tlatency p99\t")
		for _, s := range r.Steps {
			fmt.Fprintf(tw, "%gx\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f%%\t%s\t%s\t%s\t\n", s.Load, s.OfferedRPS, s.Arrivals,
				s.InTime, s.Late, s.Failed, s.Shed, s.Errors, s.GoodputPct,
				dashIfNone(s.Failed, s.FailP50Ms), dashIfNone(s.InTime+s.Late, s.LatencyP50), dashIfNone(s.InTime+s.Late, s.LatencyP99))
		}
		tw.Flush()
		for _, s := range r.Steps {
			if s.FirstError != "" {
				fmt.Fprintf(w, "  first error at %gx: %s\n", s.Load, s.FirstError)
				break
			}
		}
	}
	fmt.Fprintln(w, "\nfail p50: median time from arrival to failure; latency: from arrival to the end of the work, of the requests served.")
}

// printBurst prints one row per pool of the burst run.
func printBurst(w io.Writer, runs []*overloadPoolRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tcapacity/s\twait p99 before\twait p99 during\tgoodput during\tback within 2x after\t")
	for _, r := range runs {
		b := r.Burst
		back := "not within the run"
		if b.RecoveredMs >= 0 {
			back = fmtMsUnit(b.RecoveredMs)
			if b.RecoveredMs == 0 {
				back = "at once"
			}
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.1f%%\t%s\t\n", r.Pool, r.CapacityRPS, fmtMsUnit(b.BaselineP99Ms),
			fmtMsUnit(b.BurstP99Ms), b.BurstGoodput, back)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nA window is back when its p99 wait is within 2x the one before the burst and at most\n"+
		"1%% of its requests failed; the time runs from the burst's end to the end of the last window that was not.\n")
}

// dashIfNone formats v in ms, or "-" when no request it describes exists.
func dashIfNone(n int, v float64) string {
	if n == 0 {
		return "-"
	}
	return fmtMsUnit(v)
}

// overloadTitle is the first line of the figures' titles.
func overloadTitle(cfg *overloadConfig) string {
	where := "in-process"
	if cfg.DB != nil {
		where = cfg.DB.Server + ", " + cfg.DB.HoldSQL
	}
	return fmt.Sprintf("Overload (%s): pool of S=%d, hold %v, deadline %v per request, Poisson arrivals",
		where, cfg.Size, cfg.Hold, cfg.Deadline)
}
