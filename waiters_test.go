package fairpool

import (
	"sync"
	"testing"
	"testing/synctest"
)

// Waiters for the order tests of a Pool and of a Group, in a synctest
// bubble: acquire is a Pool's Acquire or a Group's of one key.

// waitInLine starts one acquire on a goroutine of its own and returns,
// once it waits, a channel of the lease it gets: the test decides when it
// may.
func waitInLine[L any](t *testing.T, acquire func() (L, error)) <-chan L {
	got := make(chan L)
	go func() {
		l, err := acquire()
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	synctest.Wait()
	return got
}

// queueInTurn starts n acquires one at a time, acquire i queued before
// i+1 starts (queued is called as each is in line), each releasing what
// it gets at once. served waits for them all and returns their numbers in the order
// they were served.
func queueInTurn[L interface{ Release() }](t *testing.T, n int, acquire func() (L, error), queued func()) (served func() []int) {
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			l, err := acquire()
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			l.Release()
		})
		synctest.Wait()
		queued()
	}
	return func() []int {
		wg.Wait()
		return order
	}
}

// wantFIFO fails t unless order, from queueInTurn, is first come, first
// served.
func wantFIFO(t *testing.T, order []int) {
	t.Helper()
	for i, got := range order {
		if got != i {
			t.Fatalf("served order %v, want 0..%d", order, len(order)-1)
		}
	}
}
