package debug_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/debug"
)

// newGroup returns a group of PerKeyMax 2 whose waits are bounded only by
// the context. Cleanup closes it.
func newGroup(t *testing.T, name string, globalMax int) *fairpool.Group[string, *conn] {
	t.Helper()
	g, err := fairpool.NewGroup(fairpool.GroupConfig[string, *conn]{
		Name: name, PerKeyMax: 2, GlobalMax: globalMax, AcquireTimeout: -1, KeyIdleTime: -1,
		Open: func(context.Context, string) (*conn, error) { return &conn{}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

// knownGroupState puts g (PerKeyMax 2, GlobalMax 3) in the state the page
// is tested in: a at PerKeyMax with two requests waiting for it, one
// lease of b, which fills GlobalMax, and one request for c waiting in the
// global line. Cleanup cancels the waiters, joins them and then releases
// the leases.
func knownGroupState(t *testing.T, g *fairpool.Group[string, *conn]) {
	t.Helper()
	ctx := context.Background()
	for _, k := range []string{"a", "a", "b"} {
		l, err := g.Acquire(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Release)
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, k := range []string{"a", "a", "c"} {
		wg.Go(func() {
			l, err := g.Acquire(wctx, k)
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
	waitFor(t, "3 waiters", func() bool { return g.Stats().Total.Waiting == 3 })
}

// groupSection returns the HTML of the group section whose data-pool
// attribute is attr (as html/template escaped it).
func groupSection(t *testing.T, body, attr string) string {
	t.Helper()
	_, after, ok := strings.Cut(body, `<section class="pool" data-pool="`+attr+`" data-kind="group">`)
	if !ok {
		t.Fatalf("no group section %s in\n%s", attr, body)
	}
	sec, _, _ := strings.Cut(after, "</section>")
	return sec
}

var (
	rowRE  = regexp.MustCompile(`(?s)<tr data-row="([^"]*)">(.*?)</tr>`)
	cellRE = regexp.MustCompile(`data-col="([a-z-]+)"[^>]*>([^<]*)<`)
)

// keyRows returns the Keys table's rows in page order, each as its key
// and its cells by data-col name, and the totals row.
func keyRows(t *testing.T, sec string) (keys []string, rows []map[string]string, total map[string]string) {
	t.Helper()
	body, foot, ok := strings.Cut(sec, "<tfoot>")
	if !ok {
		t.Fatalf("no totals row in\n%s", sec)
	}
	cells := func(row string) map[string]string {
		m := map[string]string{}
		for _, c := range cellRE.FindAllStringSubmatch(row, -1) {
			m[c[1]] = c[2]
		}
		return m
	}
	for _, r := range rowRE.FindAllStringSubmatch(body, -1) {
		keys = append(keys, r[1])
		rows = append(rows, cells(r[2]))
	}
	return keys, rows, cells(foot)
}

func TestGroupPageShowsKeysAndTotals(t *testing.T) {
	g := newGroup(t, "tenants", 3)
	knownGroupState(t, g)
	h := debug.NewHandler()
	if err := h.Add("tenants", debug.Group(g)); err != nil {
		t.Fatal(err)
	}
	sec := groupSection(t, getPage(t, h, "/"), "tenants")
	total := g.Stats().Total
	want := map[string]string{
		"size": "3", "open": "3", "in-use": "3", "idle": "0", "waiting": "3",
		"acquires": strconv.FormatInt(total.Acquires, 10), "closed": "0", "evictions": "0",
		"keys": "3", "key-pools": "3", "key-pools-created": "3", "key-pools-dropped": "0",
		"waiting-for-key": "2", "waiting-for-global": "1", "waiting-for-conn": "0",
	}
	got := stats(sec)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["holders"]; ok || strings.Contains(sec, "TrackLeases") {
		t.Errorf("a group's section lists holders:\n%s", sec)
	}
	if _, ok := got["waiters"]; ok {
		t.Errorf("a group's section has a waiters list of its own:\n%s", sec)
	}
	keys, rows, tot := keyRows(t, sec)
	if strings.Join(keys, ",") != "a,b,c" {
		t.Fatalf("rows %v, want a, b, c in key order", keys)
	}
	for i, w := range []map[string]string{
		{"size": "2", "open": "2", "in-use": "2", "idle": "0", "waiting": "2"},
		{"size": "2", "open": "1", "in-use": "1", "idle": "0", "waiting": "0", "longest": ""},
		{"size": "2", "open": "0", "in-use": "0", "idle": "0", "waiting": "1"},
		{"size": "3", "open": "3", "in-use": "3", "idle": "0", "waiting": "3"},
	} {
		row, name := tot, "total"
		if i < len(rows) {
			row, name = rows[i], keys[i]
		}
		for k, v := range w {
			if row[k] != v {
				t.Errorf("row %s: %s = %q, want %q", name, k, row[k], v)
			}
		}
	}
	for _, r := range []map[string]string{rows[0], rows[2], tot} {
		if r["longest"] == "" {
			t.Errorf("no longest wait in a row with waiters: %v", r)
		}
	}
}

func TestGroupJSON(t *testing.T) {
	g := newGroup(t, "tenants", 3)
	knownGroupState(t, g)
	h := debug.NewHandler()
	h.Add("tenants", debug.Group(g))
	h.Add("orders", fakeSource{stats: fairpool.Stats{MaxSize: 1}})
	_, raw := getJSON(t, h)
	var pg struct {
		Pools []struct {
			Name    string
			Stats   fairpool.Stats
			Holders []fairpool.Holder
			Waiters []time.Duration
			Group   *struct {
				KeyPools, WaitingForKey, WaitingForGlobal, WaitingForConn int
				KeyPoolsCreated, KeyPoolsDropped, Evictions               int64
			}
			Keys []struct {
				Key     string
				Stats   fairpool.Stats
				Waiters []time.Duration
			}
		}
	}
	if err := json.Unmarshal([]byte(raw), &pg); err != nil {
		t.Fatal(err)
	}
	if len(pg.Pools) != 2 || pg.Pools[0].Name != "orders" || pg.Pools[1].Name != "tenants" {
		t.Fatalf("pools %+v", pg.Pools)
	}
	if o := pg.Pools[0]; o.Group != nil || o.Keys != nil {
		t.Errorf("a pool has a group's fields: %+v", o)
	}
	p := pg.Pools[1]
	gs := g.Stats()
	want := gs.Total
	want.WaitDuration, p.Stats.WaitDuration = 0, 0 // the rest is still while the state holds
	if p.Stats != want {
		t.Errorf("Stats\n got %+v\nwant %+v", p.Stats, want)
	}
	// Untracked: no holders. Every waiting request once, longest first.
	if p.Holders == nil || len(p.Holders) != 0 || len(p.Waiters) != gs.Total.Waiting || gs.Total.Waiting == 0 ||
		!slices.IsSortedFunc(p.Waiters, func(a, b time.Duration) int { return cmp.Compare(b, a) }) {
		t.Errorf("a group's own Holders %v and Waiters %v, want none and all %d waiting, longest first", p.Holders, p.Waiters, gs.Total.Waiting)
	}
	if f := p.Group; f == nil || f.KeyPools != 3 || f.KeyPoolsCreated != 3 || f.WaitingForKey != 2 || f.WaitingForGlobal != 1 || f.WaitingForConn != 0 {
		t.Errorf("Group %+v", f)
	}
	if len(p.Keys) != 3 {
		t.Fatalf("keys %+v", p.Keys)
	}
	for i, k := range []string{"a", "b", "c"} {
		got := p.Keys[i]
		want := gs.Keys[k]
		want.WaitDuration, got.Stats.WaitDuration = 0, 0
		if got.Key != k || got.Stats != want {
			t.Errorf("key %d: %s %+v, want %s %+v", i, got.Key, got.Stats, k, want)
		}
		if len(got.Waiters) != want.Waiting || got.Waiters == nil {
			t.Errorf("key %s: waiters %v, want %d", k, got.Waiters, want.Waiting)
		}
	}
	// a's two waiters, in serving order: the first came first.
	if w := p.Keys[0].Waiters; len(w) == 2 && w[0] < w[1] {
		t.Errorf("a's waiters not in serving order: %v", w)
	}
}

func TestGroupWithoutGlobalMaxAndEscaping(t *testing.T) {
	g := newGroup(t, "shards", 0)
	const key = `"><script>alert(5)</script>`
	l, err := g.Acquire(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	h := debug.NewHandler()
	if err := h.Add("empty", debug.Group(newGroup(t, "empty", 1))); err != nil {
		t.Fatal(err)
	}
	if err := h.Add("shards", debug.Group(g)); err != nil {
		t.Fatal(err)
	}
	if err := h.Add("nil", debug.Group[string, *conn](nil)); err == nil {
		t.Error("Group(nil) accepted")
	}
	body := getPage(t, h, "/")
	if n := strings.Count(body, "<script"); n != 1 {
		t.Errorf("%d <script elements, want only the page's own", n)
	}
	sec := groupSection(t, body, "shards")
	if got := stats(sec); got["size"] != "no limit" || got["in-use"] != "1" {
		t.Errorf("stats %v, want size no limit", got)
	}
	if strings.Contains(sec, `class="usage"><span`) {
		t.Errorf("usage bar without a size:\n%s", sec)
	}
	keys, rows, tot := keyRows(t, sec)
	if len(keys) != 1 || keys[0] != "&#34;&gt;&lt;script&gt;alert(5)&lt;/script&gt;" || rows[0]["in-use"] != "1" || tot["size"] != "no limit" {
		t.Errorf("rows %q %v, total %v", keys, rows, tot)
	}
	if !strings.Contains(sec, `<td class="key">&#34;&gt;&lt;script&gt;alert(5)&lt;/script&gt;</td>`) {
		t.Errorf("key not shown as text:\n%s", sec)
	}
	if !strings.Contains(groupSection(t, body, "empty"), "No keys yet.") {
		t.Error("a group without keys does not say so")
	}
}
