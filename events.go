package fairpool

import (
	"context"
	"errors"
	"log/slog"
)

// The pool's log records. Each has a fixed message and stable attribute
// keys, so that alerts and dashboards can match on them:
//
//	level  message                          attributes
//	WARN   fairpool: open failed            pool, error, waiting
//	WARN   fairpool: acquire timed out      pool, waited, max_size, open, in_use, idle, waiting, opening
//	WARN   fairpool: close failed           pool, reason, error
//	INFO   fairpool: check failed           pool, error
//	INFO   fairpool: reset failed           pool, error
//	DEBUG  fairpool: connection closed      pool, reason
//	WARN   fairpool: lease held too long    pool, held_for, caller, stack
//	ERROR  fairpool: lease dropped without Release; connection closed
//	                                        pool, held_for, caller, stack
//	ERROR  fairpool: callback panicked      pool, callback, panic, stack
//	INFO   fairpool: pool closed            pool, acquires, timeouts, open_errors (and error if Close gave up)
//
// reason is one of: discarded, reset failed, check failed, lifetime, idle
// time, over MaxIdle, pool closed, reclaimed, evicted (Group). Records are built only when the level is
// enabled, so a pool without a Logger pays for none of them.

func (p *Pool[T]) log(level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !p.cfg.Logger.Enabled(ctx, level) {
		return
	}
	p.cfg.Logger.LogAttrs(ctx, level, msg, append([]slog.Attr{slog.String("pool", p.cfg.Name)}, attrs...)...)
}

func (p *Pool[T]) logOpenFailed(err error, waiting int) {
	p.log(slog.LevelWarn, "fairpool: open failed", slog.Any("error", err), slog.Int("waiting", waiting))
}

func (p *Pool[T]) logTimeout(e *TimeoutError) {
	p.log(slog.LevelWarn, "fairpool: acquire timed out",
		slog.Duration("waited", e.Waited), slog.Int("max_size", e.MaxSize), slog.Int("open", e.Open),
		slog.Int("in_use", e.InUse), slog.Int("idle", e.Idle), slog.Int("waiting", e.Waiting), slog.Int("opening", e.Opening))
}

func (p *Pool[T]) logClosed(r closeReason, err error) {
	if err != nil {
		p.log(slog.LevelWarn, "fairpool: close failed", slog.String("reason", r.String()), slog.Any("error", err))
		return
	}
	p.log(slog.LevelDebug, "fairpool: connection closed", slog.String("reason", r.String()))
}

// logPanic logs err if it is a recovered panic of a callback (see
// callback.go), and reports whether it was.
func (p *Pool[T]) logPanic(err error) bool {
	var pe *PanicError
	if !errors.As(err, &pe) {
		return false
	}
	p.log(slog.LevelError, "fairpool: callback panicked", panicAttrs(pe)...)
	return true
}

func panicAttrs(pe *PanicError) []slog.Attr {
	return []slog.Attr{slog.String("callback", pe.Callback), slog.Any("panic", pe.Value), slog.String("stack", pe.Stack)}
}

func (p *Pool[T]) logCheckFailed(err error) {
	p.log(slog.LevelInfo, "fairpool: check failed", slog.Any("error", err))
}

func (p *Pool[T]) logResetFailed(err error) {
	p.log(slog.LevelInfo, "fairpool: reset failed", slog.Any("error", err))
}

func (p *Pool[T]) logPoolClosed(err error) {
	if !p.cfg.Logger.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	s := p.Stats()
	attrs := []slog.Attr{slog.Int64("acquires", s.Acquires), slog.Int64("timeouts", s.Timeouts), slog.Int64("open_errors", s.OpenErrors)}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	}
	p.log(slog.LevelInfo, "fairpool: pool closed", attrs...)
}
