package main

import (
	"fmt"
	"strings"
)

// The --help texts. A test checks that every flag of every command is
// described here, so the texts cannot fall behind the flags.

const topUsage = `fairpool: see fair connection pooling for yourself.

Usage:
  fairpool sim [flags]            both experiments (fairness, pinned sockets), scaled to run in under a minute
  fairpool sim fairness [flags]   the fairness experiment alone, with every knob
  fairpool sim pinned [flags]     the pinned-sockets experiment alone, with every knob
  fairpool sim --dsn DSN          the fairness experiment against a PostgreSQL, MySQL or MariaDB server
  fairpool sim overload [flags]   open-loop overload, 0.5x to 3x capacity, 100ms deadlines: who is
                                  served in time, who late, how fast the rest fail (about 45 s)
  fairpool sim overload --burst   a 5 s burst at 3x: how fast the waits come back (about 55 s)
  fairpool sim overload --dsn DSN the same against a PostgreSQL, MySQL or MariaDB server
  fairpool sim fleet --dsn URL    processes of one app sharing a PostgreSQL, with and without a fleet budget
  fairpool help                   this text; add --help to a command for its flags

From the repository root: go run ./cmd/fairpool sim
`

// The two-line explanations of the experiments, shared by the texts below.
const (
	fairnessAbout = `  fairness  N goroutines share S connections; each request holds one for h.
            How long do requests wait in fairpool, database/sql, puddle, a channel, an unfair queue?`
	pinnedAbout = `  pinned    A driver pool pins each thread to one socket and wakes waiters with
            signal or broadcast: how much socket-time goes unused, against fairpool, as N grows?`
)

const commonFlags = `  --out dir            plots (PNG, SVG), raw data (CSV) and results.json go here (default ./fairpool-sim/)
  --json               print results.json on stdout instead of the tables
  --raw                write the raw data: every wait, every run (default true; --raw=false skips it)
  --full               the experiments' original scale for every flag not given; fairness: N=5,10,25,50,100,
                       h=10ms, 100,000 requests (about 1.7 hours); pinned: N=10,15,...,100,
                       10,000 units per run (about 10 minutes)
  -h, --help           this text`

const exitStatus = `Exit status: 0 done, 1 a run failed, 2 bad flags (nothing is written), 130 interrupted.`

// dsnFlag and dsnExitStatus are the --dsn parts of the sim and fairness
// texts.
const dsnFlag = `  --dsn DSN            run the fairness experiment against this server: each request holds
                       its connection with SELECT pg_sleep(h) or SELECT SLEEP(h). PostgreSQL:
                       postgres://user:pass@host:port/db?sslmode=disable (or postgresql://)
                       or "host=... user=... dbname=..."; MySQL/MariaDB:
                       mysql://user:pass@host:port/db or user:pass@tcp(host:port)/db.
                       pool_* parameters are ignored: -s sizes every pool`

const dsnExitStatus = `Exit status: 0 done; 1 a run failed, or the --dsn server did not answer within --timeout
(default 5s) or refused the login; 2 bad flags or a --dsn that does not parse
(nothing is written); 130 interrupted.`

const simUsage = `Usage: fairpool sim [--dsn DSN] [--out dir] [--json] [--raw=false] [--full]

Runs both experiments at a scaled default, prints a table and histograms for
each, and writes plots, raw data and results.json to --out.

` + fairnessAbout + `
` + pinnedAbout + `

With --dsn, only the fairness experiment runs, against the server: N=64
goroutines over S=8 connections, h=1ms, 5000 requests per pool, comparing
fairpgx, sqlpool, database/sql and pgxpool (PostgreSQL), or sqlpool and
database/sql (MySQL, MariaDB). The pinned-sockets experiment is about a driver's sockets, not
a server, and does not run.

Use "fairpool sim fairness --help" and "fairpool sim pinned --help" for every knob.

Flags:
` + dsnFlag + `
` + commonFlags + `

` + dsnExitStatus + `
`

var fairnessUsage = `Usage: fairpool sim fairness [flags]

` + fairnessAbout + `

Every request's wait is recorded. In a fair pool every wait is near the ideal
(N/S)·h; in an unfair one some requests never wait and others starve.
Pools are real code run by real goroutines over no-op connections, or, with
--dsn, over real connections to a server, each request holding its
connection with the server's sleep function for h.

Flags:
  -n, --workers list   goroutines N; a list sweeps it, e.g. 5,10,25,50,100 (default 50; --dsn 64)
  -s, --size S         connections in each pool (default 5; --dsn 8)
  --hold h             how long a request holds its connection (default 1ms)
  --requests R         requests per pool and N, split evenly over the goroutines (default 20000; --dsn 5000)
  --timeout d          acquire timeout; a request that waits longer gives up and counts as a timeout (default 5s)
  --pools list         pools to compare, in order (default all that run where the experiment runs).
                       In-process:
` + fairnessPoolLines() + `                       With --dsn (fairpgx and pgxpool on PostgreSQL only):
` + dbPoolLines() + dsnFlag + `
` + commonFlags + `

Output: a table of p1/p50/p90/p99/p99.9/max wait and timeouts per pool (with
--dsn also the mean hold and requests per second), a histogram per pool;
fairness.png/.svg (histograms at the largest N), fairness-vs-n.png/.svg (for
a sweep), fairness-waits.csv, results.json.

` + dsnExitStatus + `
`

var pinnedUsage = `Usage: fairpool sim pinned [flags]

` + pinnedAbout + `

Each thread holds its socket for a random number of time units in
[hold-min, hold-max], thinks for --think units and asks again. Unused
socket-time is measured exactly, from the threads' side, over --duration
units after --warmup units.

Flags:
  -n, --threads list   threads N; a list sweeps it (default 10,20,30,40,50,60,80,100)
  -s, --sockets S      sockets in the pool (default 10)
  --unit d             wall-clock length of one time unit (default 1ms)
  --hold-min u         shortest hold, in units (default 1)
  --hold-max u         longest hold, in units (default 20)
  --think u            think time between holds, in units (default 1)
  --warmup u           units run before measuring: sockets are created, threads pinned (default 50)
  --duration u         units measured per run (default 600)
  --seed n             seed of the random hold times and socket choices, so runs repeat (default 1)
  --pools list         pools to compare, in order (default all):
` + pinnedPoolLines() + commonFlags + `

Output: unused socket-time (%) against N per pool, next to the floor that
thinking alone leaves unused; pinned.png/.svg, pinned.csv, results.json.

` + exitStatus + `
`

// fairnessPoolLines and pinnedPoolLines list the pools of --pools from the
// registries, one line each with its description.
func fairnessPoolLines() string {
	var b strings.Builder
	for _, p := range fairnessPools {
		fmt.Fprintf(&b, "%25s%-15s%s\n", "", p.name, p.desc)
	}
	return b.String()
}

func dbPoolLines() string {
	var b strings.Builder
	for _, p := range dbPools {
		fmt.Fprintf(&b, "%25s%-15s%s\n", "", p.name, p.desc)
	}
	return b.String()
}

func pinnedPoolLines() string {
	var b strings.Builder
	for _, p := range pinnedPools {
		fmt.Fprintf(&b, "%25s%-11s%s\n", "", p.name, p.desc)
	}
	return b.String()
}
