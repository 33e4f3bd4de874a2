package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// The command line of `fairpool sim overload`.

// defaultOverload runs in under a minute on two cores: six pools, each
// measured for 1 s and offered six loads for 1 s each, plus the draining
// of every step (at most a deadline).
var defaultOverload = overloadConfig{Size: 4, Hold: 2 * time.Millisecond, Deadline: 100 * time.Millisecond,
	Loads: []float64{0.5, 0.7, 1, 1.5, 2, 3}, Step: time.Second, CapacityTime: time.Second,
	BaseLoad: 0.7, BurstLoad: 3, BurstTime: 5 * time.Second, Seed: 1}

const overloadAbout = `  overload  Requests arrive at random (Poisson), open loop, at 0.5x to 3x what the pool can
            serve, each with a deadline for its wait and its work: how many are served in
            time, how many late, and how fast do the others hear that they failed?`

var overloadUsage = `Usage: fairpool sim overload [flags]

` + overloadAbout + `

First each pool's capacity is measured in a closed loop (2·S goroutines
that ask again as soon as they are served, no deadlines), the best of
four quarters of --capacity-time. Then requests
arrive at --loads times that capacity, each in its own goroutine with a
context deadline of --deadline from its arrival, covering the wait for a
connection and the hold. A request served by its deadline counts as in
time; one served after it, late; one that never got a connection, failed
(shed: turned away by fairpool with ErrOverload). Goodput is the requests
served in time per second, in % of the capacity: a pool that serves
everyone late has none.

With --burst, a burst run replaces the sweep: --base-load for 1.5 s,
--burst-load for --burst-time, --base-load for 2 s; it reports the p99 wait
before the burst and how long after it the waits are back within 2x of it
(200 ms windows, at most 1% failed).

Flags:
  -s, --size S         connections in each pool (default 4)
  --hold h             work per request, with the connection held (default 2ms; --dsn: SELECT
                       pg_sleep(h) or SELECT SLEEP(h))
  --deadline d         each request's deadline from its arrival, for the wait and the hold (default 100ms)
  --loads list         offered loads, multiples of the capacity (default 0.5,0.7,1,1.5,2,3)
  --step d             arrivals per load step (default 1s); the step then drains, up to --deadline
  --capacity-time d    how long the closed loop measures each pool's capacity; the best of
                       its four quarters counts, as the machine's other work only lowers it (default 1s)
  --burst              run the burst instead of the sweep (about 9 s per pool)
  --base-load x        the burst run's normal load (default 0.7)
  --burst-load x       the burst's load (default 3)
  --burst-time d       how long the burst lasts (default 5s)
  --seed n             seed of the arrival times, so runs repeat (default 1)
  --pools list         pools to compare, in order (default all that run where the experiment runs).
                       In-process:
` + overloadPoolLines(overloadPools) + `                       With --dsn (fairpgx and pgxpool on PostgreSQL only):
` + overloadPoolLines(overloadDBPools) + `  --dsn DSN            run against this server (as for fairpool sim --dsn); each request holds
                       its connection with SELECT pg_sleep(h) or SELECT SLEEP(h)
  --out dir            plots (PNG, SVG), raw data (CSV) and results.json go here (default ./fairpool-sim/)
  --json               print results.json on stdout instead of the tables
  --raw                write the raw data: every request's outcome (default true; --raw=false skips it)
  -h, --help           this text

Output: a table per pool of in time, late, failed (shed), goodput, median
time to failure and p50/p99 latency of the requests served, at each load;
overload.png/.svg (goodput, p99 latency and median time to failure against
the offered load), overload.csv, results.json. With --burst:
overload-burst.png/.svg (p99 wait per window against time), overload-burst.csv.

Exit status: 0 done; 1 a run failed, or the --dsn server did not answer or
refused the login; 2 bad flags or a --dsn that does not parse (nothing is
written); 130 interrupted.
`

// overloadPoolLines lists pools for --help, one line each.
func overloadPoolLines(defs []overloadPoolDef) string {
	var b strings.Builder
	for _, p := range defs {
		fmt.Fprintf(&b, "%25s%-20s%s\n", "", p.name, p.desc)
	}
	return b.String()
}

