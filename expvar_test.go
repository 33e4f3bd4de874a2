package fairpool

import (
	"encoding/json"
	"expvar"
	"net/http/httptest"
	"testing"
)

func TestVarPublishesStatsUnderDebugVars(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 3, Name: "expvar"})
	expvar.Publish("fairpool_test_pool", p.Var())
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
	var vars struct {
		Pool Stats `json:"fairpool_test_pool"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&vars); err != nil {
		t.Fatal(err)
	}
	s := vars.Pool
	if s.MaxSize != 3 || s.InUse != 1 || s.Idle != 1 || s.Acquires != 2 || s.WaitHistogram.Count != 2 {
		t.Errorf("published %+v", s)
	}
	l.Release()
}
