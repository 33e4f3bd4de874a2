package fairpgx_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
)

// TestObserveSeesConnectsAndLeases: an Observer added to a fairpgx.Pool
// hears of the connect, the hand-out and the end of each query's lease on
// the real server, and nothing once stopped.
func TestObserveSeesConnectsAndLeases(t *testing.T) {
	cfg, _ := testConfig(t, 1)
	cfg.HealthCheckPeriod = time.Hour // no background lease during the count
	p := newPool(t, cfg)
	var opened, acquired, released atomic.Int64
	stop := p.Observe(fairpool.Observer{
		Opened:   func(time.Duration) { opened.Add(1) },
		Acquired: func(time.Duration) { acquired.Add(1) },
		Released: func(time.Duration) { released.Add(1) },
	})
	ctx := context.Background()
	for range 2 {
		if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if opened.Load() != 1 || acquired.Load() != 2 || released.Load() != 2 {
		t.Errorf("opened %d, acquired %d, released %d; want 1, 2, 2", opened.Load(), acquired.Load(), released.Load())
	}
	stop()
	if _, err := p.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if acquired.Load() != 2 || released.Load() != 2 {
		t.Errorf("after stop: acquired %d, released %d; want no more", acquired.Load(), released.Load())
	}
}
