package fairpgx

import (
	"time"

	"github.com/fairpool/fairpool"
)

// Stat is a snapshot of a pool with pgxpool.Stat's methods, so dashboards
// built on pgxpool keep working. Stats has the full picture.
type Stat struct {
	s fairpool.Stats
}

// Stat returns a snapshot of the pool.
func (p *Pool) Stat() *Stat { return &Stat{s: p.pool.Stats()} }

// Stats returns fairpool's gauges, counters and wait histogram.
func (p *Pool) Stats() fairpool.Stats { return p.pool.Stats() }

// AcquireCount is the number of connections handed out.
func (s *Stat) AcquireCount() int64 { return s.s.Acquires }

// AcquireDuration is the total time spent waiting by acquires that got a
// connection.
func (s *Stat) AcquireDuration() time.Duration { return s.s.WaitDuration }

// AcquiredConns is the number of connections acquired now.
func (s *Stat) AcquiredConns() int32 { return int32(s.s.InUse) }

// CanceledAcquireCount is the number of waits that ended without a
// connection: by the context, or by AcquireTimeout.
func (s *Stat) CanceledAcquireCount() int64 { return s.s.Cancels + s.s.Timeouts }

// ConstructingConns is the number of connections being opened now.
func (s *Stat) ConstructingConns() int32 { return int32(s.s.Opening) }

// EmptyAcquireCount is the number of acquires that had to wait.
func (s *Stat) EmptyAcquireCount() int64 { return s.s.Waits }

// IdleConns is the number of idle connections now.
func (s *Stat) IdleConns() int32 { return int32(s.s.Idle) }

// MaxConns is Config.MaxConns.
func (s *Stat) MaxConns() int32 { return int32(s.s.MaxSize) }

// TotalConns is the number of connections that exist now: idle, acquired,
// being opened and being closed.
func (s *Stat) TotalConns() int32 { return int32(s.s.Open) }

// NewConnsCount is the number of connections opened.
func (s *Stat) NewConnsCount() int64 { return s.s.Opens }

// MaxLifetimeDestroyCount is the number of connections closed for reaching
// MaxConnLifetime.
func (s *Stat) MaxLifetimeDestroyCount() int64 { return s.s.ClosedLifetime }

// MaxIdleDestroyCount is the number of connections closed for sitting idle
// MaxConnIdleTime.
func (s *Stat) MaxIdleDestroyCount() int64 { return s.s.ClosedIdleTime }
