package browsertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	rtdebug "runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/debug"
	"github.com/fairpool/fairpool/fairpgx"
	"github.com/fairpool/fairpool/sqlpool"
)

const chromiumPath = "/usr/bin/chromium" // Debian's chromium package

// TestMain fails the run if a goroutine running pool, chromedp or test code
// outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitForGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func waitForGoroutines(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "fairpool.(*Pool") || strings.Contains(g, "chromedp") || strings.Contains(g, "browsertest.") {
				if !strings.Contains(g, "waitForGoroutines") {
					leaked = append(leaked, g)
				}
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// here returns "file:line" of the line after the caller's, where the test
// puts the Acquire whose call site the page must show.
func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line+1)
}

type conn struct{}

func newPool(t *testing.T, name string, size int) *fairpool.Pool[*conn] {
	t.Helper()
	p, err := fairpool.New(fairpool.Config[*conn]{
		Name: name, MaxSize: size, TrackLeases: true,
		AcquireTimeout: -1, // waiters here wait until the test cancels them
		Open:           func(context.Context) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return p
}

// traffic runs a short burst of contended acquires so that the wait
// histogram has something to show: 8 goroutines, 25 leases each held 0-3
// ms, on the pool's 2 connections.
func traffic(t *testing.T, p *fairpool.Pool[*conn]) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for range 25 {
				l, err := p.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(time.Duration(rnd.IntN(3000)) * time.Microsecond) // the work done with the connection
				l.Release()
			}
		})
	}
	wg.Wait()
}

// waiter is a goroutine queued in Acquire until its context is cancelled.
type waiter struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startWaiter(p *fairpool.Pool[*conn]) *waiter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &waiter{cancel: cancel, done: make(chan error, 1)}
	go func() {
		l, err := p.Acquire(ctx)
		if err == nil {
			l.Release()
			err = errors.New("waiter was served; the test holds every connection until it ends")
		} else if errors.Is(err, context.Canceled) {
			err = nil
		}
		w.done <- err
	}()
	return w
}

// stop cancels the wait and joins the goroutine. Later calls do nothing.
func (w *waiter) stop(t *testing.T) {
	w.once.Do(func() {
		w.cancel()
		if err := <-w.done; err != nil {
			t.Error(err)
		}
	})
}

func newGroup(t *testing.T) *fairpool.Group[string, *conn] {
	t.Helper()
	g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
		Name: "tenants", PerKeyMax: 1, GlobalMax: 4, AcquireTimeout: -1, KeyIdleTime: -1,
		Open: func(context.Context, string) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("Close tenants: %v", err)
		}
	})
	return g
}

// startGroupWaiter is startWaiter for a key of a group.
func startGroupWaiter(g *fairpool.Group[string, *conn], key string) *waiter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &waiter{cancel: cancel, done: make(chan error, 1)}
	go func() {
		l, err := g.Acquire(ctx, key)
		if err == nil {
			l.Release()
			err = errors.New("group waiter was served; the test holds its key until it ends")
		} else if errors.Is(err, context.Canceled) {
			err = nil
		}
		w.done <- err
	}()
	return w
}

// spinUntil waits for cond without sleeping on a guess.
func spinUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// domPool is what the test reads back from the rendered page.
type domPool struct {
	Attr    string            `json:"attr"`    // data-pool, as the DOM decoded it
	Heading string            `json:"heading"` // the h2's textContent
	Stats   map[string]string `json:"stats"`   // data-stat -> textContent
	Callers []string          `json:"callers"` // holders' "acquired at", in table order
	Held    []string          `json:"held"`    // holders' "held for"
	Waiters []string          `json:"waiters"` // waiters' "waiting for"
	Bars    int               `json:"bars"`    // histogram rows
	Keys    []string          `json:"keys"`    // a group's key rows, in table order
}

type domPage struct {
	Pools   []domPool `json:"pools"`
	Scripts int       `json:"scripts"` // <script> elements in the document
}

