package fairpool

import (
	"context"
	"encoding/json"
	"expvar"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// The Var of a Pool and of a Group, as /debug/vars serves it.

var expvarRuns atomic.Int64

// publishAndRead publishes v under a name of its own (kind says whose),
// reads it back through expvar's handler, and decodes it into into.
func publishAndRead(t *testing.T, kind string, v expvar.Var, into any) {
	t.Helper()
	// expvar names are process-wide and final: one per run of a test.
	name := fmt.Sprintf("fairpool_test_%s_%d", kind, expvarRuns.Add(1))
	expvar.Publish(name, v)
	srv := httptest.NewServer(expvar.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var vars map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(vars[name], into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestVarPublishesStatsUnderDebugVars(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 3, Name: "expvar"})
	l, _ := p.Acquire(bg())
	l2, _ := p.Acquire(bg())
	l2.Release()
	var s Stats
	publishAndRead(t, "pool", p.Var(), &s)
	if s.MaxSize != 3 || s.InUse != 1 || s.Idle != 1 || s.Acquires != 2 || s.WaitHistogram.Count != 2 {
		t.Errorf("published %+v", s)
	}
	l.Release()
}

// TestGroupVarPublishesStatsUnderDebugVars: as Pool's, with GroupStats,
// keys named as strings.
func TestGroupVarPublishesStatsUnderDebugVars(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 5, Name: "expvar"})
	l, _ := g.Acquire(bg(), "a")
	l2, _ := g.Acquire(bg(), "a")
	l2.Release()
	lb, _ := g.Acquire(bg(), "b")
	defer lb.Release()
	var gs GroupStats[string]
	publishAndRead(t, "group", g.Var(), &gs)
	if s := gs.Total; s.MaxSize != 5 || s.InUse != 2 || s.Idle != 1 || s.Acquires != 3 || s.WaitHistogram.Count != 3 {
		t.Errorf("published total %+v", s)
	}
	if a := gs.Keys["a"]; gs.KeyPools != 2 || len(gs.Keys) != 2 || a.MaxSize != 3 || a.InUse != 1 || a.Idle != 1 || gs.Keys["b"].InUse != 1 {
		t.Errorf("published %+v", gs)
	}
	l.Release()
}

// TestGroupVarNamesAnyKeyType: keys that encoding/json cannot name on its
// own (floats) are named as %v prints them.
func TestGroupVarNamesAnyKeyType(t *testing.T) {
	g, err := NewGroup(GroupConfig[float64, int]{PerKeyMax: 1,
		Open: func(context.Context, float64) (int, error) { return 1, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(bg())
	l, _ := g.Acquire(bg(), 1.5)
	defer l.Release()
	v := g.Var().String()
	var got struct {
		Keys     map[string]Stats
		KeyPools int
	}
	if err := json.Unmarshal([]byte(v), &got); err != nil {
		t.Fatalf("%v in %s", err, v)
	}
	if got.KeyPools != 1 || got.Keys["1.5"].InUse != 1 {
		t.Errorf("Var() = %s", v)
	}
}
