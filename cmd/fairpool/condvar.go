package main

import (
	"context"
	"sync"
	"time"
)

// condVar is a condition variable whose wait can time out, as Ruby's
// MonitorMixin::ConditionVariable#wait(timeout) can; sync.Cond cannot. Like
// Ruby's, signal wakes the longest waiter, and a woken waiter must take the
// lock again before it looks at anything, so another goroutine can get the
// lock first and change the state under it: the unfair queue depends on
// exactly that.
type condVar struct {
	mu      *sync.Mutex     // the lock the condition is about
	waiters []chan struct{} // oldest first; guarded by mu
}

// wait releases mu, sleeps until signal, timeout or the end of ctx, and
// takes mu again. It reports whether a signal woke it. mu must be held.
func (c *condVar) wait(ctx context.Context, timeout time.Duration) bool {
	ch := make(chan struct{})
	c.waiters = append(c.waiters, ch)
	c.mu.Unlock()
	t := time.NewTimer(timeout)
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	c.mu.Lock()
	// Under mu, signal either has removed ch (and closed it) or has not: if
	// it has, the wake-up counts even when the timer fired at the same
	// instant, so no signal is ever lost; if not, the waiter leaves the
	// list here and no later signal can be spent on it.
	for i, w := range c.waiters {
		if w == ch {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return false
		}
	}
	return true
}

// signal wakes the longest waiter, if any. mu must be held.
func (c *condVar) signal() {
	if len(c.waiters) == 0 {
		return
	}
	close(c.waiters[0])
	c.waiters = c.waiters[1:]
}
