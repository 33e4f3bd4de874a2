package fairpgx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairpgx"
	"github.com/jackc/pgx/v5"
)

const (
	faultWorkers = 32
	faultConns   = 8
	faultTimeout = 2 * time.Second
)

// TestFaultTerminateEveryBackend: under load, every backend of the pool is
// killed with pg_terminate_backend. Each broken connection fails at most
// the one call that was using it, with an error that says it broke, and is
// then closed, never handed out again.
func TestFaultTerminateEveryBackend(t *testing.T) {
	cfg, app := testConfig(t, faultConns)
	cfg.AcquireTimeout = faultTimeout
	p := newPool(t, cfg)
	admin := adminConn(t)
	ctx := context.Background()

	l := startLoad(p, faultWorkers)
	time.Sleep(300 * time.Millisecond)
	killed, err := terminate(ctx, admin, app)
	killedAt := time.Now()
	time.Sleep(700 * time.Millisecond)
	calls := l.finish()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %d backends; %s", len(killed), summary(calls))

	if len(killed) != faultConns {
		t.Errorf("killed %d backends, want all %d (the pool should be full under load)", len(killed), faultConns)
	}
	var failed int
	for _, c := range calls {
		if c.err == nil {
			if killed[c.pid] && c.start.After(killedAt.Add(100*time.Millisecond)) {
				t.Errorf("a call that began %v after the kill ran on killed backend %d", c.start.Sub(killedAt), c.pid)
			}
			continue
		}
		failed++
		if !brokeErr(c.err) {
			t.Errorf("error that does not say the connection broke: %v", c.err)
		}
	}
	if failed == 0 || failed > len(killed) {
		t.Errorf("%d calls failed; want 1 to %d, one per killed connection at most", failed, len(killed))
	}
	s := p.Stats()
	if closed := s.ClosedDiscard + s.ClosedReset + s.ClosedCheck; closed != int64(len(killed)) {
		t.Errorf("closed %d broken connections (discard %d, reset %d, check %d), want %d", closed, s.ClosedDiscard, s.ClosedReset, s.ClosedCheck, len(killed))
	}
	checkLoad(t, l, calls, faultConns, faultTimeout, killedAt)
}

// terminate kills the backends of app and returns their pids. It selects
// them first and only then terminates exactly those: in one statement the
// planner may call pg_terminate_backend before it filters on the name.
func terminate(ctx context.Context, admin *pgx.Conn, app string) (map[uint32]bool, error) {
	rows, _ := admin.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil || len(pids) == 0 {
		return nil, fmt.Errorf("no backends of %s to kill: %v", app, err)
	}
	killed := map[uint32]bool{}
	rows, _ = admin.Query(ctx, "SELECT p FROM unnest($1::int4[]) AS p WHERE pg_terminate_backend(p)", pids)
	done, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	for _, pid := range done {
		killed[uint32(pid)] = true
	}
	return killed, err
}

