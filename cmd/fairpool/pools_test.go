package main

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// waitFor polls cond (which reads state through the types' own locks)
// until it holds, failing after 5 s with what it was waiting for. Tests
// use it to see that goroutines are queued, never to give them time.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
}

// result is what a goroutine blocked in a checkout or poll reports.
type result struct {
	v   any
	err error
}

func TestCondVarSignalsOldestFirstAndTimesOut(t *testing.T) {
	var q unfairQueue // only its mutex and condition are used
	q.cond.mu = &q.mu
	ctx := context.Background()
	woke := make(chan int, 2)
	for i := 1; i <= 2; i++ {
		go func() {
			q.mu.Lock()
			timeout := time.Hour
			if i == 2 {
				timeout = 20 * time.Millisecond
			}
			signalled := q.cond.wait(ctx, timeout)
			q.mu.Unlock()
			if signalled {
				woke <- i
			} else {
				woke <- -i
			}
		}()
		waitFor(t, "waiter queued", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return len(q.cond.waiters) == i })
	}
	q.mu.Lock()
	q.cond.signal()
	q.mu.Unlock()
	if got := <-woke; got != 1 {
		t.Fatalf("signal woke waiter %d, want the oldest, 1", got)
	}
	if got := <-woke; got != -2 {
		t.Fatalf("waiter 2 reported %d, want -2 (timed out)", got)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.cond.waiters); n != 0 {
		t.Errorf("%d waiters left after a timeout, want 0", n)
	}
}

// The unfair rule of the fairness experiment: a newcomer takes an idle connection even
// while another goroutine waits for one.
func TestUnfairQueueLetsNewcomerBarge(t *testing.T) {
	q := newUnfairQueue(1, time.Hour)
	ctx := context.Background()
	c, err := q.poll(ctx) // the only connection
	if err != nil {
		t.Fatal(err)
	}
	waiter := make(chan result, 1)
	go func() {
		c, err := q.poll(ctx)
		waiter <- result{c, err}
	}()
	waitFor(t, "a goroutine waits", func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.numWaiting == 1 })

	// The connection comes back between the signal and the waiter's wake-up:
	// put it in the queue without signalling, which freezes that instant.
	q.mu.Lock()
	q.conns = append(q.conns, c)
	q.mu.Unlock()
	got, err := q.poll(ctx) // a newcomer
	if err != nil || got != c {
		t.Fatalf("newcomer got %v, %v; want connection %d at once, ahead of the waiter", got, err, c)
	}
	select {
	case r := <-waiter:
		t.Fatalf("the waiter got %v while the newcomer held the only connection", r)
	default:
	}

	q.add(got) // now with the signal: the waiter is served
	if r := <-waiter; r.err != nil || r.v != c {
		t.Fatalf("waiter got %v, %v; want connection %d", r.v, r.err, c)
	}
}

func TestUnfairQueueTimesOut(t *testing.T) {
	q := newUnfairQueue(0, 20*time.Millisecond)
	start := time.Now()
	_, err := q.poll(context.Background())
	if !errors.Is(err, errUnfairTimeout) || !isTimeout(err) {
		t.Fatalf("poll on an empty queue: %v, want a timeout", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Errorf("gave up after %v, before the 20ms timeout", waited)
	}
}

// pinnedScene builds the pinned-sockets example with 2 sockets and 4 threads:
// thread 1 holds socket A, thread 2 holds B, thread 3 is pinned to A and
// thread 4 to B, and 3 then 4 wait, in that order. It returns the check-ins
// of A and B and the channels on which threads 3 and 4 report.
func pinnedScene(t *testing.T, p *pinnedPool) (checkinA, checkinB func(), t3, t4 chan result) {
	t.Helper()
	ctx := context.Background()
	mustCheckout := func(thread int) func() {
		t.Helper()
		in, err := p.checkout(ctx, thread)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	checkinA = mustCheckout(1) // A, new
	checkinB = mustCheckout(2) // B, new
	checkinA()
	mustCheckout(3)() // the only idle socket: thread 3 is pinned to A
	checkinA = mustCheckout(1)
	checkinB()
	mustCheckout(4)() // thread 4 pinned to B
	checkinB = mustCheckout(2)
	if a, b := p.pinned[3], p.pinned[4]; a != p.pinned[1] || b != p.pinned[2] || a == b {
		t.Fatalf("pins: 1->%v 2->%v 3->%v 4->%v; want 3 on 1's socket and 4 on 2's", p.pinned[1], p.pinned[2], a, b)
	}
	t3, t4 = make(chan result, 1), make(chan result, 1)
	for _, th := range []struct {
		id int
		ch chan result
	}{{3, t3}, {4, t4}} {
		go func() {
			in, err := p.checkout(ctx, th.id)
			if in != nil {
				in()
			}
			th.ch <- result{th.id, err}
		}()
		waitFor(t, "thread waits", func() bool { p.mu.Lock(); defer p.mu.Unlock(); return p.waiting == th.id-2 })
	}
	return checkinA, checkinB, t3, t4
}

// With signal, checking B in wakes thread 3, which wants A (still out) and
// sleeps again, while thread 4, whose B is now free, sleeps on.
func TestPinnedSignalLeavesSocketIdle(t *testing.T) {
	p := newPinnedPool(2, false, 1)
	checkinA, checkinB, t3, t4 := pinnedScene(t, p)
	checkinB()
	waitFor(t, "thread 3 woke and found A out", func() bool { _, futile := p.counts(); return futile == 1 })
	select {
	case r := <-t4:
		t.Fatalf("thread 4 got B (%v): signal was expected to wake thread 3 only", r)
	default:
	}
	p.mu.Lock()
	idleB := !p.pinned[4].out
	waiting := p.waiting
	p.mu.Unlock()
	if !idleB || waiting != 2 {
		t.Fatalf("B idle %v, %d threads waiting; want B idle with both threads still waiting", idleB, waiting)
	}

	checkinA() // wakes thread 4, the oldest waiter now: it takes B
	if r := <-t4; r.err != nil {
		t.Fatalf("thread 4: %v", r.err)
	}
	p.stop() // thread 3 may sleep on with A idle: the same bug; end it
	<-t3
}

// With broadcast, checking B in wakes both, and thread 4 takes B.
func TestPinnedBroadcastServesThreadWhoseSocketIsFree(t *testing.T) {
	p := newPinnedPool(2, true, 1)
	checkinA, checkinB, t3, t4 := pinnedScene(t, p)
	checkinB()
	if r := <-t4; r.err != nil {
		t.Fatalf("thread 4: %v", r.err)
	}
	checkinA()
	if r := <-t3; r.err != nil {
		t.Fatalf("thread 3: %v", r.err)
	}
}
