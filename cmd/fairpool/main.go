// Command fairpool runs the experiments that show why fairpool exists:
// `fairpool sim` measures fairness (wait times in fair and unfair pools),
// pinned sockets (socket-time wasted by a pool that pins threads to
// sockets), overload and a fleet of processes sharing a server, against
// the pools a Go programmer would otherwise use, and writes tables,
// plots and raw data. Run `fairpool --help` for the commands and flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fd := int(os.Stderr.Fd())
	tty := term.IsTerminal(fd)
	width := 0
	if tty {
		width, _, _ = term.GetSize(fd)
	}
	code := run(ctx, os.Args[1:], os.Stdout, newProgress(os.Stderr, tty, width))
	stop()
	os.Exit(code)
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// run is the whole command, apart from the process: arguments in, exit
// status out, tables on stdout, progress and errors on prog's writer.
func run(ctx context.Context, args []string, stdout io.Writer, prog *progress) int {
	stderr := prog.w
	if len(args) >= 2 && args[0] == "sim" && args[1] == "fleet" {
		return runFleet(ctx, args[2:], stdout, stderr) // see simfleet.go
	}
	opts, help, err := parseArgs(args)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitUsage
	}
	if help != "" {
		fmt.Fprint(stdout, help)
		return exitOK
	}
	created, err := prepareOut(opts.out)
	if err != nil {
		fmt.Fprintf(stderr, "fairpool %s: --out %q is not a writable directory: %v\n", opts.command, opts.out, err)
		return exitUsage
	}
	paths, err := simulate(ctx, opts, stdout, prog)
	if err != nil {
		if created {
			os.Remove(opts.out) // only if still empty: nothing was written
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			fmt.Fprintf(stderr, "fairpool %s: interrupted; nothing written\n", opts.command)
			return exitInterrupted
		}
		fmt.Fprintf(stderr, "fairpool %s: %v\n", opts.command, err)
		return exitFailed
	}
	if !opts.json {
		fmt.Fprintf(stdout, "\nWrote:\n  %s\n", strings.Join(paths, "\n  "))
	}
	return exitOK
}

// simulate runs the experiments opts asks for, prints their report and
// writes the files. It returns the paths written.
func simulate(ctx context.Context, opts *options, stdout io.Writer, prog *progress) ([]string, error) {
	if opts.overload != nil {
		return simulateOverload(ctx, opts, stdout, prog)
	}
	if f := opts.fairness; f != nil && f.DB != nil {
		// Before anything is printed: a server that is down fails the run in
		// one line.
		if err := f.DB.check(ctx, f.Timeout); err != nil {
			return nil, err
		}
	}
	res := newResults("fairpool " + opts.command)
	start := time.Now()
	if !opts.json {
		fmt.Fprintf(stdout, "%s on %s/%s, %d CPUs, GOMAXPROCS %d, %s", res.Command, res.OS, res.Arch, res.CPUs, res.GOMAXPROCS, res.Go)
		if res.LoadAvg != "" {
			fmt.Fprintf(stdout, ", load average %s", res.LoadAvg)
		}
		fmt.Fprintln(stdout)
	}
	if cfg := opts.fairness; cfg != nil {
		runs, err := runFairness(ctx, cfg, prog)
		if err != nil {
			return nil, err
		}
		res.Fairness = &fairnessResults{Config: cfg, Runs: runs}
		if !opts.json {
			fmt.Fprintln(stdout)
			printFairness(stdout, cfg, runs)
		}
	}
	if cfg := opts.pinned; cfg != nil {
		runs, err := runPinned(ctx, cfg, prog)
		if err != nil {
			return nil, err
		}
		res.Pinned = &pinnedResults{Config: cfg, Runs: runs}
		if !opts.json {
			fmt.Fprintln(stdout)
			printPinned(stdout, cfg, runs)
		}
	}
	res.Seconds = time.Since(start).Seconds()
	files, err := buildFiles(res, opts.raw)
	if err != nil {
		return nil, err
	}
	paths, err := writeFiles(opts.out, files)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", opts.out, err)
	}
	if opts.json {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "%s\n", data)
	}
	return paths, nil
}
