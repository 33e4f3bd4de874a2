package fairpool

import (
	"context"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// observed records what an Observer was told, in order.
type observed struct {
	mu     sync.Mutex
	events []string
}

func (o *observed) add(kind string, d time.Duration) {
	o.mu.Lock()
	o.events = append(o.events, kind+" "+d.String())
	o.mu.Unlock()
}

func (o *observed) observer() Observer {
	return Observer{
		Acquired: func(d time.Duration) { o.add("acquired", d) },
		Opened:   func(d time.Duration) { o.add("opened", d) },
		Released: func(d time.Duration) { o.add("released", d) },
	}
}

func (o *observed) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.events
	o.events = nil
	return e
}

// slowOpen opens after 10ms of (fake) time.
func slowOpen(ctx context.Context) (*fakeConn, error) {
	time.Sleep(10 * time.Millisecond)
	return &fakeConn{}, nil
}

// observeScript runs the same sequence on a pool of one connection, through
// acquire (its Acquire, with its lease's Release and Discard): the first
// acquire waits for the open, the second for the first's release after
// 30ms, the third takes the idle connection at once and discards it; then,
// after stop, a fourth must report nothing, its open included.
func observeScript(t *testing.T, observe func(Observer) func(), acquire func() (release, discard func(), err error)) {
	t.Helper()
	var o observed
	stop := observe(o.observer())
	rel1, _, err := acquire()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rel2, _, err := acquire()
		if err != nil {
			t.Error(err)
			return
		}
		time.Sleep(5 * time.Millisecond)
		rel2()
	}()
	time.Sleep(30 * time.Millisecond)
	rel1()
	<-done
	_, dis3, err := acquire()
	if err != nil {
		t.Fatal(err)
	}
	dis3()
	want := []string{
		"opened 10ms", "acquired 10ms", // waited for the open
		"released 30ms", "acquired 30ms", // the second waited for that release
		"released 5ms",
		"acquired 0s", // idle: no wait
		"released 0s",
	}
	if got := o.take(); !slices.Equal(got, want) {
		t.Errorf("observed %q, want %q", got, want)
	}
	stop()
	stop() // twice is allowed
	rel4, _, err := acquire()
	if err != nil {
		t.Fatal(err)
	}
	rel4()
	if got := o.take(); len(got) != 0 {
		t.Errorf("after stop, still observed %q", got)
	}
}

func sameMultiset(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestObserverSeesEachWaitOpenAndUse: every hand-out with its wait, every
// open with its time, every lease's end with its hold, and nothing once
// stopped.
func TestObserverSeesEachWaitOpenAndUse(t *testing.T) {
	t.Run("Pool", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p, err := New(Config[*fakeConn]{MaxSize: 1, Open: slowOpen})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(bg())
			observeScript(t, p.Observe, func() (func(), func(), error) {
				l, err := p.Acquire(bg())
				if err != nil {
					return nil, nil, err
				}
				return l.Release, l.Discard, nil
			})
		})
	})
	t.Run("Group", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			g, err := NewGroup(GroupConfig[string, *fakeConn]{PerKeyMax: 1,
				Open: func(ctx context.Context, _ string) (*fakeConn, error) { return slowOpen(ctx) }})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close(bg())
			observeScript(t, g.Observe, func() (func(), func(), error) {
				l, err := g.Acquire(bg(), "a")
				if err != nil {
					return nil, nil, err
				}
				return l.Release, l.Discard, nil
			})
		})
	})
}

// TestObserverAddedMidLeaseReportsNoUse: a lease handed out before the
// Observer was added has no start to measure from: its end is not
// reported, rather than reported wrong.
func TestObserverAddedMidLeaseReportsNoUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Config[*fakeConn]{MaxSize: 2, Open: slowOpen})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close(bg())
		l, err := p.Acquire(bg())
		if err != nil {
			t.Fatal(err)
		}
		var o observed
		defer p.Observe(o.observer())()
		time.Sleep(time.Millisecond)
		l.Release()
		if got := o.take(); len(got) != 0 {
			t.Errorf("observed %q for a lease taken before the Observer", got)
		}
	})
}

// TestGroupObserverCountsEachKeyOfAcquireAll: AcquireAll of two keys is
// two hand-outs, as Stats counts it, each with the request's wait.
func TestGroupObserverCountsEachKeyOfAcquireAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := NewGroup(GroupConfig[string, *fakeConn]{PerKeyMax: 1,
			Open: func(ctx context.Context, _ string) (*fakeConn, error) { return slowOpen(ctx) }})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close(bg())
		var o observed
		defer g.Observe(o.observer())()
		ls, err := g.AcquireAll(bg(), "a", "b")
		if err != nil {
			t.Fatal(err)
		}
		ls.Release()
		want := []string{"opened 10ms", "opened 10ms", "acquired 10ms", "acquired 10ms", "released 0s", "released 0s"}
		if got := o.take(); !sameMultiset(got, want) {
			t.Errorf("observed %q, want (in any order) %q", got, want)
		}
	})
}
