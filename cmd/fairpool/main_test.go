package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any test left a goroutine behind: every worker,
// thread, progress bar and pool goroutine must have ended once the tests
// return. Pools close asynchronously (database/sql's opener, for one), so
// it waits up to 5 s before it calls anything a leak.
func TestMain(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if leaked := leftGoroutines(base, 5*time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left behind by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leftGoroutines waits until no more than base goroutines run and returns
// "" or, after wait, the stacks of the goroutines still running.
func leftGoroutines(base int, wait time.Duration) string {
	deadline := time.Now().Add(wait)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			return strings.TrimSpace(string(buf))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ""
}