// TestFaultRestartServer: under load, PostgreSQL is stopped and started
// again. While it is down every call fails at once with an error naming
// the cause; afterwards no old connection is reused and the pool serves
// within 1 s of the server answering.
func TestFaultRestartServer(t *testing.T) {
	destructive(t, "stops and restarts the local PostgreSQL")
	version := pgCluster(t)
	cfg, _ := testConfig(t, faultConns)
	cfg.AcquireTimeout = faultTimeout
	t.Cleanup(func() { // leave the server up, whatever happened
		if _, err := waitAnswering(0); err != nil {
			if err := pgCtl(version, "start"); err != nil {
				t.Error(err)
			}
			if _, err := waitAnswering(30 * time.Second); err != nil {
				t.Errorf("PostgreSQL did not come back: %v", err)
			}
		}
	})
	p := newPool(t, cfg)

	l := startLoad(p, faultWorkers)
	time.Sleep(300 * time.Millisecond)
	downAt := time.Now()
	if err := pgCtl(version, "stop", "-m", "fast"); err != nil {
		l.finish()
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	err := pgCtl(version, "start")
	upAt, werr := waitAnswering(30 * time.Second)
	time.Sleep(time.Second)
	calls := l.finish()
	if err != nil || werr != nil {
		t.Fatal(err, werr)
	}
	t.Logf("down for %v; %s", upAt.Sub(downAt).Round(time.Millisecond), summary(calls))

	before := map[uint32]bool{}
	var failed int
	for _, c := range calls {
		if c.err == nil && c.end.Before(downAt) {
			before[c.pid] = true
		}
	}
	for _, c := range calls {
		if c.err == nil {
			if before[c.pid] && c.start.After(upAt) {
				t.Errorf("backend %d from before the restart served a call after it", c.pid)
			}
			continue
		}
		failed++
		var oe *fairpool.OpenError
		if !brokeErr(c.err) && !errors.As(c.err, &oe) {
			t.Errorf("error neither a broken connection nor a failed connect: %v", c.err)
		}
	}
	if failed == 0 {
		t.Errorf("no call failed while the server was down")
	}
	checkLoad(t, l, calls, faultConns, faultTimeout, upAt)
}

// TestRestartRunsOnlyWhenOptedIn: without CI=true or FAIRPOOL_DESTRUCTIVE=1
// the restart test skips, saying how to opt in, before it touches the
// server; with FAIRPOOL_DESTRUCTIVE=1 it goes past that. The test runs in
// a child process of this test binary whose PATH holds no pg_ctlcluster,
// so that not even a missing guard could restart the server from here.
func TestRestartRunsOnlyWhenOptedIn(t *testing.T) {
	out := runRestartTest(t)
	if !strings.Contains(out, "--- SKIP: TestFaultRestartServer") || !strings.Contains(out, "FAIRPOOL_DESTRUCTIVE=1") {
		t.Errorf("not opted in: want TestFaultRestartServer skipped with a message naming FAIRPOOL_DESTRUCTIVE=1, got:\n%s", out)
	}
	out = runRestartTest(t, "FAIRPOOL_DESTRUCTIVE=1")
	if strings.Contains(out, "runs only with") {
		t.Errorf("opted in with FAIRPOOL_DESTRUCTIVE=1, yet skipped for want of it:\n%s", out)
	}
}

// runRestartTest runs TestFaultRestartServer alone in a child process, with env
// added to this process's environment minus CI, FAIRPOOL_DESTRUCTIVE and
// PATH (an empty directory instead), and returns its verbose output.
func runRestartTest(t *testing.T, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultRestartServer$", "-test.v", "-test.count=1")
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "CI", "FAIRPOOL_DESTRUCTIVE", "PATH":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "PATH="+t.TempDir()), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("TestFaultRestartServer in a child process: %v\n%s", err, out)
	}
	return string(out)
}

// TestRefusedConnectionFailsFast: with nothing listening, every waiter gets
// the connect error at once, not after waiting out the acquire timeout.
func TestRefusedConnectionFailsFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // now nothing listens there
	p, err := fairpgx.New(context.Background(), "postgres://postgres@"+addr+"/test?pool_max_conns=4&pool_acquire_timeout=3s&pool_name=refused")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var wg sync.WaitGroup
	errs := make([]error, 10)
	start := time.Now()
	for i := range errs {
		wg.Go(func() { errs[i] = p.Ping(context.Background()) })
	}
	wg.Wait()
	if d := time.Since(start); d > time.Second {
		t.Errorf("10 callers took %v to learn the server refuses, acquire timeout 3s", d)
	}
	for _, err := range errs {
		var oe *fairpool.OpenError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), "refused") || !strings.Contains(err.Error(), `"refused"`) {
			t.Errorf("error %v; want a fairpool.OpenError naming the pool and saying the connection was refused", err)
		}
	}
}

// TestSilentServerTimesOut: a server that accepts and never answers gives
// a timeout error at AcquireTimeout, not a hang.
func TestSilentServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held sync.WaitGroup
	held.Go(func() { // accept and say nothing until the test ends
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	})
	defer held.Wait()
	defer ln.Close()
	p, err := fairpgx.New(context.Background(), "postgres://postgres@"+ln.Addr().String()+"/test?pool_acquire_timeout=300ms&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	start := time.Now()
	err = p.Ping(context.Background())
	d := time.Since(start)
	if !errors.Is(err, fairpool.ErrTimeout) || d < 250*time.Millisecond || d > 900*time.Millisecond {
		t.Errorf("after %v: %v; want fairpool.ErrTimeout at about 300ms", d, err)
	}
}

// TestWrongDatabaseOrRoleNamesTheCause: the server's refusal reaches the
// caller with its reason.
func TestWrongDatabaseOrRoleNamesTheCause(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"database", "fairpool_no_such_db", `database "fairpool_no_such_db" does not exist`},
		{"user", "fairpool_no_such_role", `role "fairpool_no_such_role" does not exist`},
	} {
		cfg, _ := testConfig(t, 2)
		cfg.AcquireTimeout = faultTimeout
		if tc.key == "database" {
			cfg.ConnConfig.Database = tc.value
		} else {
			cfg.ConnConfig.User = tc.value
		}
		p, err := fairpgx.NewWithConfig(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = p.Exec(context.Background(), "SELECT 1")
		p.Close()
		var oe *fairpool.OpenError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("wrong %s: %v; want an OpenError containing %s", tc.key, err, tc.want)
		}
		if d := time.Since(start); d > faultTimeout {
			t.Errorf("wrong %s: took %v", tc.key, d)
		}
	}
}
