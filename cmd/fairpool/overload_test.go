package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOverload(t *testing.T) {
	opts, help, err := parseArgs([]string{"sim", "overload"})
	if err != nil || help != "" {
		t.Fatalf("parseArgs = %q, %v", help, err)
	}
	c := opts.overload
	if c == nil || opts.fairness != nil || opts.pinned != nil {
		t.Fatalf("sim overload must run the overload experiment alone: %+v", opts)
	}
	if c.Size != 4 || c.Hold != 2*time.Millisecond || c.Deadline != 100*time.Millisecond ||
		!slices.Equal(c.Loads, []float64{0.5, 0.7, 1, 1.5, 2, 3}) || c.Step != time.Second || c.Burst ||
		!slices.Equal(c.Pools, overloadPoolNames("")) || len(c.Pools) != 6 {
		t.Errorf("defaults = %+v", *c)
	}
	opts, _, err = parseArgs(strings.Fields("sim overload -s 2 --hold 1ms --deadline 50ms --loads 0.5,2 --step 300ms " +
		"--capacity-time 200ms --burst --base-load 0.5 --burst-load 4 --burst-time 1s --seed 9 --pools chan,fairpool --json --out x"))
	if err != nil {
		t.Fatal(err)
	}
	c = opts.overload
	if c.Size != 2 || c.Hold != time.Millisecond || c.Deadline != 50*time.Millisecond || !slices.Equal(c.Loads, []float64{0.5, 2}) ||
		c.Step != 300*time.Millisecond || c.CapacityTime != 200*time.Millisecond || !c.Burst || c.BaseLoad != 0.5 ||
		c.BurstLoad != 4 || c.BurstTime != time.Second || c.Seed != 9 || !slices.Equal(c.Pools, []string{"chan", "fairpool"}) ||
		!opts.json || opts.out != "x" {
		t.Errorf("parsed %+v", *c)
	}
	// --dsn picks the server's pools and the statement of --hold.
	opts, _, err = parseArgs(strings.Fields("sim overload --hold 3ms --dsn postgres://u@h:5432/db"))
	if err != nil {
		t.Fatal(err)
	}
	if c := opts.overload; !slices.Equal(c.Pools, []string{"fairpgx", "pgxpool", "sqlpool", "sql"}) ||
		c.DB.HoldSQL != "SELECT pg_sleep(0.003)" {
		t.Errorf("--dsn postgres: pools %v, hold %q", c.Pools, c.DB.HoldSQL)
	}
	opts, _, err = parseArgs(strings.Fields("sim overload --dsn mysql://root@h/test"))
	if err != nil {
		t.Fatal(err)
	}
	if c := opts.overload; !slices.Equal(c.Pools, []string{"sqlpool", "sql"}) || c.DB.HoldSQL != "SELECT SLEEP(0.002)" {
		t.Errorf("--dsn mysql: pools %v, hold %q", c.Pools, c.DB.HoldSQL)
	}
}

func TestParseOverloadRejects(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"sim overload --size 0", "--size must be >= 1"},
		{"sim overload --hold 0s", "--hold must be > 0"},
		{"sim overload --deadline -1ms", "--deadline must be > 0"},
		{"sim overload --loads 1,0", "every load must be > 0"},
		{"sim overload --loads 1,x", `"x" is not a number`},
		{"sim overload --step 0s", "--step must be > 0"},
		{"sim overload --capacity-time 0s", "--capacity-time must be > 0"},
		{"sim overload --burst-load 0", "--burst-load must be > 0"},
		{"sim overload --burst-time 0s", "--burst-time must be > 0"},
		{"sim overload --pools fairpool,nope", `unknown pool "nope"`},
		{"sim overload --pools fairpgx", "fairpgx does not run in-process"},
		{"sim overload --dsn mysql://root@h/test --pools fairpgx", "fairpgx does not run against MySQL"},
		{"sim overload --pools chan --dsn postgres://u@h/db", "chan does not run against PostgreSQL"},
		{"sim overload --full", "flag provided but not defined: -full"},
		{"sim overload --dsn=", "--dsn must not be empty"},
		{"sim overload extra", `unexpected argument "extra"`},
	} {
		opts, help, err := parseArgs(strings.Fields(c.args))
		var ue *usageError
		if !errors.As(err, &ue) || opts != nil || help != "" {
			t.Errorf("%q: got %v, %q, %v; want a usage error", c.args, opts, help, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q, want one line containing %q", c.args, msg, c.want)
		}
	}
}

// Every flag and pool of sim overload is described in its --help, and the
// top-level help names the experiment.
func TestOverloadUsage(t *testing.T) {
	var c overloadConfig
	var dsn string
	fs := newOverloadFlagSet(&options{}, &c, &dsn)
	fs.VisitAll(func(f *flag.Flag) {
		name := " --" + f.Name + " "
		if len(f.Name) == 1 {
			name = "  -" + f.Name + ", "
		}
		if !strings.Contains(overloadUsage, name) {
			t.Errorf("sim overload --help does not describe %q", name)
		}
	})
	for _, p := range slices.Concat(overloadPools, overloadDBPools) {
		if !strings.Contains(overloadUsage, p.name+" ") {
			t.Errorf("sim overload --help does not list pool %s", p.name)
		}
	}
	if _, help, err := parseArgs(strings.Fields("sim overload --help")); err != nil || help != overloadUsage {
		t.Errorf("sim overload --help gave %v and another text", err)
	}
	if !strings.Contains(topUsage, "fairpool sim overload") {
		t.Error("fairpool --help does not name sim overload")
	}
}

