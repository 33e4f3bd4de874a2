package fairpool

import (
	"context"
	"log/slog"
	"math"
	"time"
)

// life is what a Pool and a Group do the same way with a connection,
// whatever their dispatch: its clock, opening it, vetting it at hand-out
// (check.go), the first step of its release, and closing it. Each embeds
// one, set once by New or NewGroup; a Group's records carry the key
// (keyed), a Pool's do not (K is struct{}).
type life[K, T any] struct {
	base      time.Time // the zero of mono
	needClock bool      // Check, MaxLifetime or MaxIdleTime read the clock on hand-out and release

	// done ends when Close is called, and with it the opens, checks and
	// resets under way: none may outlast Close waiting on a server that
	// never answers.
	done context.Context
	end  context.CancelFunc

	closeFn                                                   func(T) error
	checkFn, resetFn                                          func(context.Context, T) error
	checkAfter, openTimeout, maxLifetime, jitter, maxIdleTime time.Duration

	logger *slog.Logger
	name   string
	keyed  bool

	obs observers // see observe.go
}

// init takes the settings of a validated Config or GroupConfig.
func (l *life[K, T]) init(s shared[T], keyed bool) {
	l.base = time.Now()
	l.needClock = s.check != nil || *s.maxLifetime > 0 || *s.maxIdleTime > 0
	l.closeFn, l.checkFn, l.resetFn = s.close, s.check, s.reset
	l.checkAfter, l.openTimeout = *s.checkAfter, *s.openTimeout
	l.maxLifetime, l.jitter, l.maxIdleTime = *s.maxLifetime, *s.jitter, *s.maxIdleTime
	l.logger, l.name, l.keyed = *s.logger, s.name, keyed
	l.done, l.end = context.WithCancel(context.Background())
}

func (l *life[K, T]) now() mono { return mono(time.Since(l.base)) + 1 }

// events is the log of key's connections (of the pool's, for a Pool).
func (l *life[K, T]) events(key K) eventLog[K] {
	return eventLog[K]{logger: l.logger, pool: l.name, key: key, keyed: l.keyed}
}

// newConn makes the bookkeeping of a connection opened at now, for home.
func (l *life[K, T]) newConn(h home[T], v T, now mono) *conn[T] {
	return &conn[T]{home: h, value: v, idleSince: now, expiresAt: expiry(now, l.maxLifetime, l.jitter)}
}

// open opens a connection for key, for a slot already counted as opening,
// and settles the slot with opened however Open ends, runtime.Goexit
// included. The caller's cancellation does not reach Open, but Close
// does, and OpenTimeout bounds it.
func (l *life[K, T]) open(ctx context.Context, key K, open func(context.Context) (T, error), opened func(T, error)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.openTimeout)
	unhook := context.AfterFunc(l.done, cancel)
	var v T
	err := errGoexit("Open")
	start := time.Now()
	defer func() {
		unhook()
		cancel()
		if err == nil {
			l.obs.opened(time.Since(start))
		}
		opened(v, err)
	}()
	v, err = openValue(open, l.closeFn, l.events(key), ctx)
}

// reusable is the first step of every release: a connection marked
// broken, failing Reset, or past its lifetime is discarded through its
// home rather than reused. It reports whether c goes back, and when the
// release was (zero without a clock), which is c's idleSince from now on.
func (l *life[K, T]) reusable(c *conn[T], key K) (mono, bool) {
	if c.broken.Load() {
		c.home.discard(c, closeDiscarded)
		return 0, false
	}
	if l.resetFn != nil && !runReset(l.resetFn, c.value, l.openTimeout, l.done, l.events(key),
		func() { c.home.discard(c, closeResetFailed) }) {
		return 0, false
	}
	if !l.needClock {
		return 0, true
	}
	now := l.now()
	if r, ok := c.expired(now, 0); ok {
		c.home.discard(c, r)
		return 0, false
	}
	c.idleSince = now
	return now, true
}

// closeConn runs Close on c and logs how it went, c.reason being why.
func (l *life[K, T]) closeConn(c *conn[T], key K) {
	ev := l.events(key)
	if err := callClose(l.closeFn, c.value); !ev.panicked(err) {
		ev.closed(c.reason, err)
	}
}

// checkContext is what a Check gets: ctx, ended at deadline (0 or
// math.MaxInt64: none) or by Close.
func (l *life[K, T]) checkContext(ctx context.Context, deadline mono) (context.Context, context.CancelFunc) {
	var cctx context.Context
	var cancel context.CancelFunc
	if deadline == 0 || deadline == math.MaxInt64 {
		cctx, cancel = context.WithCancel(ctx)
	} else {
		cctx, cancel = context.WithDeadline(ctx, l.base.Add(time.Duration(deadline-1)))
	}
	unhook := context.AfterFunc(l.done, cancel)
	return cctx, func() { unhook(); cancel() }
}

// fresh reports whether c, just handed out, may go to the caller without
// vetting: it has not expired and is not due for a Check. now is when it
// was handed out, zero if nothing reads the clock.
func (l *life[K, T]) fresh(c *conn[T]) (now mono, ok bool) {
	if !l.needClock {
		return 0, true
	}
	now = l.now()
	_, expired := c.expired(now, l.maxIdleTime)
	return now, !expired && !l.checkDue(c, now)
}

// checkDue reports whether c, handed out at now, must pass Check first:
// it sat idle longer than CheckAfter.
func (l *life[K, T]) checkDue(c *conn[T], now mono) bool {
	return l.checkFn != nil && time.Duration(now-c.idleSince) > l.checkAfter
}
