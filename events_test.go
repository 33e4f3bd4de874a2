package fairpool

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.records = append(r.records, rec.Clone())
	r.mu.Unlock()
	return nil
}

// find returns the records with message msg, each as its level and a map
// of its attributes.
func (r *recorder) find(msg string) (levels []slog.Level, attrs []map[string]slog.Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.records {
		if rec.Message != msg {
			continue
		}
		m := map[string]slog.Value{}
		rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value; return true })
		levels = append(levels, rec.Level)
		attrs = append(attrs, m)
	}
	return levels, attrs
}

// TestLogEventsFireOnceWithDocumentedKeys drives each event of events.go
// once and checks its level and attribute keys.
func TestLogEventsFireOnceWithDocumentedKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		f := newFactory(t, 1)
		var failCheck, failReset, failClose bool
		p, err := New(Config[*fakeConn]{
			Name: "db", MaxSize: 1, AcquireTimeout: time.Second, CheckAfter: time.Second,
			Logger: slog.New(rec),
			Open:   f.Open,
			Close: func(c *fakeConn) error {
				f.Close(c)
				if failClose {
					return errors.New("close: broken pipe")
				}
				return nil
			},
			Check: func(context.Context, *fakeConn) error {
				if failCheck {
					failCheck = false
					return errors.New("ping failed")
				}
				return nil
			},
			Reset: func(context.Context, *fakeConn) error {
				if failReset {
					return errors.New("reset failed")
				}
				return nil
			},
		})
		if err != nil {
			t.Fatal(err)
		}

		f.setFail(errOpen)
		p.Acquire(bg()) // open failed
		f.setFail(nil)

		l, _ := p.Acquire(bg())
		p.Acquire(bg()) // acquire timed out
		l.Release()

		time.Sleep(2 * time.Second)
		failCheck = true
		l, _ = p.Acquire(bg()) // check failed, connection closed (check failed)
		synctest.Wait()
		failReset = true
		l.Release() // reset failed, connection closed (reset failed)
		synctest.Wait()
		failReset = false

		l, _ = p.Acquire(bg())
		failClose = true
		l.Discard() // close failed (discarded)
		synctest.Wait()
		failClose = false

		l, _ = p.Acquire(bg())
		l.Discard() // connection closed (discarded)
		synctest.Wait()
		p.Close(bg())

		want := []struct {
			msg    string
			level  slog.Level
			n      int
			keys   []string
			values map[string]string
		}{
			{"fairpool: open failed", slog.LevelWarn, 1, []string{"pool", "error", "waiting"}, nil},
			{"fairpool: acquire timed out", slog.LevelWarn, 1, []string{"pool", "waited", "max_size", "open", "in_use", "idle", "waiting", "opening"}, map[string]string{"waited": "1s", "in_use": "1"}},
			{"fairpool: check failed", slog.LevelInfo, 1, []string{"pool", "error"}, nil},
			{"fairpool: reset failed", slog.LevelInfo, 1, []string{"pool", "error"}, nil},
			{"fairpool: close failed", slog.LevelWarn, 1, []string{"pool", "reason", "error"}, map[string]string{"reason": "discarded"}},
			{"fairpool: connection closed", slog.LevelDebug, 3, []string{"pool", "reason"}, nil},
			{"fairpool: pool closed", slog.LevelInfo, 1, []string{"pool", "acquires", "timeouts", "open_errors"}, map[string]string{"timeouts": "1", "open_errors": "1"}},
		}
		for _, w := range want {
			levels, attrs := rec.find(w.msg)
			if len(levels) != w.n {
				t.Errorf("%q logged %d times, want %d", w.msg, len(levels), w.n)
				continue
			}
			for i := range levels {
				if levels[i] != w.level {
					t.Errorf("%q at %v, want %v", w.msg, levels[i], w.level)
				}
				var keys []string
				for k := range attrs[i] {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				wantKeys := slices.Sorted(slices.Values(w.keys))
				if !slices.Equal(keys, wantKeys) {
					t.Errorf("%q keys %v, want %v", w.msg, keys, wantKeys)
				}
				if attrs[i]["pool"].String() != "db" {
					t.Errorf("%q pool = %v", w.msg, attrs[i]["pool"])
				}
				for k, v := range w.values {
					if got := attrs[i][k].String(); got != v {
						t.Errorf("%q %s = %s, want %s", w.msg, k, got, v)
					}
				}
			}
		}
		_, closed := rec.find("fairpool: connection closed")
		var reasons []string
		for _, a := range closed {
			reasons = append(reasons, a["reason"].String())
		}
		if want := []string{"check failed", "reset failed", "discarded"}; !slices.Equal(reasons, want) {
			t.Errorf("closed reasons %v, want %v", reasons, want)
		}
	})
}

func TestNoLoggerBuildsNoRecords(t *testing.T) {
	p, _ := newTestPool(t, Config[*fakeConn]{MaxSize: 1})
	allocs := testing.AllocsPerRun(100, func() { p.events().closed(closeDiscarded, nil) })
	if allocs != 0 {
		t.Errorf("a discarded log record allocated %v times", allocs)
	}
}
