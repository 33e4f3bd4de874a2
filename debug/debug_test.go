package debug_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/debug"
)

// TestMain fails the run if a goroutine running pool code outlives the
// tests, as the core's TestMain does: every pool here must be closed and
// every waiter joined.
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
			if strings.Contains(g, "fairpool.(*Pool") || strings.Contains(g, "fairpool.(*Group") || strings.Contains(g, "fairpool/debug_test.") {
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

type conn struct{ id int }

// newPool returns a pool of MaxSize 2 that tracks leases and bounds waits
// only by the context. Cleanup closes it.
func newPool(t *testing.T, name string, track bool) *fairpool.Pool[*conn] {
	t.Helper()
	var n int
	var mu sync.Mutex
	p, err := fairpool.New(fairpool.Config[*conn]{
		Name: name, MaxSize: 2, TrackLeases: track, AcquireTimeout: -1,
		Open: func(context.Context) (*conn, error) {
			mu.Lock()
			defer mu.Unlock()
			n++
			return &conn{id: n}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// here returns "file:line" of the line after the caller's, where the tests
// put the Acquire whose call site they check.
func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line+1)
}

// knownState puts p (MaxSize 2) in the state the page is tested in: two
// leases held by this goroutine, three goroutines waiting. It returns the
// call sites of the two Acquires. Cleanup cancels the waiters, joins them
// and then releases the leases.
func knownState(t *testing.T, p *fairpool.Pool[*conn]) []string {
	t.Helper()
	ctx := context.Background()
	site1 := here()
	l1, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l1.Release)
	site2 := here()
	l2, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l2.Release)

	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			l, err := p.Acquire(wctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("waiter: %v", err)
				}
				return
			}
			l.Release()
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() }) // runs before the Releases
	waitFor(t, "3 waiters", func() bool { return p.Stats().Waiting == 3 })
	return []string{site1, site2}
}

