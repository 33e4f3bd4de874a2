package fairpool

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Scenes the tracking tests of Pool (track_test.go) and Group
// (group_track_test.go) both play: each test gives its own acquires and
// checks what is its own.

// here returns the caller's "file:line" for the line after its call,
// where the tests put the Acquire whose call site they check.
func here() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s:%d", file, line+1)
}

// leakWarnedOnce plays out, in a synctest bubble, a lease taken at site
// and held past a LeakThreshold of 1s while another (released by short)
// comes back in time. It checks the one warning that must follow, for the
// held lease only, naming site and a stack through every one of
// stackHas, and returns that warning's attributes.
func leakWarnedOnce(t *testing.T, rec *recorder, site string, short func(), stackHas ...string) map[string]slog.Value {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	short()
	time.Sleep(2 * time.Second)
	synctest.Wait()
	time.Sleep(10 * time.Second) // no second warning for the same lease
	synctest.Wait()
	_, attrs := rec.find("fairpool: lease held too long")
	if len(attrs) != 1 {
		t.Fatalf("%d leak warnings, want 1", len(attrs))
	}
	a := attrs[0]
	stack := a["stack"].String()
	for _, want := range stackHas {
		if !strings.Contains(stack, want) {
			t.Errorf("warning's stack lacks %s:\n%s", want, stack)
		}
	}
	if a["caller"].String() != site {
		t.Errorf("warning caller %q, want %q", a["caller"], site)
	}
	if held := a["held_for"].Duration(); held < time.Second || held > 1250*time.Millisecond {
		t.Errorf("held_for %v, want within a quarter threshold past 1s", held)
	}
	return a
}

// releaser is a Lease or a GroupLease.
type releaser interface {
	Release()
	Discard()
}

// acquireBehindAClose is, inside a With, a wait for the room a closing
// connection holds: it discards a lease from first, whose Close blocks
// until release is closed a second later, and then takes one with second,
// which must get the room when that Close returns: not fail as a
// deadlock, nor get it sooner.
func acquireBehindAClose[L releaser](t *testing.T, release chan struct{}, first, second func() (L, error)) error {
	t.Helper()
	l, err := first()
	if err != nil {
		return err
	}
	l.Discard()
	synctest.Wait()
	go func() { time.Sleep(time.Second); close(release) }()
	start := time.Now()
	l, err = second()
	if err != nil {
		return err
	}
	if waited := time.Since(start); waited != time.Second {
		t.Errorf("waited %v for the closing connection's room, want 1s", waited)
	}
	l.Release()
	return nil
}

// timeoutBehindHolders plays out, in a synctest bubble, an Acquire (wait)
// that times out after 1s behind two holders: another goroutine's lease,
// taken by other a second before, and one the caller took with mine. Each
// of other and mine returns the call site of its Acquire and the release
// of what it took. The TimeoutError must name both holders, oldest first,
// with how long each was held, and count the caller's own; check, run
// while both still hold, sees it for what the test alone asserts.
func timeoutBehindHolders(t *testing.T, other, mine func() (site string, release func()), wait func() error, check func(te *TimeoutError, otherSite, mySite string)) {
	t.Helper()
	sites := make(chan string)
	done := make(chan struct{})
	go func() {
		site, release := other()
		sites <- site
		<-done
		release()
	}()
	otherSite := <-sites
	time.Sleep(time.Second)
	mySite, release := mine()
	err := wait()
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if len(te.Holders) != 2 || te.Holders[0].Caller != otherSite || te.Holders[1].Caller != mySite || te.HeldByCaller != 1 {
		t.Errorf("holders %+v, held by caller %d", te.Holders, te.HeldByCaller)
	}
	msg := err.Error()
	for _, want := range []string{otherSite + " for 2s", mySite + " for 1s", "this context already holds 1 leases of this pool"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	check(te, otherSite, mySite)
	release()
	close(done)
}

// wantCallerOfHandler checks that callerOf names main.handler's line in a
// stack where the handler stands between frames of the package: inner, the
// way down from the handler's Acquire to currentCaller, and outer, package
// code that called the handler (a callback's runner). Each frame is
// "function file:line".
func wantCallerOfHandler(t *testing.T, inner, outer []string) {
	t.Helper()
	frames := []string{"github.com/fairpool/fairpool.currentCaller() /src/track.go:10"}
	frames = append(frames, inner...)
	frames = append(frames, "main.handler(0x1) /app/main.go:42")
	frames = append(frames, outer...)
	var b strings.Builder
	b.WriteString("goroutine 7 [running]:\n")
	for i, fr := range frames {
		fn, file, _ := strings.Cut(fr, " ")
		fmt.Fprintf(&b, "%s\n\t%s +0x%x\n", fn, file, i+1)
	}
	if got := callerOf(b.String()); got != "/app/main.go:42" {
		t.Errorf("callerOf = %q of\n%s", got, b.String())
	}
}
