package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// options is a parsed command line: which experiments run, with what, and
// where their output goes.
type options struct {
	command  string          // "sim", "sim fairness", "sim pinned" or "sim overload"
	fairness *fairnessConfig // nil: not run
	pinned   *pinnedConfig   // nil: not run
	overload *overloadConfig // nil: not run; runs alone (overloadcli.go)
	out      string          // directory for plots, raw data, results.json
	json     bool            // results.json on stdout instead of the tables
	raw      bool            // write the raw data (CSV)
}

// usageError is a bad command line: one line for the user, exit status 2.
type usageError struct{ msg string }

// Error returns the line to print.
func (e *usageError) Error() string { return e.msg }

// The defaults: the scaled ones run in under a minute together on two
// cores; --full switches to the experiments' original scale for any flag not given.
var (
	defaultFairness = fairnessConfig{Workers: []int{50}, Size: 5, Hold: time.Millisecond,
		Requests: 20000, Timeout: 5 * time.Second, Pools: allFairnessPools()}
	fullFairness = fairnessConfig{Workers: []int{5, 10, 25, 50, 100}, Size: 5, Hold: 10 * time.Millisecond,
		Requests: 100000, Timeout: 5 * time.Second, Pools: allFairnessPools()}
	// Against a server (--dsn), the shape of the README's benchmarks: 64
	// goroutines over 8 connections, a 1 ms sleep; about 1 s per pool on
	// loopback.
	dbFairness = fairnessConfig{Workers: []int{64}, Size: 8, Hold: time.Millisecond,
		Requests: 5000, Timeout: 5 * time.Second}
	defaultPinned = pinnedConfig{Sockets: 10, Threads: []int{10, 20, 30, 40, 50, 60, 80, 100},
		Unit: time.Millisecond, HoldMin: 1, HoldMax: 20, Think: 1, Warmup: 50, Duration: 600, Seed: 1,
		Pools: allPinnedPools()}
	fullPinned = pinnedConfig{Sockets: 10, Threads: stepList(10, 100, 5),
		Unit: time.Millisecond, HoldMin: 1, HoldMax: 20, Think: 1, Warmup: 100, Duration: 10000, Seed: 1,
		Pools: allPinnedPools()}
)

// stepList returns from, from+step, ... up to to.
func stepList(from, to, step int) []int {
	var ns []int
	for n := from; n <= to; n += step {
		ns = append(ns, n)
	}
	return ns
}

// parseArgs parses the arguments after the program name. It returns the
// help text instead of options when help was asked for, and a *usageError
// for anything wrong.
func parseArgs(args []string) (opts *options, help string, err error) {
	if len(args) == 0 {
		return nil, "", &usageError{"fairpool: no command (try fairpool sim, or fairpool --help)"}
	}
	if isHelp(args[0]) {
		return nil, topUsage, nil
	}
	if args[0] != "sim" {
		return nil, "", &usageError{fmt.Sprintf("fairpool: unknown command %q (want sim; see fairpool --help)", args[0])}
	}
	args = args[1:]
	exp := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		exp, args = args[0], args[1:]
	}
	opts = &options{command: strings.TrimSpace("sim " + exp)}
	if exp == "overload" {
		return parseOverload(opts, args)
	}
	usage, ok := map[string]string{"": simUsage, "fairness": fairnessUsage, "pinned": pinnedUsage}[exp]
	if !ok {
		return nil, "", &usageError{fmt.Sprintf("fairpool sim: unknown experiment %q (want fairness, pinned or overload)", exp)}
	}
	bad := func(format string, a ...any) (*options, string, error) {
		return nil, "", &usageError{fmt.Sprintf("fairpool %s: ", opts.command) + fmt.Sprintf(format, a...) +
			fmt.Sprintf(" (see fairpool %s --help)", opts.command)}
	}

	fc, pc := defaultFairness, defaultPinned
	fc.Workers, fc.Pools = slices.Clone(fc.Workers), slices.Clone(fc.Pools)
	pc.Threads, pc.Pools = slices.Clone(pc.Threads), slices.Clone(pc.Pools)
	var full bool
	var dsn string
	fs := newFlagSet(exp, opts, &full, &dsn, &fc, &pc)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, usage, nil
		}
		if exp == "pinned" && strings.HasSuffix(err.Error(), " -dsn") {
			return bad("--dsn runs the fairness experiment alone: fairpool sim --dsn ..., or fairpool sim fairness --dsn ...")
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
		applyDB(set, &fc, t)
	}
	if full {
		applyFull(set, &fc, &pc)
	}
	if opts.out == "" {
		return bad("--out must not be empty")
	}
	if exp != "pinned" {
		if msg := fc.validate(); msg != "" {
			return bad("%s", msg)
		}
		if fc.DB != nil {
			fc.DB.HoldSQL = fc.DB.holdStatement(fc.Hold)
		}
		opts.fairness = &fc
	}
	if exp == "" && fc.DB != nil {
		return opts, "", nil // the pinned experiment has no server to run against
	}
	if exp != "fairness" {
		if msg := pc.validate(); msg != "" {
			return bad("%s", msg)
		}
		opts.pinned = &pc
	}
	return opts, "", nil
}