// waitFor spins until cond holds (never a sleep as a guess).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// get serves url from h and returns the response and its body.
func get(t *testing.T, h http.Handler, url string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func getPage(t *testing.T, h http.Handler, url string) string {
	t.Helper()
	res, body := get(t, h, url)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, res.Status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if strings.Contains(body, "ZgotmplZ") { // html/template's mark for a value it refused
		t.Errorf("page has a value html/template refused:\n%s", body)
	}
	return body
}

// page is the JSON form, decoded with the shape the package doc promises.
type page struct {
	Time  time.Time
	Pools []struct {
		Name    string
		Stats   fairpool.Stats
		Holders []fairpool.Holder
		Waiters []time.Duration
	}
}

func getJSON(t *testing.T, h http.Handler) (page, string) {
	t.Helper()
	res, body := get(t, h, "/?format=json")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", res.Status, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var pg page
	if err := json.Unmarshal([]byte(body), &pg); err != nil {
		t.Fatalf("%v in\n%s", err, body)
	}
	return pg, body
}

// section returns the HTML of the pool section whose data-pool attribute
// is attr (as html/template escaped it).
func section(t *testing.T, body, attr string) string {
	t.Helper()
	_, after, ok := strings.Cut(body, `<section class="pool" data-pool="`+attr+`">`)
	if !ok {
		t.Fatalf("no section for pool %s in\n%s", attr, body)
	}
	sec, _, _ := strings.Cut(after, "</section>")
	return sec
}

var statRE = regexp.MustCompile(`data-stat="([a-z-]+)"[^>]*>([^<]*)<`)

// stats returns the values the page shows, by data-stat name.
func stats(sec string) map[string]string {
	m := map[string]string{}
	for _, s := range statRE.FindAllStringSubmatch(sec, -1) {
		m[s[1]] = s[2]
	}
	return m
}

func TestPageShowsKnownState(t *testing.T) {
	p := newPool(t, "orders", true)
	sites := knownState(t, p)
	h := debug.NewHandler()
	if err := h.Add("orders", p); err != nil {
		t.Fatal(err)
	}
	sec := section(t, getPage(t, h, "/"), "orders")
	s := p.Stats()
	want := map[string]string{
		"size": "2", "open": "2", "in-use": "2", "idle": "0", "opening": "0", "closing": "0", "waiting": "3",
		"holders": "2", "waiters": "3",
		"acquires": strconv.FormatInt(s.Acquires, 10), "hist-count": strconv.FormatInt(s.WaitHistogram.Count, 10),
	}
	got := stats(sec)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(sec, "<h2>orders</h2>") {
		t.Error("no heading")
	}
	// Holders oldest first, each call site as the summary of its stack.
	i1 := strings.Index(sec, `<summary class="caller">`+sites[0]+`</summary>`)
	i2 := strings.Index(sec, `<summary class="caller">`+sites[1]+`</summary>`)
	if i1 < 0 || i2 < 0 || i1 > i2 {
		t.Errorf("holders' call sites %q, %q not in order in\n%s", sites[0], sites[1], sec)
	}
	if n := strings.Count(sec, "<details "); n != 2 {
		t.Errorf("%d stacks, want 2", n)
	}
	if !strings.Contains(sec, "debug_test.knownState") {
		t.Errorf("stack does not name the acquiring function:\n%s", sec)
	}
	if n := strings.Count(sec, `<td class="dur">`); n != 5 {
		t.Errorf("%d duration cells, want 2 holders + 3 waiters", n)
	}
}

func TestJSONServesTheSameData(t *testing.T) {
	p := newPool(t, "orders", true)
	sites := knownState(t, p)
	h := debug.NewHandler()
	if err := h.Add("orders", p); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	pg, _ := getJSON(t, h)
	if pg.Time.Before(before.Add(-time.Second)) || pg.Time.After(time.Now()) {
		t.Errorf("Time %v", pg.Time)
	}
	if len(pg.Pools) != 1 || pg.Pools[0].Name != "orders" {
		t.Fatalf("pools %+v", pg.Pools)
	}
	got := pg.Pools[0]
	want := p.Stats()
	want.WaitDuration, got.Stats.WaitDuration = 0, 0 // the rest is still while the state holds
	if got.Stats != want {
		t.Errorf("Stats\n got %+v\nwant %+v", got.Stats, want)
	}
	if len(got.Holders) != 2 {
		t.Fatalf("holders %+v", got.Holders)
	}
	for i, hd := range got.Holders {
		if hd.Caller != sites[i] || hd.Goroutine == 0 || !strings.Contains(hd.Stack, "knownState") || hd.HeldFor <= 0 {
			t.Errorf("holder %d: %+v, want caller %s", i, hd, sites[i])
		}
	}
	if got.Holders[0].HeldFor < got.Holders[1].HeldFor {
		t.Errorf("holders not oldest first: %v, %v", got.Holders[0].HeldFor, got.Holders[1].HeldFor)
	}
	if len(got.Waiters) != 3 {
		t.Fatalf("waiters %v", got.Waiters)
	}
	for i := 1; i < len(got.Waiters); i++ {
		if got.Waiters[i] > got.Waiters[i-1] {
			t.Errorf("waiters not in serving order (longest first under FIFO): %v", got.Waiters)
		}
	}
}

type fakeSource struct {
	stats   fairpool.Stats
	holders []fairpool.Holder
	waiters []time.Duration
}

func (f fakeSource) Stats() fairpool.Stats      { return f.stats }
func (f fakeSource) Holders() []fairpool.Holder { return f.holders }
func (f fakeSource) Waiters() []time.Duration   { return f.waiters }

func TestEscapesEverythingFromTheProgram(t *testing.T) {
	const name = `<script>alert(1)</script>`
	p := newPool(t, name, true)
	knownState(t, p)
	hostile := fakeSource{
		stats: fairpool.Stats{MaxSize: 1, Open: 1, InUse: 1},
		holders: []fairpool.Holder{{
			HeldFor: time.Second, Goroutine: 7,
			Caller: `"><script>alert(2)</script>.go:1`,
			Stack:  "goroutine 7 [running]:\n</pre><img src=x onerror=alert(3)>\n",
		}},
	}
	const name2 = `x" onmouseover="alert(4)`
	h := debug.NewHandler()
	for n, s := range map[string]debug.Source{name: p, name2: hostile} {
		if err := h.Add(n, s); err != nil {
			t.Fatal(err)
		}
	}
	body := getPage(t, h, "/")
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d <script elements, want only the page's own", n)
	}
	for _, bad := range []string{"<img", `onmouseover="`, "alert(2)</script>"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	sec := section(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	if !strings.Contains(sec, "<h2>&lt;script&gt;alert(1)&lt;/script&gt;</h2>") {
		t.Errorf("name not shown as text:\n%s", sec)
	}
	if got := stats(sec); got["in-use"] != "2" || got["waiting"] != "3" {
		t.Errorf("stats of the oddly named pool: %v", got)
	}
	sec2 := section(t, body, "x&#34; onmouseover=&#34;alert(4)")
	for _, want := range []string{
		`<h2>x&#34; onmouseover=&#34;alert(4)</h2>`,
		`<summary class="caller">&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;.go:1</summary>`,
		`&lt;/pre&gt;&lt;img src=x onerror=alert(3)&gt;`,
	} {
		if !strings.Contains(sec2, want) {
			t.Errorf("missing %s in\n%s", want, sec2)
		}
	}

	pg, raw := getJSON(t, h)
	if strings.ContainsAny(raw, "<>") {
		t.Errorf("JSON has raw < or >:\n%s", raw)
	}
	if len(pg.Pools) != 2 || pg.Pools[0].Name != name || pg.Pools[1].Name != name2 || pg.Pools[1].Holders[0].Caller != hostile.holders[0].Caller {
		t.Errorf("JSON does not carry the names and callers as they are: %+v", pg.Pools)
	}
}

func TestScriptIsTheOneTheCSPAllows(t *testing.T) {
	h := debug.NewHandler()
	res, body := get(t, h, "/")
	_, after, _ := strings.Cut(body, "<script>")
	script, _, ok := strings.Cut(after, "</script>")
	if !ok {
		t.Fatalf("no script in\n%s", body)
	}
	sum := sha256.Sum256([]byte(script))
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q does not allow exactly the page's script", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if res.Header.Get(k) != v {
			t.Errorf("%s: %q", k, res.Header.Get(k))
		}
	}
}

