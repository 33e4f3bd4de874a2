package fairpool

import "time"

// deadlineTimer is the one timer a Pool or a Group keeps for all its
// waiters' AcquireTimeout deadlines: armed for the earliest, so a waiting
// goroutine needs no timer of its own. Waiters that share AcquireTimeout
// arrive in deadline order, so it is re-armed rarely. Guarded by its
// owner's mutex, as is every field below.
type deadlineTimer struct {
	fire  func() // set once by New or NewGroup: a method value made per arm would allocate
	t     *time.Timer
	armed bool // a call of fire is due
	at    mono // when
}

// armSooner makes fire run at at, unless it is due earlier already. A
// deadline already past fires at once.
func (d *deadlineTimer) armSooner(at, now mono) {
	if !d.armed || at < d.at {
		d.arm(at, now)
	}
}

// arm makes fire run at at.
func (d *deadlineTimer) arm(at, now mono) {
	if d.t == nil {
		d.t = time.AfterFunc(time.Duration(at-now), d.fire)
	} else {
		d.t.Reset(time.Duration(at - now))
	}
	d.armed = true
	d.at = at
}

// fired is called by fire, first thing, under the owner's mutex.
func (d *deadlineTimer) fired() { d.armed = false }

// stop stops the timer for Close. It stops it even when not armed: a run
// re-scheduled while a fired one waited for the mutex would otherwise come
// after Close returned.
func (d *deadlineTimer) stop() {
	if d.t != nil && d.t.Stop() {
		d.armed = false
	}
}
