package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// results is results.json: every figure of a run, for scripts that compare
// runs. Durations are in the unit their name ends with.
type results struct {
	Command    string           `json:"command"`
	Started    time.Time        `json:"started"`
	Seconds    float64          `json:"seconds"`
	Go         string           `json:"go"`
	OS         string           `json:"os"`
	Arch       string           `json:"arch"`
	CPUs       int              `json:"cpus"`
	GOMAXPROCS int              `json:"gomaxprocs"`
	LoadAvg    string           `json:"loadavg,omitempty"` // /proc/loadavg at the start: a busy machine shows in the tails
	Fairness   *fairnessResults `json:"fairness,omitempty"`
	Pinned     *pinnedResults   `json:"pinned,omitempty"`
	Files      []string         `json:"files"` // written beside results.json
}

// fairnessResults is the fairness experiment in results.json.
type fairnessResults struct {
	Config *fairnessConfig `json:"config"`
	Runs   []*fairnessRun  `json:"runs"`
}

// pinnedResults is the pinned experiment in results.json.
type pinnedResults struct {
	Config *pinnedConfig `json:"config"`
	Runs   []*pinnedRun  `json:"runs"`
}

// newResults starts the record of a run of command.
func newResults(command string) *results {
	return &results{Command: command, Started: time.Now().UTC().Truncate(time.Second),
		Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadAvg: loadAvg()}
}

// loadAvg returns the 1, 5 and 15 minute load averages on Linux, or "".
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	if f := strings.Fields(string(data)); len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// outFile is one file to write into --out.
type outFile struct {
	name string
	data []byte
}

// buildFiles renders every plot, the raw data (if raw) and results.json.
// results.json comes last so it can list the others.
func buildFiles(res *results, raw bool) ([]outFile, error) {
	var files []outFile
	add := func(name string, data []byte, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		files = append(files, outFile{name, data})
		return nil
	}
	if f := res.Fairness; f != nil {
		largest := slicesMax(f.Config.Workers)
		for _, format := range plotFormats {
			data, err := fairnessHistFigure(f.Config, largest, runsAt(f.Runs, largest), format)
			if err := add("fairness."+format, data, err); err != nil {
				return nil, err
			}
			if len(f.Config.Workers) > 1 {
				data, err := fairnessSweepFigure(f.Config, f.Runs, format)
				if err := add("fairness-vs-n."+format, data, err); err != nil {
					return nil, err
				}
			}
		}
		if raw {
			files = append(files, outFile{"fairness-waits.csv", fairnessCSV(f.Runs)})
		}
	}
	if p := res.Pinned; p != nil {
		for _, format := range plotFormats {
			data, err := pinnedFigure(p.Config, p.Runs, format)
			if err := add("pinned."+format, data, err); err != nil {
				return nil, err
			}
		}
		if raw {
			files = append(files, outFile{"pinned.csv", pinnedCSV(p.Runs)})
		}
	}
	for _, f := range files {
		res.Files = append(res.Files, f.name)
	}
	res.Files = append(res.Files, "results.json")
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(files, outFile{"results.json", append(data, '\n')}), nil
}

// slicesMax returns the largest of ns, which is not empty.
func slicesMax(ns []int) int {
	m := ns[0]
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}

// fairnessCSV is every wait of every run, one row per request that got a
// connection, ascending within a run.
func fairnessCSV(runs []*fairnessRun) []byte {
	var b bytes.Buffer
	b.WriteString("workers,pool,wait_ns\n")
	for _, r := range runs {
		prefix := strconv.Itoa(r.Workers) + "," + r.Pool + ","
		for _, d := range r.waits {
			b.WriteString(prefix)
			b.WriteString(strconv.FormatInt(int64(d), 10))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// pinnedCSV is one row per run of the pinned experiment.
func pinnedCSV(runs []*pinnedRun) []byte {
	var b bytes.Buffer
	b.WriteString("threads,pool,unused_pct,floor_pct,holds,wakeups,futile_wakeups\n")
	for _, r := range runs {
		fmt.Fprintf(&b, "%d,%s,%.4f,%.4f,%d,%d,%d\n", r.Threads, r.Pool, r.WastePct, r.FloorPct, r.Holds, r.Wakeups, r.Futile)
	}
	return b.Bytes()
}

// prepareOut makes sure dir exists and is writable before any experiment
// runs, so a bad --out fails in a second, not after a minute. It reports
// whether it created dir, so a run that fails can remove it again.
func prepareOut(dir string) (created bool, err error) {
	if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	probe, err := os.CreateTemp(dir, ".fairpool-sim-probe-")
	if err != nil {
		if created {
			os.Remove(dir)
		}
		return false, err
	}
	probe.Close()
	return created, os.Remove(probe.Name())
}

// writeFiles writes files into dir without ever leaving one half-written:
// all go to a temporary directory inside dir first, and each is renamed
// into place only once every one has been written.
func writeFiles(dir string, files []outFile) ([]string, error) {
	tmp, err := os.MkdirTemp(dir, ".fairpool-sim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(tmp, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	var paths []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		if err := os.Rename(filepath.Join(tmp, f.name), path); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
