package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A small sim, both experiments, run in-process the way `fairpool sim`
// runs them; the assertions read results.json, as a script would.
//
// Fairness: N=20 goroutines, S=4, h=3ms, 1000 requests per pool (about
// 5 s in all). Fair pools wait about (N-S)/S holds, 12 ms; the ideal
// (N/S)·h is 15 ms. Pinned: S=10 sockets, N=30 threads, 300 units of
// 1 ms, where the pinned-sockets write-up saw signal waste ~8% and broadcast saturate.
func TestEndToEnd(t *testing.T) {
	fc := &fairnessConfig{Workers: []int{20}, Size: 4, Hold: 3 * time.Millisecond, Requests: 1000,
		Timeout: 5 * time.Second, Pools: allFairnessPools()}
	pc := &pinnedConfig{Sockets: 10, Threads: []int{30}, Unit: time.Millisecond, HoldMin: 1, HoldMax: 20,
		Think: 1, Warmup: 30, Duration: 300, Seed: 1, Pools: allPinnedPools()}

	// The timing claims hold by a wide margin on a quiet machine; a stall of
	// tens of milliseconds on a loaded one can still break one. Such a stall
	// does not repeat on demand, so one retry separates noise from a defect.
	var failures []string
	for attempt := 1; attempt <= 2; attempt++ {
		dir := t.TempDir()
		res := runSmallSim(t, dir, fc, pc)
		logFigures(t, res)
		failures = timingClaims(res)
		if len(failures) == 0 {
			return
		}
		t.Logf("attempt %d: %s", attempt, strings.Join(failures, "; "))
	}
	t.Errorf("timing claims failed twice: %s", strings.Join(failures, "; "))
}

// runSmallSim runs both experiments into dir, checks everything that does
// not depend on timing, and returns results.json decoded.
func runSmallSim(t *testing.T, dir string, fc *fairnessConfig, pc *pinnedConfig) *results {
	t.Helper()
	var stdout, stderr bytes.Buffer
	opts := &options{command: "sim", fairness: fc, pinned: pc, out: dir, raw: true}
	paths, err := simulate(context.Background(), opts, &stdout, newProgress(&stderr, false, 80))
	if err != nil {
		t.Fatalf("simulate: %v\nstderr:\n%s", err, stderr.String())
	}
	want := []string{"fairness.png", "fairness.svg", "fairness-waits.csv", "pinned.png", "pinned.svg", "pinned.csv", "results.json"}
	for _, name := range want {
		if !slices.Contains(paths, filepath.Join(dir, name)) {
			t.Errorf("%s not among the files written: %v", name, paths)
		}
	}
	for _, name := range []string{"fairness.png", "pinned.png"} {
		checkPNG(t, filepath.Join(dir, name))
	}
	for _, name := range []string{"fairness.svg", "pinned.svg"} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Contains(data, []byte("<svg")) {
			t.Errorf("%s: not an SVG (%v)", name, err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".fairpool-sim-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left in --out: %v", leftovers)
	}
	for _, s := range []string{"Fairness", "p99.9", "Pinned sockets", "1µs", "unused at N=30..30"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("the report lacks %q:\n%s", s, stdout.String())
		}
	}

	data, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if res.Fairness == nil || res.Pinned == nil || len(res.Fairness.Runs) != len(fc.Pools) || len(res.Pinned.Runs) != len(pc.Pools) {
		t.Fatalf("results.json lacks runs: %s", data)
	}
	// Every request is accounted for, and the fair pools never gave up.
	for _, r := range res.Fairness.Runs {
		if n := r.Served + r.Timeouts + r.Errors; n != fc.Requests || r.Errors != 0 {
			t.Errorf("%s: served %d + timeouts %d + errors %d (%s); want %d requests, no errors",
				r.Pool, r.Served, r.Timeouts, r.Errors, r.Error, fc.Requests)
		}
		if r.Hist == nil || r.Hist.total() != r.Served {
			t.Errorf("%s: histogram does not count the %d served requests", r.Pool, r.Served)
		}
		if (r.Pool == "fairpool" || r.Pool == "chan" || r.Pool == "puddle") && r.Timeouts != 0 {
			t.Errorf("%s: %d timeouts, want none", r.Pool, r.Timeouts)
		}
	}
	for _, r := range res.Pinned.Runs {
		if r.Holds == 0 || r.WastePct < 0 || r.WastePct > 100 {
			t.Errorf("%s: %d holds, %.2f%% unused: not a measurement", r.Pool, r.Holds, r.WastePct)
		}
	}
	return &res
}

