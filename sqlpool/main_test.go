package sqlpool_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines outlive the tests: database/sql's
// and fairpool's own goroutines must all end once pools and DBs close.
// (The core module takes no dependencies, so no goleak here.)
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			fmt.Fprintf(os.Stderr, "%d goroutines left behind (%d before the tests):\n%s\n", n-before, before, strings.TrimSpace(stacks))
			code = 1
		}
	}
	os.Exit(code)
}
