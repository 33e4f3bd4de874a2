package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The fleet tests run separate OS processes (fleetproc) against the real
// PostgreSQL, as a fleet of app instances would, and watch the server.

type fleetReport struct {
	At       int64  `json:"at"`
	Held     int    `json:"held"`
	Served   int64  `json:"served"`
	Failed   int64  `json:"failed"`
	Refused  int64  `json:"refused"`
	Final    bool   `json:"final"`
	FirstErr string `json:"first_err"`
}

// fleetProc is one running fleetproc and what it printed.
type fleetProc struct {
	app string
	cmd *exec.Cmd
	mu  sync.Mutex
	log []fleetReport
	out sync.WaitGroup
}

func (p *fleetProc) reports() []fleetReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]fleetReport(nil), p.log...)
}

// buildFleetproc builds the fleet process binary into a temporary
// directory.
func buildFleetproc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fleetproc")
	out, err := exec.Command("go", "build", "-o", bin, "./fleetproc").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./fleetproc: %v\n%s", err, out)
	}
	return bin
}

// withParams returns dsn with the query parameters added.
func withParams(t *testing.T, dsn string, user string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("DSN %q: %v", dsn, err)
	}
	if user != "" {
		u.User = url.User(user)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func startFleetProc(t *testing.T, bin, dsn, app string, duration time.Duration) *fleetProc {
	t.Helper()
	p := &fleetProc{app: app}
	p.cmd = exec.Command(bin, "-dsn", dsn, "-goroutines", "16", "-duration", duration.String())
	p.cmd.Stderr = os.Stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.out.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r fleetReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				p.mu.Lock()
				p.log = append(p.log, r)
				p.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() {
		p.cmd.Process.Kill() // ours; already ended unless the test failed early
		p.out.Wait()
		p.cmd.Wait()
	})
	return p
}

// sampleServer counts the server's sessions whose application_name
// starts with prefix, every 10 ms until stop, and returns the largest
// count seen.
func sampleServer(t *testing.T, dsn, prefix string, stop <-chan struct{}) func() int {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	most := 0
	var wg sync.WaitGroup
	wg.Go(func() {
		defer admin.Close(ctx)
		for {
			var n int
			if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", prefix+"%").Scan(&n); err == nil {
				mu.Lock()
				most = max(most, n)
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	return func() int {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return most
	}
}

func final(t *testing.T, p *fleetProc) fleetReport {
	t.Helper()
	rs := p.reports()
	if len(rs) == 0 || !rs[len(rs)-1].Final {
		t.Fatalf("%s printed no final report", p.app)
	}
	return rs[len(rs)-1]
}

// TestFleetBudgetAcrossProcesses: budget 12, 4 processes × MaxConns 8, 16
// goroutines each; one is killed with SIGKILL half-way. The server never
// holds more than 12 + 4 of the fleet's sessions, no call fails, the
// survivors share the work evenly, and they hold at least 11 connections
// within a second of the kill.
func TestFleetBudgetAcrossProcesses(t *testing.T) {
	pg := postgres(t)
	bin := buildFleetproc(t)
	prefix := fmt.Sprintf("fleettest_%d_", os.Getpid())
	const run = 4 * time.Second
	stop := make(chan struct{})
	most := sampleServer(t, pg.dsn, prefix, stop)
	var procs []*fleetProc
	for i := range 4 {
		dsn := withParams(t, pg.dsn, "", map[string]string{
			"application_name": fmt.Sprintf("%s%d", prefix, i),
			"pool_max_conns":   "8", "pool_fleet_name": prefix, "pool_fleet_size": "12",
		})
		procs = append(procs, startFleetProc(t, bin, dsn, fmt.Sprint(i), run))
	}
	time.Sleep(run / 2)
	victim := procs[3]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now().UnixMilli()
	survivors := procs[:3]
	for _, p := range survivors {
		p.out.Wait()
		p.cmd.Wait()
	}
	close(stop)
	m := most()
	t.Logf("the server saw at most %d sessions of the fleet", m)
	if m > 12+4 {
		t.Errorf("server saw %d sessions of the fleet, want at most 12 + 4", m)
	}
	var total int64
	for _, p := range survivors {
		r := final(t, p)
		if r.Failed != 0 {
			t.Errorf("process %s: %d calls failed, first: %s", p.app, r.Failed, r.FirstErr)
		}
		total += r.Served
	}
	for _, p := range survivors {
		share := float64(final(t, p).Served) / float64(total)
		t.Logf("process %s served %d (%.0f%% of the survivors')", p.app, final(t, p).Served, 100*share)
		if share < 0.20 || share > 0.47 {
			t.Errorf("process %s served %.0f%% of the survivors' calls, want 20%% to 47%%", p.app, 100*share)
		}
	}
	takeover := takeoverTime(survivors, killed, 11)
	t.Logf("survivors held >= 11 connections %v after the kill", takeover)
	if takeover < 0 || takeover > time.Second {
		t.Errorf("survivors took %v to hold 11 connections after the kill, want within 1 s", takeover)
	}
}

// takeoverTime is how long after killed (unix ms) the processes' latest
// reports first add up to at least want connections held; -1: never.
func takeoverTime(procs []*fleetProc, killed int64, want int) time.Duration {
	var all [][]fleetReport
	var times []int64
	for _, p := range procs {
		rs := p.reports()
		all = append(all, rs)
		for _, r := range rs {
			if r.At >= killed {
				times = append(times, r.At)
			}
		}
	}
	best := int64(-1)
	for _, at := range times {
		sum := 0
		for _, rs := range all {
			held := 0
			for _, r := range rs {
				if r.At <= at && !r.Final {
					held = r.Held
				}
			}
			sum += held
		}
		if sum >= want && (best < 0 || at < best) {
			best = at
		}
	}
	if best < 0 {
		return -1
	}
	return time.Duration(best-killed) * time.Millisecond
}

// TestRoleLimitWithoutBudget: no budget, a role with CONNECTION LIMIT 12,
// 2 processes × MaxConns 8: connects beyond the limit are refused, and
// no call fails, because a refused connect waits for the pool's own
// connections.
func TestRoleLimitWithoutBudget(t *testing.T) {
	pg := postgres(t)
	bin := buildFleetproc(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("fairpool_fleet_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 12"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Only this test's role's sessions, which its processes left.
		admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
		if _, err := admin.Exec(ctx, "DROP ROLE "+role); err != nil {
			t.Errorf("DROP ROLE %s: %v", role, err)
		}
	}()
	var procs []*fleetProc
	for i := range 2 {
		dsn := withParams(t, pg.dsn, role, map[string]string{
			"application_name": fmt.Sprintf("rolelimit_%d_%d", os.Getpid(), i), "pool_max_conns": "8",
		})
		procs = append(procs, startFleetProc(t, bin, dsn, fmt.Sprint(i), 3*time.Second))
	}
	var refused int64
	for _, p := range procs {
		p.out.Wait()
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("process %s: %v", p.app, err)
		}
		r := final(t, p)
		t.Logf("process %s: served %d, failed %d, refused opens %d", p.app, r.Served, r.Failed, r.Refused)
		if r.Failed != 0 {
			t.Errorf("process %s: %d calls failed, first: %s", p.app, r.Failed, r.FirstErr)
		}
		if r.Served == 0 {
			t.Errorf("process %s served nothing", p.app)
		}
		refused += r.Refused
	}
	if refused == 0 {
		t.Error("no connect was refused: the role's limit was never reached, so nothing was tested")
	}
}
