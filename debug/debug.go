// Package debug serves a live page that shows what fairpool pools are doing:
// per pool its size, connections in use, idle and opening, goroutines
// waiting, the counters, the wait histogram, who holds each connection out
// and since when, and how long each waiter has waited. A fairpool.Group
// shows its totals the same way and a row per key. The page refreshes
// itself; ?format=json serves the same data as JSON.
//
// Add takes every kind of pool the module has, as it is: a
// *fairpool.Pool[T], a *fairpool.Group[K, T], a *sqlpool.Pool and a
// *fairpgx.Pool, and any other type with the methods Source describes.
//
//	h := debug.NewHandler()
//	h.Add("orders", ordersPool)     // *fairpool.Pool[*Conn]
//	h.Add("tenants", tenantsGroup)  // *fairpool.Group[string, *Conn]
//	h.Add("app", appDB)             // *sqlpool.Pool
//	admin := http.NewServeMux()
//	admin.Handle("/debug/pools", h)
//	go http.ListenAndServe("127.0.0.1:6060", admin) // admin only: see below
//
// Holders are listed only for pools with TrackLeases (or LeakThreshold) in
// their Config: each with how long it has held its connection, the file
// and line that acquired it, and, on demand, the acquiring goroutine's
// stack.
//
// # Admin only
//
// Serve the handler on an admin-only listener (loopback, or behind the
// authentication of your other operator endpoints), never on the listener
// of your public routes, as with net/http/pprof. The page shows the
// program's call stacks, with source paths and function names, and its
// load.
//
// Everything that comes from the program (pool names, call sites, stacks)
// is escaped by html/template. The page runs one fixed script, the one
// that refreshes it, and its Content-Security-Policy allows no other.
//
// # JSON
//
// With ?format=json the handler answers, for pools sorted by name:
//
//	{
//	  "Time": "2025-11-23T13:30:00.123456789Z",
//	  "Pools": [{
//	    "Name": "orders",
//	    "Stats": {"MaxSize": 2, "InUse": 2, "Waiting": 3, ...},
//	    "Holders": [{"HeldFor": 1500000000, "Caller": "/src/app/orders.go:42", "Goroutine": 57, "Stack": "goroutine 57 [running]:\n..."}],
//	    "Waiters": [1200000000, 800000000, 5000000]
//	  }]
//	}
//
// Stats is fairpool.Stats as Pool.Var prints it, Holders are
// fairpool.Holder values oldest first, and Waiters how long each waiter
// has waited, in the order they will be served. Durations are in
// nanoseconds. Each pool's Stats, Holders and Waiters are read one after
// the other, so under load they can differ by a lease or a waiter that
// came or went in between.
//
// A group's entry has Stats = GroupSummary.Total (MaxSize is GlobalMax, 0
// for none), Holders and Waiters as Group.Holders and Group.Waiters list
// them (every request once, longest first), and two more fields:
//
//	"Group": {"KeyPools": 2, "KeyPoolsCreated": 2, "KeyPoolsDropped": 0,
//	  "WaitingForKey": 1, "WaitingForGlobal": 0, "WaitingForConn": 0, "Evictions": 0},
//	"Keys": [{"Key": "acme", "Stats": {"MaxSize": 5, ...}, "Waiters": [5000000]}, ...]
//
// Group holds GroupSummary's other figures; Keys is GroupSummary.Keys: one
// entry per key with a pool, in key order, each key formatted with %v,
// its Stats as in GroupStats.Keys and its Waiters as Group.KeyWaiters
// lists them (requests in the global line are listed under each of their
// keys).
//
// # Refresh
//
// The page fetches itself again every DefaultRefresh (2 s) and swaps in
// the new data, keeping open the stacks the reader opened. SetRefresh
// changes the interval for every request; ?refresh=500ms (any
// time.ParseDuration value, at least MinRefresh) or ?refresh=0 (off)
// changes it for one page. Without JavaScript a meta refresh reloads it.
package debug

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/fairpool/fairpool"
)

// Refresh limits.
const (
	DefaultRefresh = 2 * time.Second        // the page's refresh interval unless set
	MinRefresh     = 100 * time.Millisecond // shorter positive intervals are raised to it
)

// Source is what the handler shows: *fairpool.Pool[T],
// *fairpool.Group[K, T], *sqlpool.Pool and *fairpgx.Pool all are. Besides
// Holders and Waiters, a Source must have one of two methods for its
// figures, which Add checks:
//
//	Stats() fairpool.Stats           // a pool: *fairpool.Pool, *sqlpool.Pool, *fairpgx.Pool
//	Summary() fairpool.GroupSummary  // a group: *fairpool.Group, shown with a row per key
//
// They are not in the interface because a group's Stats returns a
// GroupStats of its key type, which no one interface can name for every
// key type; Summary is its non-generic form.
type Source interface {
	Holders() []fairpool.Holder
	Waiters() []time.Duration
}