// parseOverload parses the flags of `fairpool sim overload` into opts.
func parseOverload(opts *options, args []string) (*options, string, error) {
	bad := func(format string, a ...any) (*options, string, error) {
		return nil, "", &usageError{"fairpool sim overload: " + fmt.Sprintf(format, a...) + " (see fairpool sim overload --help)"}
	}
	c := defaultOverload
	c.Loads = slices.Clone(c.Loads)
	var dsn string
	fs := newOverloadFlagSet(opts, &c, &dsn)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, overloadUsage, nil
		}
		return bad("%v", err)
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["dsn"] {
		if dsn == "" {
			return bad("--dsn must not be empty")
		}
		t, err := parseDSN(dsn)
		if err != nil {
			return bad("--dsn: %s", oneLine(err))
		}
		c.DB = t
		c.DB.HoldSQL = t.holdStatement(c.Hold)
	}
	if !set["pools"] {
		kind := ""
		if c.DB != nil {
			kind = c.DB.Kind
		}
		c.Pools = overloadPoolNames(kind)
	}
	if opts.out == "" {
		return bad("--out must not be empty")
	}
	if msg := c.validate(); msg != "" {
		return bad("%s", msg)
	}
	opts.overload = &c
	return opts, "", nil
}

func newOverloadFlagSet(opts *options, c *overloadConfig, dsn *string) *flag.FlagSet {
	fs := flag.NewFlagSet(opts.command, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line, help on stdout
	fs.Usage = func() {}
	fs.StringVar(&opts.out, "out", "./fairpool-sim/", "")
	fs.BoolVar(&opts.json, "json", false, "")
	fs.BoolVar(&opts.raw, "raw", true, "")
	fs.StringVar(dsn, "dsn", "", "")
	fs.IntVar(&c.Size, "size", c.Size, "")
	fs.IntVar(&c.Size, "s", c.Size, "")
	fs.DurationVar(&c.Hold, "hold", c.Hold, "")
	fs.DurationVar(&c.Deadline, "deadline", c.Deadline, "")
	fs.Var(floatList(&c.Loads), "loads", "")
	fs.DurationVar(&c.Step, "step", c.Step, "")
	fs.DurationVar(&c.CapacityTime, "capacity-time", c.CapacityTime, "")
	fs.BoolVar(&c.Burst, "burst", false, "")
	fs.Float64Var(&c.BaseLoad, "base-load", c.BaseLoad, "")
	fs.Float64Var(&c.BurstLoad, "burst-load", c.BurstLoad, "")
	fs.DurationVar(&c.BurstTime, "burst-time", c.BurstTime, "")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "")
	// Which pools run depends on --dsn, known only once every flag is
	// parsed: validate checks the names against it.
	known := overloadPoolNames("")
	for _, p := range overloadDBPools {
		if !slices.Contains(known, p.name) {
			known = append(known, p.name)
		}
	}
	fs.Var(&poolList{&c.Pools, known}, "pools", "")
	return fs
}

// validate returns what is wrong with c, or "".
func (c *overloadConfig) validate() string {
	want := overloadPoolNames("")
	if c.DB != nil {
		want = overloadPoolNames(c.DB.Kind)
	}
	for _, name := range c.Pools {
		if !slices.Contains(want, name) {
			where := "in-process (without --dsn)"
			if c.DB != nil {
				where = "against " + c.DB.product()
			}
			return fmt.Sprintf("--pools: %s does not run %s; want one or more of %s", name, where, strings.Join(want, ","))
		}
	}
	switch {
	case c.Size < 1:
		return fmt.Sprintf("--size must be >= 1, got %d", c.Size)
	case c.Hold <= 0:
		return fmt.Sprintf("--hold must be > 0, got %v", c.Hold)
	case c.Deadline <= 0:
		return fmt.Sprintf("--deadline must be > 0, got %v", c.Deadline)
	case slices.ContainsFunc(c.Loads, func(x float64) bool { return !(x > 0 && x <= 100) }):
		return fmt.Sprintf("--loads: every load must be > 0 and <= 100, got %v", c.Loads)
	case c.Step <= 0:
		return fmt.Sprintf("--step must be > 0, got %v", c.Step)
	case c.CapacityTime <= 0:
		return fmt.Sprintf("--capacity-time must be > 0, got %v", c.CapacityTime)
	case !(c.BaseLoad > 0 && c.BaseLoad <= 100) || !(c.BurstLoad > 0 && c.BurstLoad <= 100):
		return fmt.Sprintf("--base-load and --burst-load must be > 0 and <= 100, got %g and %g", c.BaseLoad, c.BurstLoad)
	case c.BurstTime <= 0:
		return fmt.Sprintf("--burst-time must be > 0, got %v", c.BurstTime)
	}
	return ""
}
