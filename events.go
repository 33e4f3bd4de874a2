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
//	DEBUG  fairpool: open refused           pool, error, waiting (a Pool with Config.Refused)
//	DEBUG  fairpool: key pool dropped       pool, key (a Group)
//
// A Group's records also carry the key they are about.
//
// reason is one of: discarded, reset failed, check failed, lifetime, idle
// time, over MaxIdle, pool closed, reclaimed, evicted (Group). Records are built only when the level is
// enabled, so a pool without a Logger pays for none of them.

// eventLog writes the records above for a Pool, or for one key of a Group
// (keyed: each record also carries the key). The key is turned into an
// attribute only when a record is written, so a disabled level costs no
// allocation.
type eventLog[K any] struct {
	logger *slog.Logger
	pool   string
	key    K
	keyed  bool
}

func (p *Pool[T]) events() eventLog[struct{}] { return p.life.events(struct{}{}) }

func (e eventLog[K]) log(level slog.Level, msg string, attrs ...slog.Attr) {
	ctx := context.Background()
	if !e.logger.Enabled(ctx, level) {
		return
	}
	head := []slog.Attr{slog.String("pool", e.pool)}
	if e.keyed {
		head = append(head, slog.Any("key", e.key))
	}
	e.logger.LogAttrs(ctx, level, msg, append(head, attrs...)...)
}

func (e eventLog[K]) openFailed(err error, waiting int) {
	e.log(slog.LevelWarn, "fairpool: open failed", slog.Any("error", err), slog.Int("waiting", waiting))
}

func (e eventLog[K]) closed(r closeReason, err error) {
	if err != nil {
		e.log(slog.LevelWarn, "fairpool: close failed", slog.String("reason", r.String()), slog.Any("error", err))
		return
	}
	e.log(slog.LevelDebug, "fairpool: connection closed", slog.String("reason", r.String()))
}

// panicked logs err if it is a recovered panic of a callback (see
// callback.go), and reports whether it was.
func (e eventLog[K]) panicked(err error) bool {
	var pe *PanicError
	if !errors.As(err, &pe) {
		return false
	}
	e.log(slog.LevelError, "fairpool: callback panicked",
		slog.String("callback", pe.Callback), slog.Any("panic", pe.Value), slog.String("stack", pe.Stack))
	return true
}

func (e eventLog[K]) checkFailed(err error) {
	e.log(slog.LevelInfo, "fairpool: check failed", slog.Any("error", err))
}

func (e eventLog[K]) resetFailed(err error) {
	e.log(slog.LevelInfo, "fairpool: reset failed", slog.Any("error", err))
}

// logTimeout logs a wait that gave up, under the name of the line it was
// in (TimeoutError.Pool: a pool, a group, or a group's key).
func logTimeout(logger *slog.Logger, te *TimeoutError) {
	eventLog[struct{}]{logger: logger, pool: te.Pool}.log(slog.LevelWarn, "fairpool: acquire timed out",
		slog.Duration("waited", te.Waited), slog.Int("max_size", te.MaxSize), slog.Int("open", te.Open),
		slog.Int("in_use", te.InUse), slog.Int("idle", te.Idle), slog.Int("waiting", te.Waiting), slog.Int("opening", te.Opening))
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
	p.events().log(slog.LevelInfo, "fairpool: pool closed", attrs...)
}