func TestPoolsSortedAddRemove(t *testing.T) {
	h := debug.NewHandler()
	if !strings.Contains(getPage(t, h, "/"), "No pools added.") {
		t.Error("empty page does not say so")
	}
	for _, n := range []string{"b", "a", "c"} {
		if err := h.Add(n, fakeSource{stats: fairpool.Stats{MaxSize: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Add("a", fakeSource{}); err == nil {
		t.Error("duplicate name accepted")
	}
	if err := h.Add("d", nil); err == nil {
		t.Error("nil Source accepted")
	}
	h.Remove("c")
	h.Remove("nonesuch")
	body := getPage(t, h, "/")
	ia, ib := strings.Index(body, "<h2>a</h2>"), strings.Index(body, "<h2>b</h2>")
	if ia < 0 || ib < ia || strings.Contains(body, "<h2>c</h2>") {
		t.Errorf("want pools a, b in that order:\n%s", body)
	}
	pg, raw := getJSON(t, h)
	if len(pg.Pools) != 2 || pg.Pools[0].Name != "a" || pg.Pools[1].Name != "b" {
		t.Errorf("JSON pools %+v", pg.Pools)
	}
	if !strings.Contains(raw, `"Holders": []`) || !strings.Contains(raw, `"Waiters": []`) {
		t.Errorf("empty lists should be [] in JSON:\n%s", raw)
	}
}

func TestHoldersNeedTracking(t *testing.T) {
	p := newPool(t, "plain", false)
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	h := debug.NewHandler()
	h.Add("plain", p)
	sec := section(t, getPage(t, h, "/"), "plain")
	if !strings.Contains(sec, "1 in use; set Config.TrackLeases to see who holds them.") {
		t.Errorf("no hint to turn tracking on:\n%s", sec)
	}
}

func TestHistogramBars(t *testing.T) {
	var hist fairpool.Histogram
	hist.Counts[3] = 5                     // [4µs, 8µs)
	hist.Counts[10] = 20                   // [512µs, 1.024ms)
	hist.Counts[fairpool.NumBuckets-1] = 1 // 67 s and more
	hist.Count = 26
	h := debug.NewHandler()
	h.Add("h", fakeSource{stats: fairpool.Stats{MaxSize: 1, Acquires: 26, WaitHistogram: hist}})
	h.Add("empty", fakeSource{stats: fairpool.Stats{MaxSize: 1}})
	body := getPage(t, h, "/")
	sec := section(t, body, "h")
	if n := strings.Count(sec, "<tr><th title="); n != fairpool.NumBuckets-3 {
		t.Errorf("%d bars, want the %d buckets from the first used to the last", n, fairpool.NumBuckets-3)
	}
	for _, want := range []string{
		`<th title="4µs to 8µs">&lt;8µs</th><td class="bar"><span style="width: 25.00%"></span></td><td class="n">5</td>`,
		`<th title="512µs to 1.02ms">&lt;1.02ms</th><td class="bar"><span style="width: 100.00%"></span></td><td class="n">20</td>`,
		`<th title="67.1s and more">≥67.1s</th><td class="bar"><span style="width: 5.00%"></span></td><td class="n">1</td>`,
		`<th title="8µs to 16µs">&lt;16µs</th><td class="bar"></td><td class="n">0</td>`,
		`p50 <b>&lt;1.02ms</b> · p90 <b>&lt;1.02ms</b> · p99 <b>&lt;1.02ms</b>`,
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("missing %s in\n%s", want, sec)
		}
	}
	if !strings.Contains(section(t, body, "empty"), "No acquires yet.") {
		t.Error("empty histogram not said")
	}
}

func TestRefreshInterval(t *testing.T) {
	h := debug.NewHandler()
	for _, c := range []struct {
		set       time.Duration // 0: leave the default
		url       string
		ms        string
		metaSecs  string // "" for no meta refresh
		linkLabel string // the choice shown as current, "" if none
	}{
		{0, "/", "2000", "2", "2s"},
		{0, "/?refresh=500ms", "500", "1", "500ms"},
		{0, "/?refresh=0", "0", "", "off"},
		{0, "/?refresh=1ns", "100", "1", ""},
		{0, "/?refresh=3m", "180000", "180", ""},
		{time.Minute, "/", "60000", "60", ""},
		{-1, "/", "0", "", "off"},
		{-1, "/?refresh=5s", "5000", "5", "5s"},
		{10 * time.Millisecond, "/", "100", "1", ""},
	} {
		if c.set != 0 {
			h.SetRefresh(c.set)
		}
		body := getPage(t, h, c.url)
		if !strings.Contains(body, `<body data-refresh-ms="`+c.ms+`">`) {
			t.Errorf("SetRefresh(%v) %s: want data-refresh-ms %s", c.set, c.url, c.ms)
		}
		meta := `<noscript><meta http-equiv="refresh" content="` + c.metaSecs + `"></noscript>`
		if hasMeta := strings.Contains(body, `http-equiv="refresh"`); hasMeta != (c.metaSecs != "") || (hasMeta && !strings.Contains(body, meta)) {
			t.Errorf("SetRefresh(%v) %s: want meta refresh %q", c.set, c.url, c.metaSecs)
		}
		if c.linkLabel != "" && !strings.Contains(body, "<b>"+c.linkLabel+"</b>") {
			t.Errorf("SetRefresh(%v) %s: %s not marked current", c.set, c.url, c.linkLabel)
		}
	}
	for _, bad := range []string{"/?refresh=soon", "/?refresh=-1s"} {
		if res, _ := get(t, h, bad); res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", bad, res.Status)
		}
	}
}

func TestMethodsAndFormats(t *testing.T) {
	h := debug.NewHandler()
	h.Add("a", fakeSource{stats: fairpool.Stats{MaxSize: 1}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, c := range []struct {
		method, query string
		status        int
		allow         string
	}{
		{http.MethodGet, "", 200, ""},
		{http.MethodGet, "?format=html", 200, ""},
		{http.MethodGet, "?format=json", 200, ""},
		{http.MethodHead, "", 200, ""},
		{http.MethodGet, "?format=xml", 400, ""},
		{http.MethodPost, "", 405, "GET, HEAD"},
		{http.MethodDelete, "?format=json", 405, "GET, HEAD"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+"/"+c.query, nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || res.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %s (Allow %q), want %d (Allow %q)", c.method, c.query, res.Status, res.Header.Get("Allow"), c.status, c.allow)
		}
	}
}

// TestConcurrentUse adds, removes and serves at once; -race checks it.
func TestConcurrentUse(t *testing.T) {
	p := newPool(t, "live", true)
	h := debug.NewHandler()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				name := fmt.Sprintf("p%d-%d", g, i%3)
				h.Add(name, p)
				l, err := p.Acquire(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?format="+[]string{"html", "json"}[i%2], nil))
				l.Release()
				if rec.Code != http.StatusOK {
					t.Errorf("status %d", rec.Code)
				}
				h.SetRefresh(time.Duration(i) * time.Second)
				h.Remove(name)
			}
		})
	}
	wg.Wait()
}
