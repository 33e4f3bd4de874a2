package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/fairpool/fairpool"
)

// The fairness experiment: workers goroutines share a pool
// of fairSize connections; each request acquires, holds the connection for
// fairHold, and releases. In a fair pool every request waits about
// (workers/fairSize)*fairHold.
const (
	fairWorkers  = 50
	fairSize     = 5
	fairHold     = time.Millisecond
	fairRequests = 20000
	fairTimeout  = 5 * time.Second
	fairIdeal    = fairWorkers / fairSize * fairHold // 10 ms
)

// acquireFunc gets a connection and returns the function that gives it back.
type acquireFunc func() (release func(), err error)

var fairPools = []struct {
	name string
	new  func(t *testing.T) acquireFunc
}{
	{"chan", func(t *testing.T) acquireFunc {
		ch := newChan(fairSize)
		return func() (func(), error) {
			ctx, cancel := context.WithTimeout(context.Background(), fairTimeout)
			defer cancel()
			select {
			case c := <-ch:
				return func() { ch <- c }, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}},
	{"fairpool", func(t *testing.T) acquireFunc {
		// fairpool's own AcquireTimeout, as an application would use it.
		p := newFairpool(t, fairSize, fairpool.Config[*conn]{AcquireTimeout: fairTimeout})
		ctx := context.Background()
		return func() (func(), error) {
			l, err := p.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return l.Release, nil
		}
	}},
	{"puddle", func(t *testing.T) acquireFunc {
		p := newPuddle(t, fairSize)
		return func() (func(), error) {
			ctx, cancel := context.WithTimeout(context.Background(), fairTimeout)
			defer cancel()
			r, err := p.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			return r.Release, nil
		}
	}},
	{"sql", func(t *testing.T) acquireFunc {
		db := newSQL(t, fairSize)
		return func() (func(), error) {
			ctx, cancel := context.WithTimeout(context.Background(), fairTimeout)
			defer cancel()
			c, err := db.Conn(ctx)
			if err != nil {
				return nil, err
			}
			return func() { c.Close() }, nil
		}
	}},
}

// fairResult is one pool's run: the wait of every request that got a
// connection, sorted, and how many gave up.
type fairResult struct {
	name     string
	waits    []time.Duration
	timeouts int
	errs     []error // other failures, at most a few kept
	elapsed  time.Duration
}

func (r *fairResult) pct(q float64) time.Duration {
	if len(r.waits) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.waits)))) - 1
	return r.waits[max(i, 0)]
}

func (r *fairResult) max() time.Duration {
	if len(r.waits) == 0 {
		return 0
	}
	return r.waits[len(r.waits)-1]
}

func runFairness(name string, acquire acquireFunc) *fairResult {
	perWorker := fairRequests / fairWorkers
	waits := make([][]time.Duration, fairWorkers)
	timeouts := make([]int, fairWorkers)
	errs := make([][]error, fairWorkers)
	var start, wg sync.WaitGroup
	start.Add(1)
	for w := range fairWorkers {
		waits[w] = make([]time.Duration, 0, perWorker)
		wg.Go(func() {
			start.Wait()
			for range perWorker {
				t0 := time.Now()
				release, err := acquire()
				d := time.Since(t0)
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, fairpool.ErrTimeout) {
						timeouts[w]++
					} else if len(errs[w]) < 3 {
						errs[w] = append(errs[w], err)
					}
					continue
				}
				waits[w] = append(waits[w], d)
				time.Sleep(fairHold)
				release()
			}
		})
	}
	t0 := time.Now()
	start.Done()
	wg.Wait()
	r := &fairResult{name: name, elapsed: time.Since(t0)}
	for w := range fairWorkers {
		r.waits = append(r.waits, waits[w]...)
		r.timeouts += timeouts[w]
		r.errs = append(r.errs, errs[w]...)
	}
	slices.Sort(r.waits)
	return r
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// TestFairnessRun is the fairness experiment. It takes about 20 s, so it
// runs only with FAIRPOOL_FAIRNESS=1.
func TestFairnessRun(t *testing.T) {
	if os.Getenv("FAIRPOOL_FAIRNESS") != "1" {
		t.Skip("set FAIRPOOL_FAIRNESS=1 to run the fairness experiment (~20 s)")
	}
	results := map[string]*fairResult{}
	var order []string
	for _, fp := range fairPools {
		runtime.GC()
		r := runFairness(fp.name, fp.new(t))
		results[fp.name] = r
		order = append(order, fp.name)
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "%d workers, pool of %d, hold %v, %d requests, acquire timeout %v, GOMAXPROCS %d; ideal wait (N/S)*h = %v\n",
		fairWorkers, fairSize, fairHold, fairRequests, fairTimeout, runtime.GOMAXPROCS(0), fairIdeal)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pool\tp1\tp50\tp90\tp99\tp99.9\tmax\ttimeouts\terrors\trun\t")
	for _, name := range order {
		r := results[name]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f s\t\n", name,
			ms(r.pct(0.01)), ms(r.pct(0.50)), ms(r.pct(0.90)), ms(r.pct(0.99)), ms(r.pct(0.999)), ms(r.max()),
			r.timeouts, len(r.errs), r.elapsed.Seconds())
	}
	fmt.Fprintf(tw, "ideal\t%s\t%s\t%s\t%s\t%s\t%s\t\t\t\t\n", ms(fairIdeal), ms(fairIdeal), ms(fairIdeal), ms(fairIdeal), ms(fairIdeal), ms(fairIdeal))
	tw.Flush()

	fp, ch := results["fairpool"], results["chan"]
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	fmt.Fprintf(&sb, "fairpool p99.9: %.2fx ideal, %.2fx chan; max: %.2fx ideal, %.2fx chan\n",
		ratio(fp.pct(0.999), fairIdeal), ratio(fp.pct(0.999), ch.pct(0.999)),
		ratio(fp.max(), fairIdeal), ratio(fp.max(), ch.max()))
	t.Log("\n" + sb.String())

	for _, name := range order {
		for _, err := range results[name].errs {
			t.Logf("%s: acquire error: %v", name, err)
		}
	}

	// The fairness bar: within 1.2x (p99.9) and 1.5x (max) of the
	// ideal, or, on a loaded machine where even the channel overshoots,
	// within 1.2x of the channel's own curve in the same run.
	if p, c := fp.pct(0.999), ch.pct(0.999); ratio(p, fairIdeal) > 1.2 && ratio(p, c) > 1.2 {
		t.Errorf("fairpool p99.9 wait %v > 1.2x ideal %v and > 1.2x chan's %v", p, fairIdeal, c)
	}
	if m, c := fp.max(), ch.max(); ratio(m, fairIdeal) > 1.5 && ratio(m, c) > 1.2 {
		t.Errorf("fairpool max wait %v > 1.5x ideal %v and > 1.2x chan's %v", m, fairIdeal, c)
	}
	if fp.timeouts != 0 || len(fp.errs) != 0 {
		t.Errorf("fairpool: %d timeouts, %d other errors; want none", fp.timeouts, len(fp.errs))
	}
	if n := len(fp.waits) + fp.timeouts; n != fairRequests {
		t.Errorf("fairpool: %d requests accounted for, want %d", n, fairRequests)
	}
}
