package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

// fairpool sim fleet: P processes of this program, each a fairpgx pool
// under load, against one PostgreSQL; one is killed with SIGKILL half-way.
// Run once with a fleet budget and once without, to compare.

const fleetUsage = `Usage: fairpool sim fleet --dsn URL [flags]

Starts --procs processes of itself, each a fairpgx pool of --max connections
with --goroutines goroutines calling SELECT pg_sleep(0.002), kills one with
SIGKILL half-way, and reports per process the connections held and calls
served over time, the server's sessions of the fleet (pg_stat_activity),
failed calls, and how long the survivors took to take the dead process's
share. It runs twice: with pool_fleet_size=--budget, then without a budget.

  --dsn URL            PostgreSQL connection URL (required)
  --procs n            processes (default 4)
  --max n              pool_max_conns of each (default 8)
  --budget n           pool_fleet_size of the first run (default 12)
  --goroutines n       goroutines per process (default 16)
  --duration d         length of each run (default 6s)
`

// fleetChildEnv makes this program a process of the fleet: it runs the
// load with the DSN in the variable and prints reports.
const fleetChildEnv = "FAIRPOOL_SIM_FLEET_CHILD"

func init() {
	if dsn := os.Getenv(fleetChildEnv); dsn != "" {
		os.Exit(fleetChild(dsn))
	}
}

// fleetReport is a process's line, every 100 ms and once at the end.
type fleetReport struct {
	At     int64 `json:"at"` // unix ms
	Held   int   `json:"held"`
	Served int64 `json:"served"`
	Failed int64 `json:"failed"`
	Final  bool  `json:"final,omitempty"`
}

// fleetChild is the process of the fleet: FAIRPOOL_SIM_FLEET_GOROUTINES
// goroutines call until FAIRPOOL_SIM_FLEET_DURATION passes.
func fleetChild(dsn string) int {
	workers, _ := strconv.Atoi(os.Getenv("FAIRPOOL_SIM_FLEET_GOROUTINES"))
	duration, _ := time.ParseDuration(os.Getenv("FAIRPOOL_SIM_FLEET_DURATION"))
	pool, err := fairpgx.New(context.Background(), dsn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fairpool sim fleet:", err)
		return exitFailed
	}
	defer pool.Close()
	var served, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := pool.Exec(ctx, "SELECT pg_sleep(0.002)")
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					served.Add(1)
				}
			}
		})
	}
	enc := json.NewEncoder(os.Stdout)
	report := func(final bool) {
		st := pool.Stats()
		enc.Encode(fleetReport{At: time.Now().UnixMilli(), Held: st.Idle + st.InUse, Served: served.Load(), Failed: failed.Load(), Final: final})
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(duration)
loop:
	for {
		select {
		case <-tick.C:
			report(false)
		case <-end:
			break loop
		}
	}
	close(stop)
	wg.Wait()
	report(true)
	return exitOK
}

type fleetOptions struct {
	dsn                            string
	procs, max, budget, goroutines int
	duration                       time.Duration
}

func parseFleetArgs(args []string) (*fleetOptions, error) {
	o := &fleetOptions{}
	fs := flag.NewFlagSet("fairpool sim fleet", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.dsn, "dsn", "", "")
	fs.IntVar(&o.procs, "procs", 4, "")
	fs.IntVar(&o.max, "max", 8, "")
	fs.IntVar(&o.budget, "budget", 12, "")
	fs.IntVar(&o.goroutines, "goroutines", 16, "")
	fs.DurationVar(&o.duration, "duration", 6*time.Second, "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case o.dsn == "":
		return nil, errors.New("--dsn is required")
	case o.procs < 2:
		return nil, fmt.Errorf("--procs must be >= 2, got %d", o.procs)
	case o.max < 1 || o.budget < 1 || o.goroutines < 1:
		return nil, errors.New("--max, --budget and --goroutines must be >= 1")
	case o.duration < time.Second:
		return nil, fmt.Errorf("--duration must be >= 1s, got %v", o.duration)
	}
	return o, nil
}

// runFleet is `fairpool sim fleet`.
func runFleet(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if isHelp(a) {
			fmt.Fprint(stdout, fleetUsage)
			return exitOK
		}
	}
	o, err := parseFleetArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "fairpool sim fleet: %v (see fairpool sim fleet --help)\n", err)
		return exitUsage
	}
	for _, budget := range []int{o.budget, 0} {
		res, err := runFleetOnce(ctx, o, budget)
		if err != nil {
			fmt.Fprintf(stderr, "fairpool sim fleet: %v\n", err)
			return exitFailed
		}
		res.print(stdout)
	}
	return exitOK
}

// fleetRun is what one run measured.
type fleetRun struct {
	opts      *fleetOptions
	budget    int
	start     int64 // unix ms
	killedAt  int64
	reports   [][]fleetReport
	server    []fleetSample
	takeover  time.Duration // -1: never
	maxServer int
}

type fleetSample struct {
	at int64
	n  int
}