// timingClaims checks the fairness and pinned-sockets claims on results and returns those that
// failed.
func timingClaims(res *results) []string {
	var failed []string
	fair := fairnessByPool(res.Fairness.Runs)
	fp, unfair, ch := fair["fairpool"], fair["unfair"], fair["chan"]
	// The floor of a FIFO pool is the buffered channel: when a
	// loaded machine pushes even the channel's p99.9 up, fairpool is held to
	// 1.2x the channel's in the same run instead of 1.5x the ideal.
	if fp.Wait.P999 > 1.5*fp.IdealMs && fp.Wait.P999 > 1.2*ch.Wait.P999 {
		failed = append(failed, fmt.Sprintf("fairpool p99.9 %.2fms > 1.5x the ideal %.2fms and > 1.2x the channel's %.2fms",
			fp.Wait.P999, fp.IdealMs, ch.Wait.P999))
	}
	if unfair.Wait.Max < 3*unfair.IdealMs {
		failed = append(failed, fmt.Sprintf("unfair max %.2fms < 3x the ideal %.2fms", unfair.Wait.Max, unfair.IdealMs))
	}
	pinned := map[string]*pinnedRun{}
	for _, r := range res.Pinned.Runs {
		pinned[r.Pool] = r
	}
	// The pinned-sockets write-up saw ~8% with signal; fairpool should waste nothing at N=30.
	// A margin of 2 points keeps a tie from passing.
	if s, f := pinned["signal"], pinned["fairpool"]; s.WastePct < f.WastePct+2 {
		failed = append(failed, fmt.Sprintf("pinned: signal wastes %.2f%%, not clearly more than fairpool's %.2f%%", s.WastePct, f.WastePct))
	}
	return failed
}

// logFigures logs the figures the claims are about, for a reader of -v.
func logFigures(t *testing.T, res *results) {
	t.Helper()
	for _, r := range res.Fairness.Runs {
		t.Logf("fairness %-13s p50 %7.2fms p99.9 %8.2fms max %8.2fms (ideal %.0fms) timeouts %d",
			r.Pool, r.Wait.P50, r.Wait.P999, r.Wait.Max, r.IdealMs, r.Timeouts)
	}
	for _, r := range res.Pinned.Runs {
		t.Logf("pinned N=%d %-9s %.2f%% unused", r.Threads, r.Pool, r.WastePct)
	}
}

func fairnessByPool(runs []*fairnessRun) map[string]*fairnessRun {
	m := map[string]*fairnessRun{}
	for _, r := range runs {
		m[r.Pool] = r
	}
	return m
}

// checkPNG fails unless path decodes as a PNG of a plausible size with a
// drawing on it: a blank white image has one colour.
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 300 {
		t.Errorf("%s: %dx%d, too small for a figure", path, b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]bool{}
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				inked++
			}
		}
	}
	if share := float64(inked) / float64(b.Dx()*b.Dy()); len(colours) < 4 || share < 0.005 {
		t.Errorf("%s looks blank: %d colours, %.2f%% of pixels not white", path, len(colours), 100*share)
	}
}

// The figures render from any runs, without timing: the sweep figure and
// every pool at two N, from hand-made results.
func TestFiguresRender(t *testing.T) {
	fc := &fairnessConfig{Workers: []int{5, 10}, Size: 5, Hold: time.Millisecond, Requests: 4, Pools: allFairnessPools()}
	var runs []*fairnessRun
	for _, n := range fc.Workers {
		for i, pool := range fc.Pools {
			waits := []time.Duration{0, time.Microsecond, time.Duration(i+1) * time.Millisecond, time.Second}
			runs = append(runs, &fairnessRun{Pool: pool, Workers: n, IdealMs: ms(fc.ideal(n)), Served: len(waits),
				Wait: summarize(waits), waits: waits})
		}
	}
	pc := &pinnedConfig{Sockets: 10, Threads: []int{10, 20}, Unit: time.Millisecond, HoldMin: 1, HoldMax: 20, Think: 1, Pools: allPinnedPools()}
	var pruns []*pinnedRun
	for _, n := range pc.Threads {
		for i, pool := range pc.Pools {
			pruns = append(pruns, &pinnedRun{Pool: pool, Threads: n, WastePct: float64(i)})
		}
	}
	dir := t.TempDir()
	res := newResults("test")
	res.Fairness = &fairnessResults{Config: fc, Runs: runs}
	res.Pinned = &pinnedResults{Config: pc, Runs: pruns}
	files, err := buildFiles(res, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writeFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fairness.png", "fairness-vs-n.png", "pinned.png"} {
		checkPNG(t, filepath.Join(dir, name))
	}
	if _, err := os.Stat(filepath.Join(dir, "fairness-waits.csv")); !os.IsNotExist(err) {
		t.Errorf("raw data written with raw=false")
	}
}

// --json puts results.json on stdout, and nothing else.
func TestRunJSON(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := strings.Fields("sim pinned -n 12 -s 4 --warmup 5 --duration 40 --pools signal,fairpool --json --out " + dir)
	if code := run(context.Background(), args, &stdout, newProgress(&stderr, false, 80)); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res results
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("stdout is not results.json: %v\n%s", err, stdout.String())
	}
	if res.Pinned == nil || len(res.Pinned.Runs) != 2 || res.Command != "fairpool sim pinned" {
		t.Errorf("results = %+v", res)
	}
	if !strings.Contains(stderr.String(), "pinned [2/2] fairpool, N=12") {
		t.Errorf("no progress lines on stderr: %q", stderr.String())
	}
}

// An interrupted run writes nothing and says so.
func TestRunInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	args := strings.Fields("sim fairness -n 10 -s 2 --hold 1ms --requests 100000 --out " + dir)
	if code := run(ctx, args, &stdout, newProgress(&stderr, false, 80)); code != exitInterrupted {
		t.Fatalf("exit %d, want %d: %s", code, exitInterrupted, stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("an interrupted run left --out behind: %v", err)
	}
}
