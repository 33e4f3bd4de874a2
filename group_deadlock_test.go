package fairpool

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The cross-shard scenario: goroutines take three of five shards in a
// random order and, holding them, re-enter code that takes one of those
// shards again. With one lock per shard that deadlocks.
const (
	crossGoroutines = 100
	crossShards     = 5
	crossPerOp      = 3
	crossRounds     = 20
)

func shardName(i int) string { return "shard_" + strconv.Itoa(i) }

// TestGroupCrossShardWithoutDeadlock runs the cross-shard scenario on a
// Group with PerKeyMax 1 and GlobalMax 3: every other round takes a random
// permutation of three shards with WithAll and re-enters With on one it
// holds; the rounds between take a single shard, so that GlobalMax binds
// too. All goroutines must finish, none may time out, and after every step
// the per-key and global limits hold, as the Group counts them and as the
// callers see them (no shard held twice, never more than GlobalMax held).
func TestGroupCrossShardWithoutDeadlock(t *testing.T) {
	const perKey, global = 1, 3
	g, f := newTestGroup(t, GroupConfig[string, *keyConn]{PerKeyMax: perKey, GlobalMax: global, AcquireTimeout: time.Minute})
	var held [crossShards]atomic.Int64
	var heldAll atomic.Int64
	var globalBound atomic.Bool
	take := func(i int) {
		if n := held[i].Add(1); n > perKey {
			t.Errorf("%s held %d times at once", shardName(i), n)
		}
		if n := heldAll.Add(1); n > global {
			t.Errorf("%d shards held at once, GlobalMax %d", n, global)
		}
	}
	drop := func(i int) {
		held[i].Add(-1)
		heldAll.Add(-1)
	}
	var wg sync.WaitGroup
	for w := range crossGoroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 0x5eed002))
			for i := range crossRounds {
				id := int64(w)<<32 | int64(i) + 1
				var err error
				if i%2 == 0 {
					err = crossShardWithAll(t, g, r, id, take, drop)
				} else {
					k := r.IntN(crossShards)
					err = g.With(bg(), shardName(k), func(_ context.Context, c *keyConn) error {
						take(k)
						c.use(t, id)
						runtime.Gosched()
						c.done(id)
						drop(k)
						return nil
					})
				}
				if err != nil {
					t.Errorf("worker %d round %d: %v", w, i, err)
					return
				}
				if err := g.checkInvariants(); err != nil {
					t.Errorf("worker %d round %d: %v", w, i, err)
					return
				}
				g.mu.Lock()
				if g.globalQ.len > 0 {
					globalBound.Store(true)
				}
				g.mu.Unlock()
			}
		})
	}
	if !waitBounded(&wg, 2*time.Minute) {
		t.Fatalf("the cross-shard scenario on a Group is stuck: %+v", g.Stats())
	}
	s := g.Stats()
	const want = crossGoroutines * crossRounds / 2 * (crossPerOp + 1)
	if s.Total.Acquires != want || s.Total.Timeouts != 0 || s.Total.InUse != 0 || s.Total.Waiting != 0 {
		t.Errorf("acquires %d (want %d), timeouts %d, in use %d, waiting %d", s.Total.Acquires, want, s.Total.Timeouts, s.Total.InUse, s.Total.Waiting)
	}
	if !globalBound.Load() {
		t.Error("nobody ever waited for GlobalMax: the test did not test the global limit")
	}
	if c := f.counts(); int64(c.totalOpens) != s.Total.Opens || int64(c.closes) != s.Evictions || s.Evictions != s.Total.ClosedEvicted {
		t.Errorf("factory opens %d closes %d; stats opens %d evictions %d", c.totalOpens, c.closes, s.Total.Opens, s.Evictions)
	}
	t.Logf("%d acquires, %d waits, %d opens, %d evictions, p99 wait <= %v", s.Total.Acquires, s.Total.Waits, s.Total.Opens, s.Evictions, s.Total.WaitHistogram.Quantile(0.99))
}

func crossShardWithAll(t *testing.T, g *testGroup, r *rand.Rand, id int64, take, drop func(int)) error {
	perm := r.Perm(crossShards)[:crossPerOp]
	keys := make([]string, len(perm))
	for j, k := range perm {
		keys[j] = shardName(k)
	}
	again := r.IntN(crossPerOp)
	return g.WithAll(bg(), keys, func(ctx context.Context, conns []*keyConn) error {
		for j, c := range conns {
			if c.key != keys[j] {
				t.Errorf("conns[%d] is %q, want %q", j, c.key, keys[j])
			}
			take(perm[j])
			c.use(t, id)
		}
		// The re-entry that deadlocks one lock per shard: code holding the shards
		// takes one of them again.
		err := g.With(ctx, keys[again], func(_ context.Context, c *keyConn) error {
			if c != conns[again] {
				t.Errorf("re-entry on %s got another connection", keys[again])
			}
			runtime.Gosched()
			return nil
		})
		for j, c := range conns {
			c.done(id)
			drop(perm[j])
		}
		return err
	})
}

// TestNaiveShardMutexesDeadlock runs the same scenario on the naive
// design: one mutex per shard, locked in the random order asked and
// locked again on re-entry. Every lock is a wait bounded by a minute; in a
// synctest bubble fake time jumps that minute as soon as every goroutine
// is stuck, so the deadlock shows at once and the test ends cleanly.
func TestNaiveShardMutexesDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mus [crossShards]chan struct{}
		for i := range mus {
			mus[i] = make(chan struct{}, 1)
		}
		lock := func(i int) bool {
			select {
			case mus[i] <- struct{}{}:
				return true
			case <-time.After(time.Minute):
				return false
			}
		}
		var stuckInOrder, stuckOnReentry atomic.Int64
		var wg sync.WaitGroup
		for w := range crossGoroutines {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(w), 0x5eed002))
				for range crossRounds {
					perm := r.Perm(crossShards)[:crossPerOp]
					var got []int
					for _, k := range perm {
						if !lock(k) {
							break
						}
						got = append(got, k)
					}
					ok := len(got) == len(perm)
					if !ok {
						stuckInOrder.Add(1)
					} else if k := perm[r.IntN(crossPerOp)]; lock(k) {
						<-mus[k]
					} else {
						stuckOnReentry.Add(1)
						ok = false
					}
					for _, k := range got {
						<-mus[k]
					}
					if !ok {
						return
					}
				}
			})
		}
		wg.Wait()
		t.Logf("%d goroutines stuck waiting for shards held by others (lock order), %d stuck waiting for themselves (re-entry)", stuckInOrder.Load(), stuckOnReentry.Load())
		if stuckInOrder.Load()+stuckOnReentry.Load() == 0 {
			t.Fatal("naive per-shard mutexes did not deadlock")
		}
		// Which of the two bites first is chance; re-entry alone always
		// does: a goroutine that holds shard 0 and locks it again waits
		// for itself.
		if lock(0) {
			if lock(0) {
				t.Error("re-entry on a held mutex did not deadlock")
				<-mus[0]
			}
			<-mus[0]
		}
	})
}
