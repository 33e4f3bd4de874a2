package fairotel

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: a pool
// not closed, or a reader or callback still running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
