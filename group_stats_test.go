package fairpool

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// sumKeys adds up the keys' figures: every counter, the wait histogram,
// and the connection gauges. MaxSize and Waiting differ in meaning between
// a key and the group, and are left zero.
func sumKeys(keys map[string]Stats) Stats {
	var sum Stats
	sv := reflect.ValueOf(&sum).Elem()
	for _, st := range keys {
		v := reflect.ValueOf(st)
		for i := range v.NumField() {
			switch name := v.Type().Field(i).Name; {
			case name == "MaxSize" || name == "Waiting":
			case name == "WaitHistogram":
				for j, n := range st.WaitHistogram.Counts {
					sum.WaitHistogram.Counts[j] += n
				}
				sum.WaitHistogram.Count += st.WaitHistogram.Count
			default:
				f := sv.Field(i)
				f.SetInt(f.Int() + v.Field(i).Int())
			}
		}
	}
	return sum
}

// TestGroupStatsTotalIsTheSumOfTheKeys: Total, kept as running totals,
// says what the keys' figures add up to, after acquires, waits, timeouts,
// cancels, failed opens, discards, failed checks and evictions; and once
// a key is dropped its counters stay in Total.
func TestGroupStatsTotalIsTheSumOfTheKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var bad sync.Map
		g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 2, GlobalMax: 3, AcquireTimeout: time.Second, CheckAfter: time.Second, KeyIdleTime: 10 * time.Second,
			Check: func(_ context.Context, c *keyConn) error {
				if _, ok := bad.Load(c); ok {
					return errors.New("ping: broken pipe")
				}
				return nil
			}})
		l1, _ := g.Acquire(bg(), "k1")
		l2, _ := g.Acquire(bg(), "k1")
		l3, _ := g.Acquire(bg(), "k3") // GlobalMax reached
		go func() {                    // waits for a place on k1, gets it, and holds it for 2s
			l, err := g.Acquire(bg(), "k1")
			if err != nil {
				t.Error(err)
				return
			}
			time.Sleep(2 * time.Second)
			l.Release()
		}()
		synctest.Wait()
		go func() { // waits for a place on k1 and times out
			if _, err := g.Acquire(bg(), "k1"); !errors.Is(err, ErrTimeout) {
				t.Errorf("k1: %v", err)
			}
		}()
		ctx, cancel := context.WithTimeout(bg(), 10*time.Millisecond)
		defer cancel()
		go func() { // waits for GlobalMax until its context ends
			if _, err := g.Acquire(ctx, "k2"); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("k2: %v", err)
			}
		}()
		synctest.Wait()
		if s := g.Stats(); s.WaitingForKey != 2 || s.WaitingForGlobal != 1 || s.WaitingForConn != 0 || s.Total.Waiting != 3 {
			t.Errorf("waiting: for a key %d, for global %d, for a connection %d, total %d", s.WaitingForKey, s.WaitingForGlobal, s.WaitingForConn, s.Total.Waiting)
		}
		time.Sleep(20 * time.Millisecond)
		l2.Release() // to the first k1 waiter
		time.Sleep(3 * time.Second)
		l3.Discard()
		l1.Release()
		l4, _ := g.Acquire(bg(), "k4")
		l5, _ := g.Acquire(bg(), "k5") // evicts an idle k1
		ctx, cancel = context.WithTimeout(bg(), 10*time.Millisecond)
		defer cancel()
		if _, err := g.AcquireAll(ctx, "k1", "k6"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("AcquireAll = %v", err)
		}
		l4.Release()
		l5.Release()
		f.setFail("k6", errOpen)
		if _, err := g.Acquire(bg(), "k6"); !errors.Is(err, errOpen) {
			t.Errorf("k6: %v", err)
		}
		l, _ := g.Acquire(bg(), "k1")
		bad.Store(l.Value(), true)
		l.Release()
		time.Sleep(2 * time.Second)
		if l, err := g.Acquire(bg(), "k1"); err == nil {
			l.Release()
		}
		synctest.Wait()
		checkGroupInv(t, g)

		s := g.Stats()
		sum, tot := sumKeys(s.Keys), s.Total
		tot.MaxSize, tot.EffectiveSize, tot.Waiting = 0, 0, 0
		sum.EffectiveSize = 0
		sum.MinIdle, sum.MaxIdle = 0, 0 // settings, not figures that add up
		if sum != tot {
			t.Errorf("keys sum to\n%+v\nTotal says\n%+v", sum, tot)
		}
		for name, n := range map[string]int64{"acquires": tot.Acquires, "waits": tot.Waits, "timeouts": tot.Timeouts, "cancels": tot.Cancels,
			"open errors": tot.OpenErrors, "discards": tot.ClosedDiscard, "failed checks": tot.ClosedCheck, "evictions": tot.ClosedEvicted, "wait time": int64(tot.WaitDuration)} {
			if n == 0 {
				t.Errorf("no %s: the test does not test what it claims", name)
			}
		}

		// Dropped keys leave the walk, not Total.
		time.Sleep(time.Minute)
		synctest.Wait()
		after := g.Stats()
		if len(after.Keys) != 0 || after.KeyPoolsDropped == 0 {
			t.Fatalf("%d keys left, %d dropped", len(after.Keys), after.KeyPoolsDropped)
		}
		tot2 := after.Total
		tot2.MaxSize, tot2.EffectiveSize, tot2.Waiting = 0, 0, 0
		tot2.ClosedIdleTime -= int64(s.Total.Idle) // the idle connections of the dropped keys
		tot2.Idle, tot2.Open = s.Total.Idle, s.Total.Open
		if tot2 != tot {
			t.Errorf("after the keys were dropped Total says\n%+v\nwant\n%+v", tot2, tot)
		}
	})
}

