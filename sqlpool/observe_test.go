package sqlpool_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fairpool/fairpool"
	"github.com/fairpool/fairpool/sqlpool"
)

// TestObserveSeesEachLease: an Observer added to a sqlpool.Pool hears of
// the open, the hand-out and the end of each WithConn, and nothing once
// stopped.
func TestObserveSeesEachLease(t *testing.T) {
	db, _ := newFakeDB(t)
	p := newPool(t, db, sqlpool.Config{MaxSize: 1})
	var opened, acquired, released atomic.Int64
	stop := p.Observe(fairpool.Observer{
		Opened:   func(time.Duration) { opened.Add(1) },
		Acquired: func(time.Duration) { acquired.Add(1) },
		Released: func(time.Duration) { released.Add(1) },
	})
	use := func() {
		if err := p.WithConn(context.Background(), func(context.Context, *sql.Conn) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	use()
	use()
	if opened.Load() != 1 || acquired.Load() != 2 || released.Load() != 2 {
		t.Errorf("opened %d, acquired %d, released %d; want 1, 2, 2", opened.Load(), acquired.Load(), released.Load())
	}
	stop()
	use()
	if acquired.Load() != 2 || released.Load() != 2 {
		t.Errorf("after stop: acquired %d, released %d; want no more", acquired.Load(), released.Load())
	}
}
