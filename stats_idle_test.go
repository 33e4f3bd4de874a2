package fairpool

import "testing"

// TestStatsReportIdleSettings: Stats carries MinIdle and MaxIdle as
// applied, MaxIdle 0 becoming MaxSize (PerKeyMax for a Group's key), so
// that metrics can report the idle bounds; a Group's Total has none.
// (A Group and a Pool in one test would see each other's goroutines at
// cleanup.)
func TestStatsReportIdleSettings(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 4, MinIdle: 1})
	if s := p.Stats(); s.MinIdle != 1 || s.MaxIdle != 4 {
		t.Errorf("Pool: MinIdle %d, MaxIdle %d; want 1 and 4 (MaxIdle 0 means MaxSize)", s.MinIdle, s.MaxIdle)
	}
}

func TestGroupStatsReportIdleSettings(t *testing.T) {
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 3, MaxIdle: 2})
	l, err := g.Acquire(bg(), "a")
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	s := g.Stats()
	if k := s.Keys["a"]; k.MinIdle != 0 || k.MaxIdle != 2 {
		t.Errorf("Group key: MinIdle %d, MaxIdle %d; want 0 and 2", k.MinIdle, k.MaxIdle)
	}
	if k := s.Keys["a"]; k.EffectiveSize != 3 {
		t.Errorf("Group key: EffectiveSize %d; want PerKeyMax (3): a Group holds no slot back", k.EffectiveSize)
	}
	if s.Total.MinIdle != 0 || s.Total.MaxIdle != 0 {
		t.Errorf("Group Total: MinIdle %d, MaxIdle %d; want none", s.Total.MinIdle, s.Total.MaxIdle)
	}
}

// TestClosedByReasonNamesEachCounter: every Closed* counter comes out once,
// under its own label, in the documented order.
func TestClosedByReasonNamesEachCounter(t *testing.T) {
	s := Stats{ClosedLifetime: 1, ClosedIdleTime: 2, ClosedCheck: 3, ClosedReset: 4, ClosedDiscard: 5,
		ClosedOverIdle: 6, ClosedByClose: 7, ClosedEvicted: 8, ClosedReclaim: 9}
	want := []string{"lifetime", "idle_time", "check_failed", "reset_failed", "discarded", "over_max_idle", "pool_closed", "evicted", "reclaimed"}
	i := 0
	for reason, n := range s.ClosedByReason() {
		if i >= len(want) || reason != want[i] || n != int64(i+1) {
			t.Errorf("reason %d: %q = %d; want %q = %d", i, reason, n, want[min(i, len(want)-1)], i+1)
		}
		i++
	}
	if i != len(want) {
		t.Errorf("%d reasons, want %d", i, len(want))
	}
}