// runOverloadCmd runs `fairpool <args> --out dir` as the command does and
// returns results.json decoded and stdout.
func runOverloadCmd(t *testing.T, dir string, args ...string) (*overloadFile, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append(args, "--out", dir)
	if code := run(context.Background(), args, &stdout, newProgress(&stderr, false, 80)); code != exitOK {
		t.Fatalf("%q: exit %d:\n%s", args, code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "overload") {
		t.Errorf("no progress lines on stderr: %q", stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	res := &overloadFile{results: &results{}}
	if err := json.Unmarshal(data, res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if res.Overload == nil || len(res.Overload.Runs) == 0 {
		t.Fatalf("results.json lacks the runs: %s", data)
	}
	return res, stdout.String()
}

// A small sweep, in-process: 150 ms of arrivals at 0.7x and 3x, the
// deadline-aware default against the plain FIFO and a channel (about
// 2 s). Everything is accounted for; at 3x the default turns callers away
// at once while the plain FIFO and the channel make them wait out their
// deadline.
func TestOverloadEndToEnd(t *testing.T) {
	// The claims on timing hold by a wide margin on a quiet machine; a stall
	// of a loaded one can still break one, and does not repeat on demand,
	// so one retry separates noise from a defect.
	var failures []string
	for attempt := 1; attempt <= 2; attempt++ {
		if failures = overloadSweepClaims(t); len(failures) == 0 {
			return
		}
		t.Logf("attempt %d: %s", attempt, strings.Join(failures, "; "))
	}
	t.Errorf("timing claims failed twice: %s", strings.Join(failures, "; "))
}

// overloadSweepClaims runs the small sweep, checks what does not depend on
// timing and returns the timing claims that failed.
func overloadSweepClaims(t *testing.T) []string {
	dir := t.TempDir()
	res, stdout := runOverloadCmd(t, dir, "sim", "overload", "--loads", "0.7,3", "--step", "150ms",
		"--capacity-time", "100ms", "--pools", "fairpool,fairpool-plainfifo,chan")
	for _, s := range []string{"Goodput", "fairpool-plainfifo", "fail p50", "latency p99", "3x"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("the report lacks %q:\n%s", s, stdout)
		}
	}
	checkPNG(t, filepath.Join(dir, "overload.png"))
	csv, err := os.ReadFile(filepath.Join(dir, "overload.csv"))
	if err != nil || !bytes.HasPrefix(csv, []byte("pool,load,arrival_ns,outcome")) {
		t.Fatalf("overload.csv: %v", err)
	}
	rows := bytes.Count(csv, []byte("\n")) - 1
	total := 0
	byPool := map[string]*overloadPoolRun{}
	for _, r := range res.Overload.Runs {
		byPool[r.Pool] = r
		if r.CapacityRPS <= 0 || len(r.Steps) != 2 {
			t.Fatalf("%s: capacity %v, %d steps", r.Pool, r.CapacityRPS, len(r.Steps))
		}
		for _, s := range r.Steps {
			total += s.Arrivals
			if s.InTime+s.Late+s.Failed+s.Errors != s.Arrivals || s.Errors != 0 {
				t.Errorf("%s at %gx: %d + %d + %d + %d errors (%s) != %d arrivals", r.Pool, s.Load,
					s.InTime, s.Late, s.Failed, s.Errors, s.FirstError, s.Arrivals)
			}
		}
	}
	if rows != total {
		t.Errorf("overload.csv has %d rows, want one per arrival, %d", rows, total)
	}
	fp, plain, ch := byPool["fairpool"].Steps[1], byPool["fairpool-plainfifo"].Steps[1], byPool["chan"].Steps[1]
	if plain.Shed != 0 || ch.Shed != 0 {
		t.Errorf("the plain FIFO (%d) and the channel (%d) shed: only fairpool knows ErrOverload", plain.Shed, ch.Shed)
	}
	// Waiting out the deadline takes the deadline, which the context
	// enforces whatever the machine does.
	if plain.Failed > 0 && plain.FailP50Ms < 100 {
		t.Errorf("the plain FIFO's failures took %v ms, want the 100 ms deadline", plain.FailP50Ms)
	}
	var failed []string
	if fp.Shed == 0 || fp.Shed != fp.Failed {
		failed = append(failed, fmt.Sprintf("fairpool at 3x: %d failed, %d shed; want every failure shed", fp.Failed, fp.Shed))
	}
	// A shed takes a fraction of the deadline, even on a loaded machine.
	if fp.FailP50Ms > 50 {
		failed = append(failed, fmt.Sprintf("fairpool's failures took %v ms at the median, want well under the deadline", fp.FailP50Ms))
	}
	return failed
}

// The burst run, one pool, a 300 ms burst (about 4 s): the windows cover
// the run and the figure renders.
func TestOverloadBurstEndToEnd(t *testing.T) {
	dir := t.TempDir()
	res, stdout := runOverloadCmd(t, dir, "sim", "overload", "--burst", "--burst-time", "300ms",
		"--capacity-time", "100ms", "--pools", "fairpool", "--json")
	if !json.Valid([]byte(stdout)) {
		t.Errorf("--json: stdout is not JSON:\n%s", stdout)
	}
	b := res.Overload.Runs[0].Burst
	if b == nil || len(b.Windows) != int((burstBefore+300*time.Millisecond+burstAfter)/burstWindowLen) {
		t.Fatalf("burst = %+v", b)
	}
	if b.BaselineP99Ms <= 0 || b.BurstGoodput <= 0 {
		t.Errorf("baseline p99 %v ms, goodput during the burst %v%%: not a measurement", b.BaselineP99Ms, b.BurstGoodput)
	}
	t.Logf("baseline p99 %.2f ms, during %.2f ms, recovered after %v ms", b.BaselineP99Ms, b.BurstP99Ms, b.RecoveredMs)
	checkPNG(t, filepath.Join(dir, "overload-burst.png"))
}
