package fairpool

import (
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

// TestGroupMaxIdleClosesExtras: as TestMaxIdleClosesExtras, per key: each
// key keeps MaxIdle idle and closes the rest as they come back, counted
// in its ClosedOverIdle and in Total's; another key's idle do not count.
func TestGroupMaxIdleClosesExtras(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 4, MaxIdle: 1})
		var ls []*GroupLease[string, *keyConn]
		for _, key := range []string{"a", "a", "a", "a", "b", "b"} {
			l, err := g.Acquire(bg(), key)
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Release()
		}
		synctest.Wait() // the closes run on goroutines of their own
		checkGroupInv(t, g)
		for key, want := range map[string]int64{"a": 3, "b": 1} {
			st, _ := g.KeyStats(key)
			if st.Idle != 1 || st.Open != 1 || st.ClosedOverIdle != want {
				t.Errorf("key %s: %+v, want 1 idle, 1 open, %d closed over idle", key, st, want)
			}
		}
		if tot := g.Stats().Total; tot.ClosedOverIdle != 4 || tot.Idle != 2 {
			t.Errorf("Total %+v", tot)
		}
		if c := f.counts(); c.live["a"] != 1 || c.live["b"] != 1 {
			t.Errorf("live %v", c.live)
		}
	})
}

// TestGroupMinIdleKeptWarm: as TestMinIdleKeptWarm, per key: a key with a
// pool is kept at MinIdle idle beside its leases, and a key never asked
// for gets no pool and no connection.
func TestGroupMinIdleKeptWarm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 4, MinIdle: 2, KeyIdleTime: -1})
		synctest.Wait()
		if st := g.Stats(); st.KeyPools != 0 || st.Total.Open != 0 {
			t.Fatalf("before any acquire: %d key pools, %d open", st.KeyPools, st.Total.Open)
		}
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the hand-out kicked the sweeper
		checkGroupInv(t, g)
		if st, _ := g.KeyStats("a"); st.Idle != 2 || st.Open != 3 {
			t.Errorf("after one acquire: %+v", st)
		}
		l.Discard()
		synctest.Wait()
		if st, _ := g.KeyStats("a"); st.Idle != 2 || st.Open != 2 {
			t.Errorf("after discard: %+v", st)
		}
		if c := f.counts(); c.opens["a"] != 3 || c.totalOpens != 3 {
			t.Errorf("opens %v", c.opens)
		}
	})
}

// TestGroupMinIdleRespectsGlobalMax: warm connections take room under
// GlobalMax only while it is free, spread over the keys, and are evicted
// for a key that needs the room like any idle connection.
func TestGroupMinIdleRespectsGlobalMax(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, GlobalMax: 3, MinIdle: 2, KeyIdleTime: -1})
		for _, key := range []string{"a", "b"} {
			l, err := g.Acquire(bg(), key)
			if err != nil {
				t.Fatal(err)
			}
			synctest.Wait() // the key warms beside its lease, as far as GlobalMax allows
			l.Release()
			synctest.Wait()
		}
		checkGroupInv(t, g)
		st := g.Stats()
		if st.Total.Open != 3 || st.Total.Idle != 3 {
			t.Fatalf("warm: %+v, want GlobalMax 3 open, all idle", st.Total)
		}
		evicted := st.Evictions // a's third, for b
		// Three leases of c need every connection: the warm ones go.
		var ls []*GroupLease[string, *keyConn]
		for range 3 {
			l, err := g.Acquire(bg(), "c")
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, l)
		}
		synctest.Wait()
		checkGroupInv(t, g)
		if st := g.Stats(); st.Total.Open != 3 || st.Total.InUse != 3 || st.Evictions-evicted != 3 {
			t.Errorf("with c busy: %+v, %d evictions for c, want 3", st.Total, st.Evictions-evicted)
		}
		if c := f.counts(); c.total > 3 {
			t.Errorf("%d connections live", c.total)
		}
		for _, l := range ls {
			l.Release()
		}
	})
}

// TestGroupMinIdleOpenFailureIsLoggedNotFatal: as
// TestMinIdleOpenFailureIsLoggedNotFatal: a warm open that fails is
// logged and counted, and the sweeper tries again on its next round.
func TestGroupMinIdleOpenFailureIsLoggedNotFatal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, MinIdle: 1, KeyIdleTime: -1, Logger: slog.New(rec)})
		f.setFail("a", errOpen)
		if _, err := g.Acquire(bg(), "a"); !errors.Is(err, errOpen) {
			t.Fatalf("Acquire: %v, want errOpen", err)
		}
		time.Sleep(time.Minute) // the sweeper's round tries to warm a
		synctest.Wait()
		if st, _ := g.KeyStats("a"); st.OpenErrors != 2 || st.Open != 0 {
			t.Errorf("after a failed warm open: %+v", st)
		}
		if levels, _ := rec.find("fairpool: open failed"); len(levels) != 2 {
			t.Errorf("%d open failures logged, want 2", len(levels))
		}
		f.setFail("a", nil)
		time.Sleep(time.Minute)
		synctest.Wait()
		if st, _ := g.KeyStats("a"); st.Idle != 1 {
			t.Errorf("sweeper did not recover: %+v", st)
		}
	})
}

// TestGroupMinIdleLetsUnusedKeysGo: warm connections do not keep a key
// alive: an unused key's pool is dropped after KeyIdleTime as without
// MinIdle, and the sweeper does not make it again.
func TestGroupMinIdleLetsUnusedKeysGo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, MinIdle: 2, KeyIdleTime: time.Minute})
		l, err := g.Acquire(bg(), "a")
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
		synctest.Wait()
		if st, _ := g.KeyStats("a"); st.Idle != 2 {
			t.Fatalf("warm: %+v", st)
		}
		time.Sleep(3 * time.Minute)
		synctest.Wait()
		checkGroupInv(t, g)
		if st := g.Stats(); st.KeyPools != 0 || st.KeyPoolsDropped != 1 || st.Total.Open != 0 {
			t.Errorf("after KeyIdleTime: %d pools, %d dropped, %d open", st.KeyPools, st.KeyPoolsDropped, st.Total.Open)
		}
		if c := f.counts(); c.opens["a"] != 2 || c.total != 0 {
			t.Errorf("opens %v, %d live", c.opens, c.total)
		}
	})
}
