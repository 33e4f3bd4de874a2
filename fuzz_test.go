package fairpool

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// FuzzOps runs a sequence of operations, read from the fuzz input, from one
// goroutine, and checks the pool against a model after each: how many
// connections are open, idle and in use, and which error each call returns.
func FuzzOps(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 0, 2, 1})
	f.Add([]byte{2, 0, 0, 0, 4, 1, 4, 5, 0, 5, 0, 3, 2, 6})
	f.Add([]byte{0, 4, 4, 0, 0, 2, 2, 0, 1, 3, 6, 6})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 || len(ops) > 200 {
			return
		}
		synctest.Test(t, func(t *testing.T) { runModel(t, ops) })
	})
}

type model struct {
	maxSize, open, idle int
	failing             bool
}

func runModel(t *testing.T, ops []byte) {
	m := model{maxSize: int(ops[0]%4) + 1}
	fac := newFactory(t, m.maxSize)
	p := newTestPoolWith(t, fac, Config[*fakeConn]{MaxSize: m.maxSize, AcquireTimeout: time.Second})
	var held, done []*Lease[*fakeConn]
	pick := func(ls []*Lease[*fakeConn], b byte) int { return int(b) % len(ls) }

	for i, op := range ops[1:] {
		arg := byte(i * 7)
		switch op % 7 {
		case 0, 6: // Acquire, or With holding nothing afterwards
			wantErr := error(nil)
			switch {
			case m.idle > 0:
				m.idle--
			case m.open < m.maxSize && m.failing:
				wantErr = errOpen
			case m.open < m.maxSize:
				m.open++
			default:
				wantErr = ErrTimeout
			}
			var l *Lease[*fakeConn]
			var err error
			if op%7 == 0 {
				l, err = p.Acquire(bg())
			} else {
				err = p.With(bg(), func(context.Context, *fakeConn) error { return nil })
			}
			if !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
				t.Fatalf("op %d: Acquire err %v, model wants %v", i, err, wantErr)
			}
			if l != nil {
				held = append(held, l)
			} else if err == nil {
				m.idle++ // With gave it back
			}
		case 1, 2: // Release or Discard a held lease
			if len(held) == 0 {
				continue
			}
			k := pick(held, arg)
			l := held[k]
			held = append(held[:k], held[k+1:]...)
			done = append(done, l)
			if op%7 == 1 {
				l.Release()
				m.idle++
			} else {
				l.Discard()
				m.open--
			}
		case 3: // a late call on an ended lease changes nothing
			if len(done) == 0 {
				continue
			}
			l := done[pick(done, arg)]
			if arg%2 == 0 {
				l.Release()
			} else {
				l.Discard()
			}
		case 4: // TryAcquire
			l, err := p.TryAcquire(bg())
			if m.idle > 0 {
				if err != nil {
					t.Fatalf("op %d: TryAcquire with %d idle: %v", i, m.idle, err)
				}
				m.idle--
				held = append(held, l)
				break
			}
			if !errors.Is(err, ErrExhausted) {
				t.Fatalf("op %d: TryAcquire = %v, want ErrExhausted", i, err)
			}
			if m.open < m.maxSize && !m.failing {
				m.open++ // opened in the background, for later
				m.idle++
			}
		case 5:
			m.failing = !m.failing
			if m.failing {
				fac.setFail(errOpen)
			} else {
				fac.setFail(nil)
			}
		}
		synctest.Wait()
		s := p.Stats()
		if s.Open != m.open || s.Idle != m.idle || s.InUse != len(held) || s.Waiting != 0 {
			t.Fatalf("op %d (%d): pool %+v, model open %d idle %d held %d", i, op%7, s, m.open, m.idle, len(held))
		}
		checkInv(t, p)
	}
	for _, l := range held {
		l.Release()
	}
}
