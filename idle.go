package fairpool

import "time"

// idleStack holds idle connections, last released on top. Handing out the
// most recently used connection keeps a few connections hot and lets the
// rest age at the bottom, where MaxIdleTime and the keeper retire them.
// Guarded by Pool.mu.
type idleStack[T any] struct {
	conns []*conn[T]
}

func (s *idleStack[T]) len() int { return len(s.conns) }

func (s *idleStack[T]) push(c *conn[T]) { s.conns = append(s.conns, c) }

func (s *idleStack[T]) pop() *conn[T] {
	n := len(s.conns)
	if n == 0 {
		return nil
	}
	c := s.conns[n-1]
	s.conns[n-1] = nil
	s.conns = s.conns[:n-1]
	return c
}

// takeAll empties the stack and returns what it held.
func (s *idleStack[T]) takeAll() []*conn[T] {
	all := s.conns
	s.conns = nil
	return all
}

// takeExpired removes the connections whose time is up at now, keeping the
// rest in order, and returns them with the reason for each.
func (s *idleStack[T]) takeExpired(now mono, maxIdleTime time.Duration) (expired []*conn[T], reasons []closeReason) {
	kept := s.conns[:0]
	for _, c := range s.conns {
		if r, ok := c.expired(now, maxIdleTime); ok {
			expired = append(expired, c)
			reasons = append(reasons, r)
			continue
		}
		kept = append(kept, c)
	}
	clear(s.conns[len(kept):])
	s.conns = kept
	return expired, reasons
}
