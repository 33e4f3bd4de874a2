package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/fairpool/fairpool"
)

// The overload measurement: requests arrive
// open-loop (Poisson) at a multiple of the pool's capacity, measured first
// in the same run; each has a deadline of ovDeadline from its arrival for
// its wait and its hold. The deadline-aware default must keep serving
// ~the capacity in time at 2x and 3x and fail the rest fast; at 0.7x
// nothing may be shed or late. fairpool sim overload runs the same
// experiment with plots and peers.
//
// It runs in real time for about 20 s and needs the machine to itself, so
// it only runs with FAIRPOOL_OVERLOAD=1:
//
//	cd bench && FAIRPOOL_OVERLOAD=1 go test -run Overload -v
const (
	ovSize     = 4
	ovHold     = 2 * time.Millisecond
	ovDeadline = 100 * time.Millisecond
	ovStep     = 2 * time.Second
	ovCapacity = time.Second
)

// ovVariant is a configuration of fairpool under test.
type ovVariant struct {
	name   string
	order  fairpool.WaitOrder
	ignore bool
}

var ovVariants = []ovVariant{
	{"default (deadline-aware FIFO)", fairpool.FIFO, false},
	{"IgnoreDeadlines (plain FIFO)", fairpool.FIFO, true},
	{"Adaptive", fairpool.Adaptive, false},
}

// ovResult is one variant at one load.
type ovResult struct {
	inTime, late, failed, shed int
	goodputPct, failP50Ms      float64
}

func TestOverload(t *testing.T) {
	if os.Getenv("FAIRPOOL_OVERLOAD") != "1" {
		t.Skip("runs for about 20 s in real time: set FAIRPOOL_OVERLOAD=1")
	}
	loads := []float64{0.7, 2, 3}
	results := map[string][]ovResult{}
	capacity := 0.0
	for _, v := range ovVariants {
		p := ovOpen(t, v)
		if v == ovVariants[0] {
			// One capacity for the run, the default's: every variant is
			// offered the same arrivals and judged against the same figure.
			capacity = ovMeasureCapacity(p)
			t.Logf("capacity: %.0f requests/s (%d connections, %v hold)", capacity, ovSize, ovHold)
		}
		for i, load := range loads {
			rng := rand.New(rand.NewPCG(1, uint64(i)))
			results[v.name] = append(results[v.name], ovRun(p, load*capacity, capacity, rng))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.Close(ctx); err != nil {
			t.Errorf("%s: close: %v", v.name, err)
		}
		cancel()
	}

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "variant\tload\tin time\tlate\tfailed\tshed\tgoodput\tfail p50\t")
	for _, v := range ovVariants {
		for i, r := range results[v.name] {
			fmt.Fprintf(tw, "%s\t%gx\t%d\t%d\t%d\t%d\t%.1f%%\t%.2fms\t\n", v.name, loads[i],
				r.inTime, r.late, r.failed, r.shed, r.goodputPct, r.failP50Ms)
		}
	}
	tw.Flush()
	t.Logf("\n%s", b.String())

	def := results[ovVariants[0].name]
	if r := def[0]; r.shed != 0 || r.late != 0 {
		t.Errorf("default at 0.7x: %d shed, %d late; want none", r.shed, r.late)
	}
	for i := 1; i < len(loads); i++ {
		r := def[i]
		if r.goodputPct < 90 {
			t.Errorf("default at %gx: goodput %.1f%% of capacity, want >= 90%%", loads[i], r.goodputPct)
		}
		if r.failP50Ms > 25 {
			t.Errorf("default at %gx: the median failed request failed after %.1f ms, want <= 25 ms", loads[i], r.failP50Ms)
		}
	}
}

// ovOpen opens a pool of no-op connections with every connection open.
func ovOpen(t *testing.T, v ovVariant) *fairpool.Pool[int] {
	t.Helper()
	var n atomic.Int64
	p, err := fairpool.New(fairpool.Config[int]{
		Open:            func(context.Context) (int, error) { return int(n.Add(1)), nil },
		MaxSize:         ovSize,
		AcquireTimeout:  5 * time.Second, // the requests' deadlines end their waits
		WaitOrder:       v.order,
		IgnoreDeadlines: v.ignore,
	})
	if err != nil {
		t.Fatal(err)
	}
	var leases []*fairpool.Lease[int]
	for range ovSize {
		l, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release()
	}
	return p
}

// ovMeasureCapacity runs a closed loop of 2·ovSize goroutines for
// ovCapacity and returns the requests served per second in the best of its
// four quarters: other work on a shared machine only ever lowers it.
func ovMeasureCapacity(p *fairpool.Pool[int]) float64 {
	const quarters = 4
	var done [quarters]atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 2 * ovSize {
		wg.Go(func() {
			for time.Since(start) < ovCapacity {
				l, err := p.Acquire(context.Background())
				if err != nil {
					continue
				}
				time.Sleep(ovHold)
				l.Release()
				if q := int(time.Since(start) * quarters / ovCapacity); q < quarters {
					done[q].Add(1)
				}
			}
		})
	}
	wg.Wait()
	best := int64(0)
	for i := range done {
		best = max(best, done[i].Load())
	}
	return float64(best) * quarters / ovCapacity.Seconds()
}

// ovRun offers Poisson arrivals at rate for ovStep and sorts out what
// became of them.
func ovRun(p *fairpool.Pool[int], rate, capacity float64, rng *rand.Rand) ovResult {
	var sched []time.Duration
	for t := rng.ExpFloat64() / rate; t < ovStep.Seconds(); t += rng.ExpFloat64() / rate {
		sched = append(sched, time.Duration(t*float64(time.Second)))
	}
	type out struct {
		served, late, shed bool
		took               time.Duration
	}
	outs := make([]out, len(sched))
	var wg sync.WaitGroup
	start := time.Now()
	for i, off := range sched {
		time.Sleep(time.Until(start.Add(off)))
		arrival := start.Add(off) // a sender running behind costs the request, as a client's would
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(context.Background(), arrival.Add(ovDeadline))
			defer cancel()
			l, err := p.Acquire(ctx)
			if err != nil {
				outs[i] = out{shed: errors.Is(err, fairpool.ErrOverload), took: time.Since(arrival)}
				return
			}
			time.Sleep(ovHold)
			l.Release()
			outs[i] = out{served: true, late: time.Now().After(arrival.Add(ovDeadline))}
		})
	}
	wg.Wait()
	var r ovResult
	var fails []time.Duration
	for _, o := range outs {
		switch {
		case o.served && o.late:
			r.late++
		case o.served:
			r.inTime++
		default:
			r.failed++
			fails = append(fails, o.took)
			if o.shed {
				r.shed++
			}
		}
	}
	r.goodputPct = 100 * float64(r.inTime) / ovStep.Seconds() / capacity
	if len(fails) > 0 {
		slices.Sort(fails)
		r.failP50Ms = float64(fails[(len(fails)-1)/2]) / float64(time.Millisecond)
	}
	return r
}
