package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errUnfairTimeout is what the unfair queue returns when a wait outlasts its
// timeout, as ActiveRecord raises ConnectionTimeoutError.
var errUnfairTimeout = errors.New("unfair queue: could not obtain a connection within the timeout")

// unfairQueue is the fairness experiment's "unfair queue": the queue of idle connections
// under ActiveRecord's patched connection pool, in its unfair mode. In Ruby:
//
//	def poll(timeout)             # under the monitor
//	  no_wait_poll || wait_poll(timeout)
//	def can_remove_no_wait?       # fair: @queue.size > @num_waiting
//	  @queue.size > 0             # unfair: ignores the waiters
//	def wait_poll(timeout)
//	  @num_waiting += 1
//	  loop do
//	    @cond.wait(timeout - elapsed)
//	    return remove if any?
//	    raise ConnectionTimeoutError if elapsed >= timeout
//	  end
//	ensure @num_waiting -= 1
//	def add(conn)                 # check-in
//	  @queue.push conn; @cond.signal
//
// A goroutine that releases a connection and asks again at once finds it
// still in the queue (the waiter it signalled has not yet got the lock) and
// takes it back; the signalled waiter finds the queue empty and waits
// again, now behind everyone. A few goroutines keep the connections and the
// rest starve: most requests never wait, and some wait for the whole run.
// The one-line fix is the fair condition in the comment above, which a
// strict FIFO pool like fairpool implements by handing a released
// connection straight to the oldest waiter.
type unfairQueue struct {
	mu         sync.Mutex
	cond       condVar // on mu
	conns      []int   // idle connections, oldest first; guarded by mu
	numWaiting int     // goroutines in wait_poll; guarded by mu; unused by the unfair rule, kept as the code it models has it
	timeout    time.Duration
}

// newUnfairQueue returns a queue holding size connections, all idle.
func newUnfairQueue(size int, timeout time.Duration) *unfairQueue {
	q := &unfairQueue{timeout: timeout}
	q.cond.mu = &q.mu
	for i := range size {
		q.conns = append(q.conns, i)
	}
	return q
}

// poll takes a connection, waiting up to the queue's timeout.
func (q *unfairQueue) poll(ctx context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.conns) > 0 { // can_remove_no_wait?, unfair: waiters are ignored
		return q.removeLocked(), nil
	}
	q.numWaiting++
	defer func() { q.numWaiting-- }()
	start := time.Now()
	for {
		q.cond.wait(ctx, q.timeout-time.Since(start))
		if len(q.conns) > 0 {
			return q.removeLocked(), nil
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if waited := time.Since(start); waited >= q.timeout {
			return 0, fmt.Errorf("%w (waited %v)", errUnfairTimeout, waited.Round(time.Millisecond))
		}
	}
}

// removeLocked takes the oldest idle connection. q.mu must be held and the
// queue must not be empty.
func (q *unfairQueue) removeLocked() int {
	c := q.conns[0]
	q.conns = q.conns[1:]
	return c
}

// add returns a connection and wakes the longest waiter.
func (q *unfairQueue) add(c int) {
	q.mu.Lock()
	q.conns = append(q.conns, c)
	q.cond.signal()
	q.mu.Unlock()
}
