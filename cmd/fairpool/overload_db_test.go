package main

import (
	"fmt"
	"strings"
	"testing"
)

// A small overload run against each server (about 2 s each): 150 ms of
// arrivals at 0.7x and 3x. Every request is accounted for with no server
// errors; at 3x the fairpool-based pools turn callers away (ErrOverload)
// and database/sql does not, as it cannot know it will be late.
func TestOverloadDSNPostgres(t *testing.T) {
	dsn := requireServer(t, "FAIRPOOL_PG_DSN", defaultPGDSN)
	testOverloadDSN(t, dsn, []string{"fairpgx", "sqlpool"}, []string{"pgxpool", "sql"})
}

func TestOverloadDSNMySQL(t *testing.T) {
	dsn := requireServer(t, "FAIRPOOL_MYSQL_DSN", defaultMySQLDSN)
	testOverloadDSN(t, dsn, []string{"sqlpool"}, []string{"sql"})
}

func testOverloadDSN(t *testing.T, dsn string, shedding, others []string) {
	// Whether a 150 ms step at 3x sheds depends on the line having formed;
	// a stall of a loaded machine can keep it from forming once: one retry.
	var failures []string
	for attempt := 1; attempt <= 2; attempt++ {
		if failures = overloadDSNClaims(t, dsn, shedding, others); len(failures) == 0 {
			return
		}
		t.Logf("attempt %d: %s", attempt, strings.Join(failures, "; "))
	}
	t.Errorf("claims failed twice: %s", strings.Join(failures, "; "))
}

// overloadDSNClaims runs the small sweep on the server, checks what does
// not depend on timing and returns the shedding claims that failed.
func overloadDSNClaims(t *testing.T, dsn string, shedding, others []string) []string {
	var failed []string
	res, _ := runOverloadCmd(t, t.TempDir(), "sim", "overload", "--dsn", dsn, "--loads", "0.7,3",
		"--step", "150ms", "--capacity-time", "150ms", "--raw=false")
	if len(res.Overload.Runs) != len(shedding)+len(others) {
		t.Fatalf("%d pools ran, want %v and %v", len(res.Overload.Runs), shedding, others)
	}
	for _, r := range res.Overload.Runs {
		for _, s := range r.Steps {
			if s.InTime+s.Late+s.Failed+s.Errors != s.Arrivals || s.Errors != 0 {
				t.Errorf("%s at %gx: %d + %d + %d + %d errors (%s) != %d arrivals", r.Pool, s.Load,
					s.InTime, s.Late, s.Failed, s.Errors, s.FirstError, s.Arrivals)
			}
		}
		if r.HoldMs < ms(defaultOverload.Hold) {
			t.Errorf("%s: mean hold %.2f ms, shorter than the statement's sleep", r.Pool, r.HoldMs)
		}
		at3 := r.Steps[1]
		for _, name := range shedding {
			if r.Pool == name && at3.Shed == 0 {
				failed = append(failed, fmt.Sprintf("%s at 3x: nothing shed (%d failed)", name, at3.Failed))
			}
		}
		for _, name := range others {
			if r.Pool == name && at3.Shed != 0 {
				t.Errorf("%s at 3x: %d shed, but only fairpool knows ErrOverload", name, at3.Shed)
			}
		}
	}
	return failed
}
