package integration

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
)

const (
	faultWorkers = 32
	faultConns   = 8
	faultTimeout = 2 * time.Second
)

// call is one request of a load run: which session served it, or why not.
type call struct {
	start, end time.Time
	id         int64
	err        error
}

// load runs faultWorkers goroutines that use the pool in a loop, through
// WithConn and WithTx in turn, each holding the connection about 2 ms, and
// watches the pool's and the DB's connection counts all along.
type load struct {
	p       *sqlpool.Pool
	stop    atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	calls   []call
	maxOpen atomic.Int64 // most connections counted at once, by the pool or the DB
}

func startLoad(s *server, p *sqlpool.Pool) *load {
	l := &load{p: p}
	ctx := context.Background()
	for w := range faultWorkers {
		l.wg.Go(func() {
			for i := w; !l.stop.Load(); i++ {
				c := call{start: time.Now()}
				if i%2 == 0 {
					c.err = p.WithConn(ctx, func(ctx context.Context, conn *sql.Conn) error {
						return conn.QueryRowContext(ctx, s.sleepSQL).Scan(&c.id)
					})
				} else {
					c.err = p.WithTx(ctx, nil, func(ctx context.Context, tx *sql.Tx) error {
						return tx.QueryRowContext(ctx, s.sleepSQL).Scan(&c.id)
					})
				}
				c.end = time.Now()
				l.mu.Lock()
				l.calls = append(l.calls, c)
				l.mu.Unlock()
				if c.err != nil {
					time.Sleep(5 * time.Millisecond) // as a client backs off
				}
			}
		})
	}
	l.wg.Go(func() {
		for !l.stop.Load() {
			n := int64(max(p.Stats().Open, p.DB().Stats().OpenConnections))
			if n > l.maxOpen.Load() {
				l.maxOpen.Store(n)
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	return l
}

func (l *load) finish() []call {
	l.stop.Store(true)
	l.wg.Wait()
	return l.calls
}

// seen returns the session ids that served calls so far.
func (l *load) seen() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	set := map[int64]bool{}
	var ids []int64
	for _, c := range l.calls {
		if c.err == nil && !set[c.id] {
			set[c.id] = true
			ids = append(ids, c.id)
		}
	}
	return ids
}

// check asserts what must hold after any fault: never more than max
// connections, no call took longer than limit once the time it spent in
// stall is taken off, every connection came back, and the pool served
// again within 1 s of back.
//
// stall is a time when the server answered no one on the pool's sessions,
// which the pool cannot shorten; zero for none.
func (l *load) check(t *testing.T, calls []call, back time.Time, limit time.Duration, stall window) {
	t.Helper()
	if m := l.maxOpen.Load(); m > faultConns {
		t.Errorf("%d connections at once, MaxSize %d", m, faultConns)
	}
	var first time.Time
	for _, c := range calls {
		d := c.end.Sub(c.start)
		if in := stall.overlap(c.start, c.end); d-in > limit {
			t.Errorf("a call took %v, %v of it outside the server's stall, over %v: %v", d, d-in, limit, c.err)
		}
		if c.err == nil && !c.start.Before(back) && (first.IsZero() || c.end.Before(first)) {
			first = c.end
		}
	}
	if first.IsZero() {
		t.Errorf("no call succeeded after the server answered again")
	} else if d := first.Sub(back); d > time.Second {
		t.Errorf("the pool served again %v after the server answered, want within 1s", d)
	} else {
		t.Logf("served again %v after the server answered", d.Round(time.Microsecond))
	}
	if st := l.p.Stats(); st.InUse != 0 || st.Waiting != 0 {
		t.Errorf("after the load: in use %d, waiting %d", st.InUse, st.Waiting)
	}
}

// window is a span of time; the zero window is empty.
type window struct{ from, to time.Time }

// overlap returns how much of [start, end] falls inside w.
func (w window) overlap(start, end time.Time) time.Duration {
	if start.Before(w.from) {
		start = w.from
	}
	if end.After(w.to) {
		end = w.to
	}
	return max(end.Sub(start), 0)
}

func brokeErr(err error) bool {
	return errors.Is(err, fairpool.ErrBadConn) && strings.Contains(err.Error(), "connection broke")
}

func summary(calls []call) string {
	var ok, broke, other int
	for _, c := range calls {
		switch {
		case c.err == nil:
			ok++
		case brokeErr(c.err):
			broke++
		default:
			other++
		}
	}
	return fmt.Sprintf("%d calls: %d ok, %d connection broke, %d other errors", len(calls), ok, broke, other)
}

// killTimeout is the kill test's AcquireTimeout: far above any stall the
// kill causes on the server (see TestFaultKillEverySession), so that no
// wait times out in one. The test bounds the calls itself.
const killTimeout = 30 * time.Second

// TestFaultKillEverySession: under load, every session of the pool is
// killed on the server (pg_terminate_backend, KILL CONNECTION). Each
// broken connection fails at most the call using it, with an error that
// says it broke, and is closed, never reused; no other call fails, none
// waits longer than faultTimeout beyond what the server itself held up,
// and the pool serves again within 1 s of the server answering.
//
// MariaDB may hold everything up for about 2 s on a KILL: the killer
// retries for up to 2 s to wake a victim waiting in SLEEP(), and every
// other SLEEP() (the load's every call) waits for the same lock meanwhile.
// The KILL statement returns only when that is over. So the waits are
// timed by the test, not by AcquireTimeout, with the span from the first
// KILL until the server answers the load's own query again taken off: that
// is the server's doing, and no pool could serve through it.
func TestFaultKillEverySession(t *testing.T) {
	eachServer(t, func(t *testing.T, s *server) {
		p := s.newPool(t, sqlpool.Config{MaxSize: faultConns, AcquireTimeout: killTimeout})
		admin := s.open(t)
		l := startLoad(s, p)
		time.Sleep(300 * time.Millisecond)
		ids := l.seen()
		killStart := time.Now()
		var err error
		for _, stmt := range s.killSQL(ids) {
			if _, err = admin.Exec(stmt); err != nil {
				break
			}
		}
		if err == nil { // wait until the server answers what the load asks
			var id int64
			err = admin.QueryRow(s.sleepSQL).Scan(&id)
		}
		killedAt := time.Now()
		time.Sleep(700 * time.Millisecond)
		calls := l.finish()
		if err != nil {
			t.Fatal(err)
		}
		stall := window{killStart, killedAt}
		t.Logf("killed %d sessions; the server answered again after %v; %s",
			len(ids), killedAt.Sub(killStart).Round(time.Microsecond), summary(calls))
		killed := map[int64]bool{}
		for _, id := range ids {
			killed[id] = true
		}
		if len(ids) != faultConns {
			t.Errorf("killed %d sessions, want all %d (the pool should be full under load)", len(ids), faultConns)
		}
		var failed int
		for _, c := range calls {
			if c.err == nil {
				if killed[c.id] && c.start.After(killedAt.Add(100*time.Millisecond)) {
					t.Errorf("a call that began %v after the kill ran on killed session %d", c.start.Sub(killedAt), c.id)
				}
				continue
			}
			failed++
			if !brokeErr(c.err) {
				t.Errorf("error that does not say the connection broke: %v", c.err)
			}
		}
		// None may fail: MariaDB can answer a SLEEP() it was killed in
		// before it drops the session, and the pool then finds the
		// connection dead at its reset. That every killed connection was
		// found out is checked below, by what was closed.
		if failed > len(ids) {
			t.Errorf("%d calls failed; want %d at most, one per killed connection", failed, len(ids))
		}
		// Each killed connection is closed once, whichever way the pool
		// found it out: fn reported it bad, the session check after fn
		// failed, or the check before reuse did.
		st := p.Stats()
		if closed := st.ClosedDiscard + st.ClosedReset + st.ClosedCheck; closed != int64(len(ids)) {
			t.Errorf("closed %d connections (discarded %d, reset failed %d, check failed %d), want the %d killed",
				closed, st.ClosedDiscard, st.ClosedReset, st.ClosedCheck, len(ids))
		}
		t.Logf("closed: discarded %d, reset failed %d, check failed %d", st.ClosedDiscard, st.ClosedReset, st.ClosedCheck)
		l.check(t, calls, killedAt, faultTimeout, stall)
	})
}

// TestFaultRestartPostgres: under load, PostgreSQL is stopped and started.
// While it is down calls fail at once with the cause; afterwards no old
// session serves, and the pool serves within 1 s of the server answering.
func TestFaultRestartPostgres(t *testing.T) {
	destructive(t, "stops and restarts the local PostgreSQL")
	s := postgres(t)
	version := pgCluster(t)
	t.Cleanup(func() { // leave the server up, whatever happened
		if _, err := waitAnswering(s, 0); err != nil {
			if err := pgCtl(version, "start"); err != nil {
				t.Error(err)
			}
			if _, err := waitAnswering(s, 30*time.Second); err != nil {
				t.Errorf("PostgreSQL did not come back: %v", err)
			}
		}
	})
	p := s.newPool(t, sqlpool.Config{MaxSize: faultConns, AcquireTimeout: faultTimeout})
	l := startLoad(s, p)
	time.Sleep(300 * time.Millisecond)
	downAt := time.Now()
	if err := pgCtl(version, "stop", "-m", "fast"); err != nil {
		l.finish()
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	err := pgCtl(version, "start")
	upAt, werr := waitAnswering(s, 30*time.Second)
	time.Sleep(time.Second)
	calls := l.finish()
	if err != nil || werr != nil {
		t.Fatal(err, werr)
	}
	t.Logf("down for %v; %s", upAt.Sub(downAt).Round(time.Millisecond), summary(calls))
	before := map[int64]bool{}
	var failed int
	for _, c := range calls {
		if c.err == nil && c.end.Before(downAt) {
			before[c.id] = true
		}
	}
	for _, c := range calls {
		if c.err == nil {
			if before[c.id] && c.start.After(upAt) {
				t.Errorf("session %d from before the restart served a call after it", c.id)
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
	l.check(t, calls, upAt, faultTimeout+time.Second, window{})
}

// TestRestartRunsOnlyWhenOptedIn: without CI=true or FAIRPOOL_DESTRUCTIVE=1
// the restart test skips, saying how to opt in, before it touches the
// server; with FAIRPOOL_DESTRUCTIVE=1 it goes past that. The test runs in
// a child process of this test binary whose PATH holds no pg_ctlcluster,
// so that not even a missing guard could restart the server from here.
func TestRestartRunsOnlyWhenOptedIn(t *testing.T) {
	out := runRestartTest(t)
	if !strings.Contains(out, "--- SKIP: TestFaultRestartPostgres") || !strings.Contains(out, "FAIRPOOL_DESTRUCTIVE=1") {
		t.Errorf("not opted in: want TestFaultRestartPostgres skipped with a message naming FAIRPOOL_DESTRUCTIVE=1, got:\n%s", out)
	}
	out = runRestartTest(t, "FAIRPOOL_DESTRUCTIVE=1")
	if strings.Contains(out, "runs only with") {
		t.Errorf("opted in with FAIRPOOL_DESTRUCTIVE=1, yet skipped for want of it:\n%s", out)
	}
}

// runRestartTest runs TestFaultRestartPostgres alone in a child process, with env
// added to this process's environment minus CI, FAIRPOOL_DESTRUCTIVE and
// PATH (an empty directory instead), and returns its verbose output.
func runRestartTest(t *testing.T, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultRestartPostgres$", "-test.v", "-test.count=1")
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
		t.Fatalf("TestFaultRestartPostgres in a child process: %v\n%s", err, out)
	}
	return string(out)
}

// TestConnectFailuresNameTheCause: a port nobody listens on fails every
// waiter at once; a wrong database or password reaches the caller with
// the server's reason, within the acquire timeout.
func TestConnectFailuresNameTheCause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cases := []struct{ name, driver, dsn, want string }{
		{"postgres refused", "pgx", "postgres://postgres@" + closed + "/test", "refused"},
		{"postgres wrong database", "pgx", withParam(postgres(t).dsn, "dbname=fairpool_no_such_db"), `database "fairpool_no_such_db" does not exist`},
		{"mariadb refused", "mysql", "root@tcp(" + closed + ")/test", "refused"},
		{"mariadb wrong password", "mysql", "root:wrong@tcp(" + mariadb(t).addr + ")/test", "Access denied"},
		{"mariadb wrong database", "mysql", "root@tcp(" + mariadb(t).addr + ")/fairpool_no_such_db", "Unknown database"},
	}
	for _, tc := range cases {
		db, err := sql.Open(tc.driver, tc.dsn)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sqlpool.New(db, sqlpool.Config{MaxSize: 2, AcquireTimeout: faultTimeout, Name: tc.name})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 6)
		start := time.Now()
		for i := range errs {
			wg.Go(func() {
				errs[i] = p.WithConn(context.Background(), func(context.Context, *sql.Conn) error { return nil })
			})
		}
		wg.Wait()
		d := time.Since(start)
		p.Close(context.Background())
		db.Close()
		if d > time.Second {
			t.Errorf("%s: 6 callers took %v to fail, acquire timeout %v", tc.name, d, faultTimeout)
		}
		for _, err := range errs {
			var oe *fairpool.OpenError
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("%s: %v; want an OpenError naming the pool and saying %q", tc.name, err, tc.want)
			}
		}
	}
}

// withParam adds a key=value parameter to a postgres:// URL.
func withParam(dsn, kv string) string {
	if strings.Contains(dsn, "?") {
		return dsn + "&" + kv
	}
	return dsn + "?" + kv
}

// pgCluster returns the cluster version pg_ctlcluster manages, or skips
// the test (fails it under CI) when the server cannot be restarted here.
func pgCluster(t *testing.T) string {
	t.Helper()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if os.Geteuid() != 0 {
		skip("restarting PostgreSQL needs root")
	}
	if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		skip("restarting PostgreSQL needs pg_ctlcluster: %v", err)
	}
	entries, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(entries) != 1 {
		skip("want exactly one cluster version in /etc/postgresql: %v %v", entries, err)
	}
	return entries[0].Name()
}

func pgCtl(version string, args ...string) error {
	args = append([]string{"--skip-systemctl-redirect", version, "main"}, args...)
	out, err := exec.Command("pg_ctlcluster", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// waitAnswering waits until a new session on s succeeds and returns that
// instant.
func waitAnswering(s *server, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		db, err := sql.Open(s.driver, s.dsn)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = db.PingContext(ctx)
			cancel()
			db.Close()
		}
		if err == nil {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
