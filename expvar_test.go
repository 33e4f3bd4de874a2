package fairpool

import (
	"encoding/json"
	"expvar"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

var expvarRuns atomic.Int64

func TestVarPublishesStatsUnderDebugVars(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 3, Name: "expvar"})
	// expvar names are process-wide and final: one per run of the test.
	name := fmt.Sprintf("fairpool_test_pool_%d", expvarRuns.Add(1))
	expvar.Publish(name, p.Var())
	l, _ := p.Acquire(bg())
	l2, _ := p.Acquire(bg())
	l2.Release()

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
	var s Stats
	if err := json.Unmarshal(vars[name], &s); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if s.MaxSize != 3 || s.InUse != 1 || s.Idle != 1 || s.Acquires != 2 || s.WaitHistogram.Count != 2 {
		t.Errorf("published %+v", s)
	}
	l.Release()
}
