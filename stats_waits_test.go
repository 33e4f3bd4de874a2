package fairpool_test

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
)

// TestStatsWaitsCountsEveryWaitBegun pins what Stats.Waits counts: every
// acquire that found no idle connection and joined the line, to wait for
// one to be released or opened for it, once, counted when it joins;
// whether it is still waiting, was served, timed out or was cancelled.
// Acquires served from idle, and TryAcquire, are not counted.
func TestStatsWaitsCountsEveryWaitBegun(t *testing.T) {
	p, err := fairpool.New(fairpool.Config[int]{
		// Long enough that the waits below end as the test ends them,
		// short enough to time one out.
		MaxSize: 1, AcquireTimeout: 300 * time.Millisecond,
		Open: func(context.Context) (int, error) { return 1, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	check := func(what string, waits, waiting, timeouts, cancels, acquires int64) {
		t.Helper()
		s := p.Stats()
		if s.Waits != waits || int64(s.Waiting) != waiting || s.Timeouts != timeouts || s.Cancels != cancels || s.Acquires != acquires {
			t.Errorf("%s: Waits %d, Waiting %d, Timeouts %d, Cancels %d, Acquires %d; want %d, %d, %d, %d, %d",
				what, s.Waits, s.Waiting, s.Timeouts, s.Cancels, s.Acquires, waits, waiting, timeouts, cancels, acquires)
		}
	}

	held, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("an acquire that waited for its connection to open", 1, 0, 0, 0, 1)
	held.Release()
	if held, err = p.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	check("an acquire served from idle", 1, 0, 0, 0, 2)
	if _, err := p.TryAcquire(ctx); !errors.Is(err, fairpool.ErrExhausted) {
		t.Fatalf("TryAcquire: %v", err)
	}
	check("a TryAcquire that found nothing", 1, 0, 0, 0, 2)

	if _, err := p.Acquire(ctx); !errors.Is(err, fairpool.ErrTimeout) {
		t.Fatalf("Acquire: %v, want a timeout", err)
	}
	check("a wait that timed out", 2, 0, 1, 0, 2)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Acquire(wctx)
		done <- err
	}()
	for p.Stats().Waiting == 0 {
		runtime.Gosched()
	}
	check("a wait in progress", 3, 1, 1, 0, 2)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v", err)
	}
	check("a wait that was cancelled", 3, 0, 1, 1, 2)

	go func() {
		l, err := p.Acquire(ctx)
		if err == nil {
			l.Release()
		}
		done <- err
	}()
	for p.Stats().Waiting == 0 {
		runtime.Gosched()
	}
	held.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check("a wait that was served", 4, 0, 1, 1, 3)
}
