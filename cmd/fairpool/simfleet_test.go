package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestFleetArgs(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--dsn", "postgres://x", "--procs", "1"},
		{"--dsn", "postgres://x", "--duration", "10ms"},
		{"--dsn", "postgres://x", "--budget", "0"},
		{"--dsn", "postgres://x", "--bogus"},
	} {
		if _, err := parseFleetArgs(args); err == nil {
			t.Errorf("parseFleetArgs(%q) accepted", args)
		}
	}
	o, err := parseFleetArgs([]string{"--dsn", "postgres://x"})
	if err != nil || o.procs != 4 || o.max != 8 || o.budget != 12 || o.goroutines != 16 {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	var out bytes.Buffer
	if code := runFleet(context.Background(), []string{"--help"}, &out, &out); code != exitOK || !strings.Contains(out.String(), "--budget") {
		t.Errorf("--help: %d %q", code, out.String())
	}
}

// A short fleet run: 3 processes of this test binary × 4 connections,
// budget 6. The server never sees more than 6 + 3 sessions of the
// budgeted fleet, no call fails, and the survivors take over.
func TestSimFleetPostgres(t *testing.T) {
	dsn := requireServer(t, "FAIRPOOL_PG_DSN", defaultPGDSN)
	var out, errOut bytes.Buffer
	code := runFleet(context.Background(), []string{"--dsn", dsn, "--procs", "3", "--max", "4", "--budget", "6",
		"--goroutines", "8", "--duration", "2s"}, &out, &errOut)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	s := out.String()
	runs := strings.Split(s, "== without a budget")
	if len(runs) != 2 {
		t.Fatalf("want a run with a budget and one without:\n%s", s)
	}
	most := regexp.MustCompile(`most sessions the server saw: (\d+)`).FindStringSubmatch(runs[0])
	if n, _ := strconv.Atoi(most[1]); n == 0 || n > 6+3 {
		t.Errorf("budgeted run: server saw %s sessions, want 1 to 9:\n%s", most[1], s)
	}
	for _, m := range regexp.MustCompile(`failed (\d+)`).FindAllStringSubmatch(s, -1) {
		if m[1] != "0" {
			t.Errorf("calls failed:\n%s", s)
		}
	}
	if !strings.Contains(runs[0], "took the dead process's share in") {
		t.Errorf("no takeover in the budgeted run:\n%s", s)
	}
}
