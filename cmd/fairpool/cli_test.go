package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDefaults(t *testing.T) {
	opts, help, err := parseArgs([]string{"sim"})
	if err != nil || help != "" {
		t.Fatalf("parseArgs(sim) = %q, %v", help, err)
	}
	f, p := opts.fairness, opts.pinned
	if f == nil || p == nil {
		t.Fatalf("sim must run both experiments: fairness %v, pinned %v", f, p)
	}
	if !slices.Equal(f.Workers, []int{50}) || f.Size != 5 || f.Hold != time.Millisecond ||
		f.Requests != 20000 || f.Timeout != 5*time.Second || len(f.Pools) != len(fairnessPools) {
		t.Errorf("fairness defaults = %+v", *f)
	}
	if p.Sockets != 10 || p.Threads[0] != 10 || p.Threads[len(p.Threads)-1] != 100 || p.Unit != time.Millisecond ||
		p.HoldMin != 1 || p.HoldMax != 20 || p.Think != 1 || len(p.Pools) != len(pinnedPools) {
		t.Errorf("pinned defaults = %+v", *p)
	}
	if opts.out != "./fairpool-sim/" || opts.json || !opts.raw {
		t.Errorf("out %q json %v raw %v; want ./fairpool-sim/, false, true", opts.out, opts.json, opts.raw)
	}
}

func TestParseFlagsAndFull(t *testing.T) {
	opts, _, err := parseArgs(strings.Fields("sim fairness -n 5,10 -s 3 --hold 2ms --requests 100 --timeout 1s --pools chan,fairpool --out x --json --raw=false"))
	if err != nil {
		t.Fatal(err)
	}
	f := opts.fairness
	if opts.pinned != nil || !slices.Equal(f.Workers, []int{5, 10}) || f.Size != 3 || f.Hold != 2*time.Millisecond ||
		f.Requests != 100 || f.Timeout != time.Second || !slices.Equal(f.Pools, []string{"chan", "fairpool"}) ||
		opts.out != "x" || !opts.json || opts.raw {
		t.Errorf("parsed %+v, %+v", *opts, *f)
	}

	// --full fills in the experiment's original scale for what was not given, and only that.
	opts, _, err = parseArgs(strings.Fields("sim fairness --full --workers 50"))
	if err != nil {
		t.Fatal(err)
	}
	if f := opts.fairness; !slices.Equal(f.Workers, []int{50}) || f.Hold != 10*time.Millisecond || f.Requests != 100000 {
		t.Errorf("--full --workers 50 gave %+v", *f)
	}
	opts, _, err = parseArgs(strings.Fields("sim pinned --full --seed 7 --threads 10,20"))
	if err != nil {
		t.Fatal(err)
	}
	if p := opts.pinned; !slices.Equal(p.Threads, []int{10, 20}) || p.Duration != 10000 || p.Seed != 7 {
		t.Errorf("pinned --full gave %+v", *p)
	}
}

// Bad command lines get one line naming the problem, and no options.
func TestParseRejects(t *testing.T) {
	for _, c := range []struct{ args, want string }{
		{"", "no command"},
		{"run", `unknown command "run"`},
		{"sim bogus", `unknown experiment "bogus"`},
		{"sim fairness --size 0", "--size must be >= 1, got 0"},
		{"sim fairness -s -1", "--size must be >= 1"},
		{"sim fairness -n 0", "every N must be >= 1"},
		{"sim fairness -n 10,x", `"x" is not a whole number`},
		{"sim fairness --hold -1ms", "--hold must be > 0, got -1ms"},
		{"sim fairness --timeout 0s", "--timeout must be > 0"},
		{"sim fairness --requests 0", "--requests must be >= 1"},
		{"sim fairness --pools fairpool,nope", `unknown pool "nope"`},
		{"sim fairness --pools chan,chan", `pool "chan" named twice`},
		{"sim pinned --sockets 0", "--sockets must be >= 1"},
		{"sim pinned --unit -1ms", "--unit must be > 0"},
		{"sim pinned --hold-min 5 --hold-max 4", "--hold-max must be >= 1 and >= --hold-min (5), got 4"},
		{"sim pinned --think -1", "--think must be >= 0"},
		{"sim pinned --duration 0", "--duration must be >= 1"},
		{"sim pinned --pools signal,fair", `unknown pool "fair"`},
		{"sim --workers 5", "flag provided but not defined: -workers"},
		{"sim --out=", "--out must not be empty"},
		{"sim fairness extra", `unexpected argument "extra"`},
	} {
		opts, help, err := parseArgs(strings.Fields(c.args))
		var ue *usageError
		if !errors.As(err, &ue) || opts != nil || help != "" {
			t.Errorf("%q: got %v, %q, %v; want a usage error", c.args, opts, help, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
			t.Errorf("%q: error %q, want one line containing %q", c.args, msg, c.want)
		}
	}
}

// Every flag of every command is described in that command's --help.
func TestUsageDescribesEveryFlag(t *testing.T) {
	for exp, usage := range map[string]string{"": simUsage, "fairness": fairnessUsage, "pinned": pinnedUsage} {
		var fc fairnessConfig
		var pc pinnedConfig
		var full bool
		var dsn string
		fs := newFlagSet(exp, &options{}, &full, &dsn, &fc, &pc)
		fs.VisitAll(func(f *flag.Flag) {
			name := " --" + f.Name + " " // "  --hold h", "  -n, --workers list"
			if len(f.Name) == 1 {
				name = "  -" + f.Name + ", "
			}
			if !strings.Contains(usage, name) {
				t.Errorf("sim %s --help does not describe %q", exp, name)
			}
		})
		_, help, err := parseArgs(strings.Fields("sim " + exp + " --help"))
		if err != nil || help != usage {
			t.Errorf("sim %s --help gave %v and another text", exp, err)
		}
	}
	for _, p := range fairnessPools {
		if !strings.Contains(fairnessUsage, p.name+" ") {
			t.Errorf("fairness --help does not list pool %s", p.name)
		}
	}
	for _, p := range pinnedPools {
		if !strings.Contains(pinnedUsage, p.name+" ") {
			t.Errorf("pinned --help does not list pool %s", p.name)
		}
	}
}

// A bad flag exits with status 2 and one line on stderr, before anything is
// created or run.
func TestRunBadFlagsExit2WritesNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"sim", "fairness", "--size", "0", "--out", out},
		{"sim", "pinned", "--pools", "nope", "--out", out},
		{"sim", "fairness", "--out", filepath.Join(file, "sub")}, // --out under a file: unwritable
		{"sim", "pinned", "--out", file},                         // --out is a file
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, newProgress(&stderr, false, 80))
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if lines := strings.Count(stderr.String(), "\n"); lines != 1 || stdout.Len() != 0 {
			t.Errorf("%q: stderr %q, stdout %q; want one line on stderr", args, stderr.String(), stdout.String())
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--out was created by a run with bad flags: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries in the temp dir, want only the file", len(entries))
	}
}

func TestRunHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"sim", "-h"}, {"sim", "pinned", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, newProgress(&stderr, false, 80)); code != exitOK {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
		if !strings.Contains(stdout.String(), "Usage") || stderr.Len() != 0 {
			t.Errorf("%q: stdout %q stderr %q", args, stdout.String(), stderr.String())
		}
	}
}