// newFlagSet defines the flags of experiment exp ("" for both) on the
// given destinations: the common ones always, an experiment's knobs only
// when it runs alone.
func newFlagSet(exp string, opts *options, full *bool, dsn *string, fc *fairnessConfig, pc *pinnedConfig) *flag.FlagSet {
	fs := flag.NewFlagSet(opts.command, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line, help on stdout
	fs.Usage = func() {}
	fs.StringVar(&opts.out, "out", "./fairpool-sim/", "")
	fs.BoolVar(&opts.json, "json", false, "")
	fs.BoolVar(&opts.raw, "raw", true, "")
	fs.BoolVar(full, "full", false, "")
	if exp != "pinned" {
		fs.StringVar(dsn, "dsn", "", "")
	}
	switch exp {
	case "fairness":
		fs.Var(intList(&fc.Workers), "workers", "")
		fs.Var(intList(&fc.Workers), "n", "")
		fs.IntVar(&fc.Size, "size", fc.Size, "")
		fs.IntVar(&fc.Size, "s", fc.Size, "")
		fs.DurationVar(&fc.Hold, "hold", fc.Hold, "")
		fs.IntVar(&fc.Requests, "requests", fc.Requests, "")
		fs.DurationVar(&fc.Timeout, "timeout", fc.Timeout, "")
		// Which pools a --dsn run takes depends on the server, known only once
		// every flag is parsed: validate checks the list against it.
		known := allFairnessPools()
		for _, name := range dbPoolNames("") {
			if !slices.Contains(known, name) { // sql runs both ways
				known = append(known, name)
			}
		}
		fs.Var(&poolList{&fc.Pools, known}, "pools", "")
	case "pinned":
		fs.Var(intList(&pc.Threads), "threads", "")
		fs.Var(intList(&pc.Threads), "n", "")
		fs.IntVar(&pc.Sockets, "sockets", pc.Sockets, "")
		fs.IntVar(&pc.Sockets, "s", pc.Sockets, "")
		fs.DurationVar(&pc.Unit, "unit", pc.Unit, "")
		fs.IntVar(&pc.HoldMin, "hold-min", pc.HoldMin, "")
		fs.IntVar(&pc.HoldMax, "hold-max", pc.HoldMax, "")
		fs.IntVar(&pc.Think, "think", pc.Think, "")
		fs.IntVar(&pc.Warmup, "warmup", pc.Warmup, "")
		fs.IntVar(&pc.Duration, "duration", pc.Duration, "")
		fs.Uint64Var(&pc.Seed, "seed", pc.Seed, "")
		fs.Var(&poolList{&pc.Pools, allPinnedPools()}, "pools", "")
	}
	return fs
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "--help" || arg == "-help"
}

// applyFull switches every setting the user did not give to the experiments' original
// scale. Only one experiment's flags exist at a time, so -n is --workers or
// --threads, never both.
func applyFull(set map[string]bool, fc *fairnessConfig, pc *pinnedConfig) {
	given := func(names ...string) bool { return slices.ContainsFunc(names, func(n string) bool { return set[n] }) }
	if !given("workers", "n") {
		fc.Workers = slices.Clone(fullFairness.Workers)
	}
	if !given("hold") {
		fc.Hold = fullFairness.Hold
	}
	if !given("requests") {
		fc.Requests = fullFairness.Requests
	}
	if !given("size", "s") {
		fc.Size = fullFairness.Size // already the default, except with --dsn
	}
	if !given("threads", "n") {
		pc.Threads = slices.Clone(fullPinned.Threads)
	}
	if !given("warmup") {
		pc.Warmup = fullPinned.Warmup
	}
	if !given("duration") {
		pc.Duration = fullPinned.Duration
	}
}

// applyDB points the fairness experiment at the server t: every setting
// the user did not give takes the --dsn default, and the pools are those
// that run against t.
func applyDB(set map[string]bool, fc *fairnessConfig, t *dbTarget) {
	fc.DB = t
	given := func(names ...string) bool { return slices.ContainsFunc(names, func(n string) bool { return set[n] }) }
	if !given("workers", "n") {
		fc.Workers = slices.Clone(dbFairness.Workers)
	}
	if !given("size", "s") {
		fc.Size = dbFairness.Size
	}
	if !given("hold") {
		fc.Hold = dbFairness.Hold
	}
	if !given("requests") {
		fc.Requests = dbFairness.Requests
	}
	if !given("timeout") {
		fc.Timeout = dbFairness.Timeout
	}
	if !given("pools") {
		fc.Pools = dbPoolNames(t.Kind)
	}
}

// validate returns what is wrong with c, or "".
func (c *fairnessConfig) validate() string {
	if msg := c.validatePools(); msg != "" {
		return msg
	}
	switch {
	case slices.ContainsFunc(c.Workers, func(n int) bool { return n < 1 }):
		return fmt.Sprintf("--workers: every N must be >= 1, got %v", c.Workers)
	case c.Size < 1:
		return fmt.Sprintf("--size must be >= 1, got %d", c.Size)
	case c.Hold <= 0:
		return fmt.Sprintf("--hold must be > 0, got %v", c.Hold)
	case c.Requests < 1:
		return fmt.Sprintf("--requests must be >= 1, got %d", c.Requests)
	case c.Timeout <= 0:
		return fmt.Sprintf("--timeout must be > 0, got %v", c.Timeout)
	}
	return ""
}

// validatePools returns what is wrong with the pools for where c runs:
// in-process, or against the server of a --dsn.
func (c *fairnessConfig) validatePools() string {
	inProcess := allFairnessPools()
	for _, name := range c.Pools {
		switch {
		case c.DB == nil && !slices.Contains(inProcess, name):
			return fmt.Sprintf("--pools: %s runs against a server: give --dsn (without it, want one or more of %s)",
				name, strings.Join(inProcess, ","))
		case c.DB != nil && !slices.Contains(dbPoolNames(c.DB.Kind), name):
			return fmt.Sprintf("--pools: %s does not run against %s (with this --dsn, want one or more of %s)",
				name, c.DB.product(), strings.Join(dbPoolNames(c.DB.Kind), ","))
		}
	}
	return ""
}

// validate returns what is wrong with c, or "".
func (c *pinnedConfig) validate() string {
	switch {
	case slices.ContainsFunc(c.Threads, func(n int) bool { return n < 1 }):
		return fmt.Sprintf("--threads: every N must be >= 1, got %v", c.Threads)
	case c.Sockets < 1:
		return fmt.Sprintf("--sockets must be >= 1, got %d", c.Sockets)
	case c.Unit <= 0:
		return fmt.Sprintf("--unit must be > 0, got %v", c.Unit)
	case c.HoldMin < 0:
		return fmt.Sprintf("--hold-min must be >= 0, got %d", c.HoldMin)
	case c.HoldMax < max(c.HoldMin, 1):
		return fmt.Sprintf("--hold-max must be >= 1 and >= --hold-min (%d), got %d", c.HoldMin, c.HoldMax)
	case c.Think < 0:
		return fmt.Sprintf("--think must be >= 0, got %d", c.Think)
	case c.Warmup < 0:
		return fmt.Sprintf("--warmup must be >= 0, got %d", c.Warmup)
	case c.Duration < 1:
		return fmt.Sprintf("--duration must be >= 1, got %d", c.Duration)
	}
	return ""
}

// listFlag is a flag of comma-separated values ("50" or
// "5,10,25,50,100"); setting it replaces the default. what names a value
// in the error for one that does not parse.
type listFlag[T any] struct {
	vals   *[]T
	parse  func(string) (T, error)
	format func(T) string
	what   string
}

// intList is a flag of comma-separated counts.
func intList(p *[]int) *listFlag[int] {
	return &listFlag[int]{p, strconv.Atoi, strconv.Itoa, "a whole number"}
}

// floatList is a flag of comma-separated numbers: "0.5,1,2".
func floatList(p *[]float64) *listFlag[float64] {
	return &listFlag[float64]{p,
		func(s string) (float64, error) { return strconv.ParseFloat(s, 64) },
		func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) },
		"a number"}
}