// pool is a Source with a pool's figures.
type pool interface {
	Source
	Stats() fairpool.Stats
}

// group is a Source with a group's figures. A Source with both is shown as
// a group: it has more to show.
type group interface {
	Source
	Summary() fairpool.GroupSummary
}

// Handler is an http.Handler serving the debug page for any number of
// pools. Pools can be added and removed while it serves. It is safe for
// concurrent use.
type Handler struct {
	mu      sync.Mutex
	pools   map[string]Source
	refresh time.Duration
}

// NewHandler returns a handler with no pools that refreshes its page every
// DefaultRefresh.
func NewHandler() *Handler {
	return &Handler{pools: map[string]Source{}, refresh: DefaultRefresh}
}

// Add shows s under name. Names must be unique; s must not be nil, and
// must have Stats or Summary (see Source).
func (h *Handler) Add(name string, s Source) error {
	if v := reflect.ValueOf(s); s == nil || v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("debug: pool %q: nil Source", name)
	}
	_, isPool := s.(pool)
	_, isGroup := s.(group)
	if !isPool && !isGroup {
		return fmt.Errorf("debug: pool %q: a %T has neither Stats() fairpool.Stats nor Summary() fairpool.GroupSummary, so there are no figures to show", name, s)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.pools[name]; dup {
		return fmt.Errorf("debug: a pool named %q is already added", name)
	}
	h.pools[name] = s
	return nil
}

// Remove stops showing the pool added as name.
func (h *Handler) Remove(name string) {
	h.mu.Lock()
	delete(h.pools, name)
	h.mu.Unlock()
}

// SetRefresh sets how often the page refreshes itself; d <= 0 turns
// refreshing off, and positive values under MinRefresh are raised to it.
// A request's ?refresh= overrides it.
func (h *Handler) SetRefresh(d time.Duration) {
	h.mu.Lock()
	h.refresh = clampRefresh(d)
	h.mu.Unlock()
}

func clampRefresh(d time.Duration) time.Duration {
	switch {
	case d <= 0:
		return 0
	case d < MinRefresh:
		return MinRefresh
	}
	return d
}

// snapshot is the page's data, and the JSON it serves.
type snapshot struct {
	Time  time.Time
	Pools []poolSnapshot
}

type poolSnapshot struct {
	Name    string
	Stats   fairpool.Stats
	Holders []fairpool.Holder
	Waiters []time.Duration

	// A group's: nil and empty for a pool, and then left out of the JSON.
	Group *groupFigures         `json:",omitempty"`
	Keys  []fairpool.KeySummary `json:",omitempty"`
}

// snapshot reads every pool. Each Source takes its own lock; the handler's
// is held only to copy the list.
func (h *Handler) snapshot() snapshot {
	h.mu.Lock()
	names := make([]string, 0, len(h.pools))
	for name := range h.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	sources := make([]Source, len(names))
	for i, name := range names {
		sources[i] = h.pools[name]
	}
	h.mu.Unlock()

	s := snapshot{Time: time.Now(), Pools: make([]poolSnapshot, len(names))}
	for i, src := range sources {
		var p poolSnapshot
		if g, ok := src.(group); ok {
			p = groupSnapshot(names[i], g)
		} else {
			p = poolSnapshot{Name: names[i], Stats: src.(pool).Stats(), Holders: src.Holders(), Waiters: src.Waiters()}
		}
		if p.Holders == nil {
			p.Holders = []fairpool.Holder{}
		}
		if p.Waiters == nil {
			p.Waiters = []time.Duration{}
		}
		s.Pools[i] = p
	}
	return s
}

// ServeHTTP serves the page, or with ?format=json its data as JSON. It
// answers GET and HEAD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "debug: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	h.mu.Lock()
	refresh := h.refresh
	h.mu.Unlock()
	if v := q.Get("refresh"); v != "" {
		d, err := time.ParseDuration(v) // "0" parses as 0
		if err != nil || d < 0 {
			http.Error(w, "debug: refresh must be 0 (off) or a positive duration such as 2s or 500ms", http.StatusBadRequest)
			return
		}
		refresh = clampRefresh(d)
	}
	format := q.Get("format")
	if format != "" && format != "html" && format != "json" {
		http.Error(w, "debug: format must be html or json", http.StatusBadRequest)
		return
	}

	snap := h.snapshot()
	var buf bytes.Buffer
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if format == "json" {
		enc := json.NewEncoder(&buf) // escapes <, > and & as \u003c...
		enc.SetIndent("", "  ")
		if err := enc.Encode(snap); err != nil {
			http.Error(w, "debug: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "application/json; charset=utf-8")
	} else {
		if err := page.Execute(&buf, newPageData(snap, refresh)); err != nil {
			http.Error(w, "debug: "+err.Error(), http.StatusInternalServerError)
			return
		}
		hdr.Set("Content-Type", "text/html; charset=utf-8")
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("Referrer-Policy", "no-referrer")
	}
	w.Write(buf.Bytes())
}