func runFleetOnce(ctx context.Context, o *fleetOptions, budget int) (*fleetRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(o.dsn)
	if err != nil {
		return nil, fmt.Errorf("--dsn: %v", err)
	}
	prefix := fmt.Sprintf("fairpool_sim_fleet_%d_%d_", os.Getpid(), budget)
	r := &fleetRun{opts: o, budget: budget, start: time.Now().UnixMilli(), reports: make([][]fleetReport, o.procs), takeover: -1}
	admin, err := pgx.Connect(ctx, o.dsn)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	var mu sync.Mutex
	var readers sync.WaitGroup
	cmds := make([]*exec.Cmd, o.procs)
	for i := range o.procs {
		q := u.Query()
		q.Set("application_name", fmt.Sprint(prefix, i))
		q.Set("pool_max_conns", fmt.Sprint(o.max))
		if budget > 0 {
			q.Set("pool_fleet_name", prefix)
			q.Set("pool_fleet_size", fmt.Sprint(budget))
		}
		cu := *u
		cu.RawQuery = q.Encode()
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), fleetChildEnv+"="+cu.String(),
			fmt.Sprint("FAIRPOOL_SIM_FLEET_GOROUTINES=", o.goroutines), "FAIRPOOL_SIM_FLEET_DURATION="+o.duration.String())
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cmds[i] = cmd
		readers.Go(func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				var rep fleetReport
				if json.Unmarshal(sc.Bytes(), &rep) == nil {
					mu.Lock()
					r.reports[i] = append(r.reports[i], rep)
					mu.Unlock()
				}
			}
		})
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill() // ours; ended already unless interrupted
		}
		readers.Wait()
		for _, c := range cmds {
			c.Wait()
		}
	}()
	end := time.Now().Add(o.duration)
	killAt := time.Now().Add(o.duration / 2)
	for time.Now().Before(end.Add(200 * time.Millisecond)) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if r.killedAt == 0 && time.Now().After(killAt) {
			cmds[o.procs-1].Process.Signal(syscall.SIGKILL)
			r.killedAt = time.Now().UnixMilli()
		}
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", prefix+"%").Scan(&n); err == nil {
			r.server = append(r.server, fleetSample{time.Now().UnixMilli(), n})
			r.maxServer = max(r.maxServer, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	r.takeover = r.takeoverTime()
	return r, nil
}

// takeoverTime is how long after the kill the survivors' connections
// first added up to their full share: the budget (or all their slots)
// less one.
func (r *fleetRun) takeoverTime() time.Duration {
	n := r.opts.procs - 1
	want := n * r.opts.max
	if r.budget > 0 {
		want = min(want, r.budget)
	}
	want--
	var times []int64
	for _, rs := range r.reports[:n] {
		for _, rep := range rs {
			if rep.At >= r.killedAt {
				times = append(times, rep.At)
			}
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for _, at := range times {
		if r.heldAt(n, at) >= want {
			return time.Duration(at-r.killedAt) * time.Millisecond
		}
	}
	return -1
}

// heldAt sums the connections of the first n processes at unix ms at.
func (r *fleetRun) heldAt(n int, at int64) int {
	sum := 0
	for _, rs := range r.reports[:n] {
		sum += r.last(rs, at).Held
	}
	return sum
}

func (r *fleetRun) last(rs []fleetReport, at int64) fleetReport {
	var out fleetReport
	for _, rep := range rs {
		if rep.At <= at && !rep.Final {
			out = rep
		}
	}
	return out
}

func (r *fleetRun) print(w io.Writer) {
	o := r.opts
	title := fmt.Sprintf("without a budget: %d processes × pool_max_conns=%d", o.procs, o.max)
	if r.budget > 0 {
		title = fmt.Sprintf("fleet budget %d: %d processes × pool_max_conns=%d", r.budget, o.procs, o.max)
	}
	fmt.Fprintf(w, "\n== %s, %d goroutines each; process %d killed with SIGKILL at %v\n\n",
		title, o.goroutines, o.procs-1, time.Duration(r.killedAt-r.start)*time.Millisecond)
	var head strings.Builder
	head.WriteString("   time")
	for i := range o.procs {
		fmt.Fprintf(&head, "   p%d conns calls/s", i)
	}
	head.WriteString("  server")
	fmt.Fprintln(w, head.String())
	step := int64(500)
	for at := r.start + step; at <= r.start+o.duration.Milliseconds(); at += step {
		fmt.Fprintf(w, "%6.1fs", float64(at-r.start)/1000)
		for _, rs := range r.reports {
			now, before := r.last(rs, at), r.last(rs, at-step)
			if at > r.killedAt && r.killedAt > 0 && len(rs) > 0 && rs[len(rs)-1].At < at-100 && !rs[len(rs)-1].Final {
				fmt.Fprintf(w, "   %8s %7s", "dead", "-")
				continue
			}
			fmt.Fprintf(w, "   %8d %7d", now.Held, (now.Served-before.Served)*1000/step)
		}
		most := 0
		for _, s := range r.server {
			if s.at > at-step && s.at <= at {
				most = max(most, s.n)
			}
		}
		fmt.Fprintf(w, "  %6d\n", most)
	}
	fmt.Fprintln(w)
	var survivors int64
	for _, rs := range r.reports[:o.procs-1] {
		if len(rs) > 0 {
			survivors += rs[len(rs)-1].Served
		}
	}
	for i, rs := range r.reports {
		if len(rs) == 0 {
			fmt.Fprintf(w, "  p%d: no report\n", i)
			continue
		}
		last := rs[len(rs)-1]
		share := ""
		if i < o.procs-1 && survivors > 0 {
			share = fmt.Sprintf(" (%.0f%% of the survivors')", 100*float64(last.Served)/float64(survivors))
		}
		fmt.Fprintf(w, "  p%d: served %d%s, failed %d\n", i, last.Served, share, last.Failed)
	}
	fmt.Fprintf(w, "  most sessions the server saw: %d\n", r.maxServer)
	if r.takeover >= 0 {
		fmt.Fprintf(w, "  survivors took the dead process's share in %v\n", r.takeover)
	} else {
		fmt.Fprintln(w, "  survivors never held their full share after the kill")
	}
}
