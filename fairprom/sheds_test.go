package fairprom_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/fairprom"
	"github.com/prometheus/client_golang/prometheus"
)

// TestShedsAreCounted: a caller turned away because its deadline cannot
// be met shows in fairpool_sheds_total, and in no other failure count.
func TestShedsAreCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := fairpool.New(fairpool.Config[*conn]{MaxSize: 1, Open: func(context.Context) (*conn, error) { return &conn{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(context.Background())
		// A line moving one caller per 10ms, all with time enough.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				defer cancel()
				l, err := p.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(10 * time.Millisecond)
				l.Release()
			})
			synctest.Wait()
		}
		time.Sleep(35 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := p.Acquire(ctx); !errors.Is(err, fairpool.ErrOverload) {
			t.Fatalf("err = %v; want ErrOverload", err)
		}
		wg.Wait()
		c := fairprom.NewCollector()
		if err := c.Add("db", p); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				if m.GetCounter() != nil {
					got[f.GetName()] += m.GetCounter().GetValue()
				}
			}
		}
		for name, v := range map[string]float64{"fairpool_sheds_total": 1, "fairpool_timeouts_total": 0, "fairpool_cancels_total": 0} {
			if got[name] != v {
				t.Errorf("%s = %v, want %v", name, got[name], v)
			}
		}
	})
}