// TestGroupStatsReleasesTheLockBetweenChunks: Stats over 10,000 keys does
// not hold the group's lock for the whole walk: between chunks, an
// Acquire and Release of another key run to completion.
func TestGroupStatsReleasesTheLockBetweenChunks(t *testing.T) {
	const keys = 10000
	g, _ := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: 1, KeyIdleTime: -1})
	for i := range keys {
		idleConn(t, g, fmt.Sprint("k", i), 0)
	}
	var pauses, served int
	g.statsHook = func() {
		pauses++
		if !g.mu.TryLock() {
			t.Fatal("Stats holds the lock between chunks")
		}
		g.mu.Unlock()
		l, err := g.Acquire(bg(), "other")
		if err != nil {
			t.Error(err)
			return
		}
		l.Release()
		served++
	}
	s := g.Stats()
	g.statsHook = nil
	if pauses < keys/statsChunk || served != pauses {
		t.Errorf("%d pauses in the walk, %d acquires served during them", pauses, served)
	}
	if len(s.Keys) != keys || s.Total.Idle != keys || s.KeyPools != keys {
		t.Errorf("%d keys, %d idle, %d pools", len(s.Keys), s.Total.Idle, s.KeyPools)
	}
	if other := g.Stats().Keys["other"]; other.Acquires != int64(served) {
		t.Errorf("other: %d acquires, want %d", other.Acquires, served)
	}
}

// BenchmarkGroupStatsWithManyKeys times Stats over 10,000 keys while
// another goroutine acquires and releases an unrelated key every 20µs or
// so, and reports those acquires' 99th percentile and worst: what Stats
// costs everyone else. The worst includes the scheduler's and the
// collector's delays, not only the lock's.
func BenchmarkGroupStatsWithManyKeys(b *testing.B) {
	const keys = 10000
	g, _ := newTestGroup(b, GroupConfig[string, *keyConn]{PerKeyMax: 1, KeyIdleTime: -1})
	for i := range keys {
		l, err := g.Acquire(bg(), fmt.Sprint("k", i))
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
	var stop atomic.Bool
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			time.Sleep(20 * time.Microsecond)
			start := time.Now()
			l, err := g.Acquire(bg(), "other")
			if err != nil {
				b.Error(err)
				return
			}
			l.Release()
			lat = append(lat, time.Since(start))
		}
	}()
	for b.Loop() {
		g.Stats()
	}
	stop.Store(true)
	<-done
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-acquire-µs")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "worst-acquire-µs")
	}
}
