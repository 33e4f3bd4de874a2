package fairpgx

import (
	"time"

	"github.com/fairpool/fairpool"
)

// Stat is a snapshot of a pool with pgxpool.Stat's methods and meanings,
// so that dashboards built on pgxpool keep working. Stats has fairpool's
// fuller picture.
type Stat struct {
	s                fairpool.Stats
	acquireDuration  time.Duration
	internalAcquires int64
	lifetimeCloses   int64
	idleCloses       int64
}

// Stat returns a snapshot of the pool.
func (p *Pool) Stat() *Stat {
	return &Stat{
		s:                p.pool.Stats(),
		acquireDuration:  time.Duration(p.acquireNanos.Load()),
		internalAcquires: p.internalAcquires.Load(),
		lifetimeCloses:   p.lifetimeCloses.Load(),
		idleCloses:       p.idleCloses.Load(),
	}
}

// Stats returns fairpool's gauges, counters and wait histogram. Its
// Acquires also count the pool's own (health check, AcquireAllIdle,
// Reset), which Stat leaves out.
func (p *Pool) Stats() fairpool.Stats { return p.pool.Stats() }

// AcquireCount is the number of successful acquires, connections refused
// by a ping or PrepareConn included, as in pgxpool.
func (s *Stat) AcquireCount() int64 { return s.s.Acquires - s.internalAcquires }

// AcquireDuration is the total time successful acquires took, waits or
// not.
func (s *Stat) AcquireDuration() time.Duration { return s.acquireDuration }

// AcquiredConns is the number of connections acquired now.
func (s *Stat) AcquiredConns() int32 { return int32(s.s.InUse) }

// CanceledAcquireCount is the number of acquires that ended without a
// connection because their wait ended: by the context, by AcquireTimeout,
// which pgxpool does not have, or turned away because the context's
// deadline could not be met (fairpool.ErrOverload).
func (s *Stat) CanceledAcquireCount() int64 { return s.s.Cancels + s.s.Timeouts + s.s.Sheds }

// ConstructingConns is the number of connections being opened now.
func (s *Stat) ConstructingConns() int32 { return int32(s.s.Opening) }

// EmptyAcquireCount is the number of successful acquires that had to wait
// for a connection to be released or opened because none was idle.
// fairpool counts every wait, successful or not, so this is its waits less
// those that ended without a connection: approximate, as a caller turned
// away on arrival (ErrOverload) never waited but counts as a shed.
func (s *Stat) EmptyAcquireCount() int64 {
	return max(0, s.s.Waits-s.s.Timeouts-s.s.Cancels-s.s.Sheds)
}

// EmptyAcquireWaitTime is the total time those acquires waited.
func (s *Stat) EmptyAcquireWaitTime() time.Duration { return s.s.WaitDuration }

// IdleConns is the number of idle connections now.
func (s *Stat) IdleConns() int32 { return int32(s.s.Idle) }

// MaxConns is Config.MaxConns.
func (s *Stat) MaxConns() int32 { return int32(s.s.MaxSize) }

// TotalConns is the number of connections that exist now: idle, acquired,
// being opened, and being closed (as in pgxpool, whose count drops once a
// close has finished).
func (s *Stat) TotalConns() int32 { return int32(s.s.Open) }

// NewConnsCount is the number of connections opened.
func (s *Stat) NewConnsCount() int64 { return s.s.Opens }

// MaxLifetimeDestroyCount is the number of connections closed for reaching
// MaxConnLifetime.
func (s *Stat) MaxLifetimeDestroyCount() int64 { return s.lifetimeCloses }

// MaxIdleDestroyCount is the number of connections closed for sitting idle
// longer than MaxConnIdleTime.
func (s *Stat) MaxIdleDestroyCount() int64 { return s.idleCloses }
