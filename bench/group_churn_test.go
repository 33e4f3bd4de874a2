package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
)

// The churn experiment: churnKeys keys, churnPerKey goroutines on each,
// every one acquiring, holding for churnHold and releasing, in a Group of
// PerKeyMax churnPerKeyMax under a GlobalMax that binds (churnGlobal <
// keys x PerKeyMax), beside one Pool of churnGlobal serving the same
// goroutines. Open costs churnOpen, as a real connect would: each
// connection the Group closes to open one for another key costs it that
// much of its budget.
const (
	churnKeys      = 3
	churnPerKey    = 3
	churnPerKeyMax = 2
	churnGlobal    = 3
	churnHold      = time.Millisecond
	churnOpen      = 2 * time.Millisecond
	churnRun       = 2 * time.Second
)

// churnResult is what one side of the experiment measured.
type churnResult struct {
	uses    [churnKeys]int64
	opens   int64
	maxOpen int64 // connections at once, counting those opening and closing
	waits   []time.Duration
	elapsed time.Duration
	errs    int64
}

func (r *churnResult) total() int64 {
	var n int64
	for _, u := range r.uses {
		n += u
	}
	return n
}

func (r *churnResult) throughput() float64 { return float64(r.total()) / r.elapsed.Seconds() }

func (r *churnResult) p99() time.Duration {
	if len(r.waits) == 0 {
		return 0
	}
	return r.waits[int(math.Ceil(0.99*float64(len(r.waits))))-1]
}

// churnConns counts connections from the start of Open to the end of
// Close, an oracle independent of the pools' own counters.
type churnConns struct {
	live, most, opens atomic.Int64
}

func (c *churnConns) open() (*conn, error) {
	n := c.live.Add(1)
	for m := c.most.Load(); n > m && !c.most.CompareAndSwap(m, n); m = c.most.Load() {
	}
	time.Sleep(churnOpen)
	return &conn{id: int(c.opens.Add(1))}, nil
}

func (c *churnConns) close(*conn) error {
	c.live.Add(-1)
	return nil
}

// runChurn runs the workload for churnRun: acquire(k) takes a connection
// for key k and returns its release.
func runChurn(t testing.TB, acquire func(k int) (func(), error)) *churnResult {
	r := &churnResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(churnRun)
	for k := range churnKeys {
		for range churnPerKey {
			wg.Go(func() {
				var waits []time.Duration
				var uses int64
				for time.Now().Before(stop) {
					t0 := time.Now()
					release, err := acquire(k)
					if err != nil {
						t.Error(err)
						mu.Lock()
						r.errs++
						mu.Unlock()
						return
					}
					waits = append(waits, time.Since(t0))
					time.Sleep(churnHold)
					release()
					uses++
				}
				mu.Lock()
				r.uses[k] += uses
				r.waits = append(r.waits, waits...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	slices.Sort(r.waits)
	return r
}

func churnGroup(t testing.TB) *churnResult {
	var cc churnConns
	g, err := fairpool.NewGroup(fairpool.GroupConfig[int, *conn]{
		Open:           func(context.Context, int) (*conn, error) { return cc.open() },
		Close:          cc.close,
		PerKeyMax:      churnPerKeyMax,
		GlobalMax:      churnGlobal,
		AcquireTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := runChurn(t, func(k int) (func(), error) {
		l, err := g.Acquire(ctx, k)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	})
	if err := g.Close(ctx); err != nil {
		t.Error(err)
	}
	s := g.Stats()
	r.opens = s.Total.Opens
	r.maxOpen = cc.most.Load()
	if s.Total.Acquires != r.total() {
		t.Errorf("group: %d acquires counted, %d uses", s.Total.Acquires, r.total())
	}
	t.Logf("group: %d evictions", s.Evictions)
	return r
}

func churnPool(t testing.TB) *churnResult {
	var cc churnConns
	p, err := fairpool.New(fairpool.Config[*conn]{
		Open:           func(context.Context) (*conn, error) { return cc.open() },
		Close:          cc.close,
		MaxSize:        churnGlobal,
		AcquireTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := runChurn(t, func(int) (func(), error) {
		l, err := p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	})
	if err := p.Close(ctx); err != nil {
		t.Error(err)
	}
	r.opens = p.Stats().Opens
	r.maxOpen = cc.most.Load()
	return r
}

// TestGroupChurn runs the churn experiment, Group then Pool in the same
// run, and checks the Group against the Pool: opens at most 5% of uses,
// throughput at least 80% of the Pool's, every key 25-42% of the uses, p99
// wait within 3x the Pool's, and never more than GlobalMax connections.
// It takes about 4 s, so it runs only with FAIRPOOL_CHURN=1; -count=N
// repeats it.
func TestGroupChurn(t *testing.T) {
	if os.Getenv("FAIRPOOL_CHURN") != "1" {
		t.Skip("set FAIRPOOL_CHURN=1 to run the churn experiment (~4 s per run)")
	}
	runtime.GC()
	gr := churnGroup(t)
	runtime.GC()
	pr := churnPool(t)

	line := func(name string, r *churnResult) string {
		shares := ""
		for k, u := range r.uses {
			shares += fmt.Sprintf(" %d:%.1f%%", k, 100*float64(u)/float64(r.total()))
		}
		return fmt.Sprintf("%-5s uses %d, opens %d (%.2f%% of uses), %.0f uses/s, p50 wait %v, p99 wait %v, max open %d, shares%s",
			name, r.total(), r.opens, 100*float64(r.opens)/float64(r.total()), r.throughput(),
			r.waits[len(r.waits)/2].Round(time.Microsecond), r.p99().Round(time.Microsecond), r.maxOpen, shares)
	}
	t.Logf("%d keys x %d goroutines, PerKeyMax %d, GlobalMax %d, hold %v, open %v, GOMAXPROCS %d, %v each",
		churnKeys, churnPerKey, churnPerKeyMax, churnGlobal, churnHold, churnOpen, runtime.GOMAXPROCS(0), churnRun)
	t.Log(line("group", gr))
	t.Log(line("pool", pr))
	t.Logf("group/pool: throughput %.2f, p99 wait %.2f", gr.throughput()/pr.throughput(), float64(gr.p99())/float64(pr.p99()))

	if gr.errs > 0 || pr.errs > 0 {
		t.Fatalf("acquire errors: group %d, pool %d", gr.errs, pr.errs)
	}
	if max := gr.total() / 20; gr.opens > max {
		t.Errorf("group opened %d connections for %d uses, want at most 5%% (%d)", gr.opens, gr.total(), max)
	}
	if ratio := gr.throughput() / pr.throughput(); ratio < 0.8 {
		t.Errorf("group throughput %.0f/s is %.0f%% of the pool's %.0f/s, want at least 80%%", gr.throughput(), 100*ratio, pr.throughput())
	}
	for k, u := range gr.uses {
		if share := float64(u) / float64(gr.total()); share < 0.25 || share > 0.42 {
			t.Errorf("key %d got %.1f%% of the uses, want 25-42%%", k, 100*share)
		}
	}
	if gr.p99() > 3*pr.p99() {
		t.Errorf("group p99 wait %v, more than 3x the pool's %v", gr.p99(), pr.p99())
	}
	if gr.maxOpen > churnGlobal {
		t.Errorf("group had %d connections at once, GlobalMax %d", gr.maxOpen, churnGlobal)
	}
}
