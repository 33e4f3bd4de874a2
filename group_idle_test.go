package fairpool

import (
	"testing"
	"testing/synctest"
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
