package fairpool

import "fmt"

// checkInvariants takes mu and reports the first broken rule of the ones
// written on Pool.mu, or nil.
func (p *Pool[T]) checkInvariants() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.numOpen > p.cfg.MaxSize {
		return fmt.Errorf("numOpen %d > MaxSize %d", p.numOpen, p.cfg.MaxSize)
	}
	if in := p.inUseLocked(); in < 0 {
		return fmt.Errorf("in use %d < 0 (open %d, opening %d, closing %d, idle %d)", in, p.numOpen, p.opening, p.closing, p.idle.len())
	}
	if p.waiters.len > 0 {
		if p.idle.len() > 0 {
			return fmt.Errorf("%d waiting while %d idle", p.waiters.len, p.idle.len())
		}
		if p.numOpen < p.cfg.MaxSize && p.opening < p.waiters.len && !p.closed {
			return fmt.Errorf("%d waiting, %d opening, but only %d of %d slots used", p.waiters.len, p.opening, p.numOpen, p.cfg.MaxSize)
		}
	}
	n := 0
	var last uint64
	for w := p.waiters.head; w != nil; w = w.next {
		if n > 0 && w.ticket <= last {
			return fmt.Errorf("queue out of order: ticket %d after %d", w.ticket, last)
		}
		last = w.ticket
		n++
	}
	if n != p.waiters.len {
		return fmt.Errorf("queue holds %d, len says %d", n, p.waiters.len)
	}
	// The timer's list: waiters in line with a deadline, earliest first.
	nt := 0
	for w := p.waiters.timed.head; w != nil; w = w.tlink.next {
		switch {
		case !p.waiters.contains(w) || w.deadline == 0:
			return fmt.Errorf("deadline list holds a waiter in line %v with deadline %d", p.waiters.contains(w), w.deadline)
		case w.tlink.prev != nil && w.tlink.prev.deadline > w.deadline:
			return fmt.Errorf("deadline list out of order: %d after %d", w.deadline, w.tlink.prev.deadline)
		}
		nt++
	}
	if nt != p.waiters.timed.len {
		return fmt.Errorf("deadline list holds %d, len says %d", nt, p.waiters.timed.len)
	}
	return nil
}