// String implements flag.Value.
func (l *listFlag[T]) String() string {
	if l == nil || l.vals == nil {
		return ""
	}
	var s []string
	for _, v := range *l.vals {
		s = append(s, l.format(v))
	}
	return strings.Join(s, ",")
}

// Set implements flag.Value: it replaces the list.
func (l *listFlag[T]) Set(v string) error {
	var vs []T
	for _, f := range strings.Split(v, ",") {
		x, err := l.parse(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not %s", f, l.what)
		}
		vs = append(vs, x)
	}
	*l.vals = vs
	return nil
}

// poolList is a flag of comma-separated pool names, each one of known.
type poolList struct {
	names *[]string
	known []string
}

// String implements flag.Value.
func (l *poolList) String() string {
	if l == nil || l.names == nil {
		return ""
	}
	return strings.Join(*l.names, ",")
}

// Set implements flag.Value: it replaces the list, checking each name.
func (l *poolList) Set(v string) error {
	var names []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		switch {
		case !slices.Contains(l.known, f):
			return fmt.Errorf("unknown pool %q (want one or more of %s)", f, strings.Join(l.known, ","))
		case slices.Contains(names, f):
			return fmt.Errorf("pool %q named twice", f)
		}
		names = append(names, f)
	}
	*l.names = names
	return nil
}