const readPage = `({
  scripts: document.querySelectorAll("script").length,
  pools: Array.from(document.querySelectorAll("section.pool"), s => ({
    attr: s.dataset.pool,
    heading: s.querySelector("h2").textContent,
    stats: Object.fromEntries(Array.from(s.querySelectorAll("[data-stat]"), e => [e.dataset.stat, e.textContent])),
    callers: Array.from(s.querySelectorAll("table.holders summary.caller"), e => e.textContent),
    held: Array.from(s.querySelectorAll("table.holders td.dur"), e => e.textContent),
    waiters: Array.from(s.querySelectorAll("table.waiters td.dur"), e => e.textContent),
    bars: s.querySelectorAll("table.hist tr").length,
    keys: Array.from(s.querySelectorAll("tr[data-row]"), e => e.dataset.row),
  })),
})`

// TestDebugPageInChromium loads the debug page in headless Chromium with a
// pool in a known state (2 connections held from call sites in this file, 3
// goroutines waiting) and a pool named like an XSS probe, and checks what a
// reader sees: the numbers, the holders' call sites and stacks, the waiters,
// the probe's name as text with no dialog, a refresh that follows a change
// in the pool without reloading the page, and no console errors (the
// Content-Security-Policy lets the page's own script run). It saves a
// screenshot.
func TestDebugPageInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs %s (apt-get install chromium): %v", chromiumPath, err)
		}
		t.Skipf("%s not installed (apt-get install chromium)", chromiumPath)
	}
	start := time.Now()

	// The pool in a known state.
	orders := newPool(t, "orders", 2)
	traffic(t, orders)
	ctx := context.Background()
	site1 := here()
	held1, err := orders.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held1.Release()
	site2 := here()
	held2, err := orders.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held2.Release()
	waiters := make([]*waiter, 3)
	for i := range waiters {
		waiters[i] = startWaiter(orders)
		defer waiters[i].stop(t)
	}
	spinUntil(t, "3 waiters", func() bool { return orders.Stats().Waiting == 3 })

	const probe = `<script>alert(1)</script>`
	odd := newPool(t, probe, 4)
	if l, err := odd.Acquire(ctx); err != nil {
		t.Fatal(err)
	} else {
		l.Release()
	}

	// A *sqlpool.Pool on PostgreSQL with a lease held from this file, and
	// a *fairpool.Group with two keys, one of them waited for: both added
	// as they are, without wrappers.
	app := postgres().newSQLPool(t, sqlpool.Config{Name: "app", MaxSize: 3, TrackLeases: true})
	appHeld, appRelease := make(chan error, 1), make(chan struct{})
	var appSite string
	go func() {
		appSite = here() // read after appHeld says the lease is held
		appHeld <- app.WithConn(ctx, func(context.Context, *sql.Conn) error { appHeld <- nil; <-appRelease; return nil })
	}()
	if err := <-appHeld; err != nil {
		t.Fatal(err)
	}
	defer func() {
		close(appRelease)
		if err := <-appHeld; err != nil {
			t.Error(err)
		}
	}()
	tenants := newGroup(t)
	for _, k := range []string{"beta", "acme"} {
		l, err := tenants.Acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
	}
	tenantWaiter := startGroupWaiter(tenants, "acme")
	defer tenantWaiter.stop(t)
	spinUntil(t, "a tenant waiter", func() bool { return tenants.Stats().Total.Waiting == 1 })

	// A *fairpgx.Pool on PostgreSQL with a Conn held from this file.
	pgcfg, err := fairpgx.ParseConfig(postgres().dsn)
	if err != nil {
		t.Fatal(err)
	}
	pgcfg.Name, pgcfg.MaxConns, pgcfg.TrackLeases = "pgx", 2, true
	pgxPool, err := fairpgx.NewWithConfig(ctx, pgcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pgxPool.Close()
	pgxSite := here()
	pgxConn, err := pgxPool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pgxConn.Release()

	h := debug.NewHandler()
	for name, p := range map[string]debug.Source{"orders": orders, probe: odd, "app": app, "tenants": tenants, "pgx": pgxPool} {
		if err := h.Add(name, p); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(h) // 127.0.0.1
	defer srv.Close()

	// The browser, with a fresh profile. Its contexts are cancelled (and the
	// process reaped) before srv closes and before the pool's leases are
	// released: defers run last-in first-out.
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 900),
	)
	defer checkNoBrowserLeft(t, profile)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, bound to bctx
		t.Fatal(err)
	}

	// Every dialog is recorded and dismissed, every console message kept.
	var mu sync.Mutex
	var dialogs, console []string
	var listeners sync.WaitGroup
	dialogEvents := chromedp.Events(bctx, page.JavascriptDialogOpening)
	consoleEvents := chromedp.Console(bctx)
	listeners.Go(func() {
		for ev, err := range dialogEvents {
			if err != nil {
				return
			}
			mu.Lock()
			dialogs = append(dialogs, string(ev.Type)+": "+ev.Message)
			mu.Unlock()
			chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})
	listeners.Go(func() {
		for m, err := range consoleEvents {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, fmt.Sprintf("%s %s:%d %s", m.Type, m.URL, m.Line+1, m))
			mu.Unlock()
		}
	})
	defer listeners.Wait() // after cancelBrowser ends their iterators
	defer cancelBrowser()

	tctx, cancel := context.WithTimeout(bctx, 20*time.Second)
	defer cancel()
	consoleText := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(console, "\n")
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(tctx, steps...); err != nil {
			t.Fatalf("%s: %v\nconsole:\n%s", what, err, consoleText())
		}
	}
	run("load the page",
		chromedp.Navigate(srv.URL+"/?refresh=250ms"),
		chromedp.WaitVisible(chromedp.CSS("section.pool")),
	)
	got, err := chromedp.Run(tctx, chromedp.Evaluate[domPage](readPage))
	if err != nil {
		t.Fatal(err)
	}

	// Pools are sorted by name: "<" sorts before letters.
	if len(got.Pools) != 5 {
		t.Fatalf("%d pools on the page, want 5: %+v", len(got.Pools), got)
	}
	p, a, o, x, g := got.Pools[0], got.Pools[1], got.Pools[2], got.Pools[3], got.Pools[4]
	if a.Attr != "app" || o.Attr != "orders" || x.Attr != "pgx" || g.Attr != "tenants" {
		t.Fatalf("pools in order %q, %q, %q, %q, %q", p.Attr, a.Attr, o.Attr, x.Attr, g.Attr)
	}
	if x.Stats["size"] != "2" || x.Stats["in-use"] != "1" || x.Stats["holders"] != "1" || len(x.Callers) != 1 || x.Callers[0] != pgxSite {
		t.Errorf("pgx (fairpgx): stats %v, holders at %q; want 1 of 2 in use, held at %s", x.Stats, x.Callers, pgxSite)
	}
	if a.Stats["size"] != "3" || a.Stats["in-use"] != "1" || a.Stats["holders"] != "1" || len(a.Callers) != 1 || a.Callers[0] != appSite {
		t.Errorf("app (sqlpool): stats %v, holders at %q; want 1 of 3 in use, held at %s", a.Stats, a.Callers, appSite)
	}
	if strings.Join(g.Keys, ",") != "acme,beta" || g.Stats["in-use"] != "2" || g.Stats["waiting"] != "1" || g.Stats["keys"] != "2" {
		t.Errorf("tenants (group): key rows %q, stats %v; want acme and beta, 2 in use, 1 waiting", g.Keys, g.Stats)
	}

	s := orders.Stats()
	want := map[string]string{
		"size": "2", "open": "2", "in-use": "2", "idle": "0", "opening": "0", "closing": "0", "waiting": "3",
		"holders": "2", "waiters": "3",
		"acquires":   strconv.FormatInt(s.Acquires, 10),
		"hist-count": strconv.FormatInt(s.WaitHistogram.Count, 10),
		"timeouts":   "0",
	}
	for k, v := range want {
		if o.Stats[k] != v {
			t.Errorf("orders: %s shows %q, want %q", k, o.Stats[k], v)
		}
	}
	if o.Heading != "orders" || o.Attr != "orders" {
		t.Errorf("orders heading %q", o.Heading)
	}
	if len(o.Callers) != 2 || o.Callers[0] != site1 || o.Callers[1] != site2 {
		t.Errorf("holders acquired at %q, want %q then %q", o.Callers, site1, site2)
	}
	if len(o.Held) != 2 || len(o.Waiters) != 3 || o.Bars == 0 {
		t.Errorf("orders: %d holders, %d waiters, %d histogram bars", len(o.Held), len(o.Waiters), o.Bars)
	}

	// The probe is text: the heading holds the name as typed, and the only
	// script in the document is the page's own.
	if p.Heading != probe || p.Attr != probe {
		t.Errorf("probe pool: heading %q, data-pool %q; want both %q", p.Heading, p.Attr, probe)
	}
	if got.Scripts != 1 {
		t.Errorf("%d script elements, want 1", got.Scripts)
	}
	if p.Stats["idle"] != "1" || p.Stats["size"] != "4" {
		t.Errorf("probe pool stats %v", p.Stats)
	}

	// A holder's stack, on demand: it opens on a click and names this test.
	run("open the first stack", chromedp.Click(chromedp.CSS(`section.pool[data-pool="orders"] summary.caller`)))
	stack, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`section.pool[data-pool="orders"] details[open] pre`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stack, "browsertest.TestDebugPageInChromium") || !strings.Contains(stack, site1) {
		t.Errorf("stack does not show the acquiring frame %s:\n%s", site1, stack)
	}

	// The screenshot: the state above, the first stack open.
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(os.TempDir(), "fairpool-debug-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if os.Getenv("FAIRPOOL_SCREENSHOT") == "1" {
		// The page shows stacks: without -trimpath they carry this
		// machine's paths into a committed picture.
		if !builtWithTrimpath() {
			t.Fatal("FAIRPOOL_SCREENSHOT=1 needs a test binary built with -trimpath (go test -trimpath ...)")
		}
		readme := filepath.Join("..", "docs", "debug-page.png")
		if err := os.WriteFile(readme, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(readme)
		t.Logf("screenshot for docs/diagnostics.md: %s", abs)
	}

	// The refresh: one waiter gives up; the page shows it without a reload
	// (a marker set on window survives) and keeps the open stack open.
	run("mark the window", chromedp.Evaluate[chromedp.Void](`window.fairpoolMarker = 1`))
	waiters[2].stop(t)
	run("see the waiter leave",
		chromedp.Poll[chromedp.Void](`document.querySelector('section.pool[data-pool="orders"] [data-stat="waiting"]').textContent === "2"`,
			chromedp.WithPollingTimeout(5*time.Second)),
	)
	after, err := chromedp.Run(tctx, chromedp.Evaluate[[]any](`[
		window.fairpoolMarker === 1,
		!!document.querySelector('section.pool[data-pool="orders"] details[open]'),
		document.querySelector('section.pool[data-pool="orders"] [data-stat="cancels"]').textContent,
		document.getElementById("status").textContent,
	]`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after) != "[true true 1 ]" {
		t.Errorf("after a refresh: [no reload, stack still open, cancels, status] = %v, want [true true 1 \"\"]", after)
	}

	mu.Lock()
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
	mu.Unlock()
	if c := consoleText(); c != "" {
		t.Errorf("console messages (a CSP violation shows here):\n%s", c)
	}
	t.Logf("browser part took %v", time.Since(start).Round(time.Millisecond))
}

// checkNoBrowserLeft fails t if a process still runs with the profile in
// its command line (Chromium passes --user-data-dir to its children),
// after the allocator reaped the browser.
func checkNoBrowserLeft(t *testing.T, profile string) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids := processesUsing(profile)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("browser processes left running: %v", pids)
			for _, pid := range pids {
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processesUsing(profile string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), "--user-data-dir="+profile) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// builtWithTrimpath reports whether this test binary was built with
// -trimpath.
func builtWithTrimpath() bool {
	info, ok := rtdebug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-trimpath" {
			return s.Value == "true"
		}
	}
	return false
}
