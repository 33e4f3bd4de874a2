package debug

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fairpool/fairpool"
)

// pageData is what the template renders: the snapshot, formatted.
type pageData struct {
	Time        string // RFC 3339, for <time datetime>
	Clock       string // 15:04:05
	RefreshMS   int64  // 0: off
	RefreshSecs int64  // for the no-script meta refresh, rounded up
	Choices     []refreshChoice
	Pools       []poolView
}

type refreshChoice struct {
	Label, Query string
	Current      bool
}

type poolView struct {
	Name      string
	S         fairpool.Stats
	Size      string // MaxSize, or for a group without GlobalMax "no limit"
	Closed    int64
	Usage     []segment
	UsageNote string // "2 in use, 1 idle of 4"
	Hist      []bar
	HistCount int64
	P50       string
	P90       string
	P99       string
	Holders   []holderView
	Waiters   []waiterView

	// A group's; Group is nil for a pool.
	Group *groupFigures
	Keys  []keyView
	Total keyView // the Keys table's last row: the group's totals
}

// keyView is one row of a group's Keys table.
type keyView struct {
	Key                                          string
	Size                                         string
	Open, InUse, Idle, Opening, Closing, Waiting int
	Longest                                      string // the longest wait now, "" if none
	Acquires, Timeouts, OpenErrors, Closed       int64
	Total                                        bool // the totals row, which names no key
}

func newKeyView(key, size string, s fairpool.Stats, longest time.Duration) keyView {
	v := keyView{
		Key: key, Size: size, Open: s.Open, InUse: s.InUse, Idle: s.Idle, Opening: s.Opening, Closing: s.Closing, Waiting: s.Waiting,
		Acquires: s.Acquires, Timeouts: s.Timeouts, OpenErrors: s.OpenErrors, Closed: closed(s),
	}
	if longest > 0 {
		v.Longest = short(longest)
	}
	return v
}

// closed counts the connections closed, for every reason.
func closed(s fairpool.Stats) int64 {
	return s.ClosedLifetime + s.ClosedIdleTime + s.ClosedCheck + s.ClosedReset + s.ClosedDiscard + s.ClosedOverIdle + s.ClosedByClose + s.ClosedEvicted + s.Reclaims
}

// segment is one part of the usage bar: connections in one state, as a
// share of MaxSize.
type segment struct {
	Class, Label string
	N            int
	Pct          string
}

// bar is one bucket of the wait histogram.
type bar struct {
	Label string // "<2µs"
	Range string // "1µs to 2µs"
	N     int64
	Pct   string // of the fullest bucket
}

type holderView struct {
	N         int
	HeldFor   string
	Caller    string
	Goroutine int64
	Stack     string
	Key       string // identifies the holder across refreshes, to keep its stack open
}

type waiterView struct {
	N      int
	Waited string
}

var refreshChoices = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 0}

func newPageData(s snapshot, refresh time.Duration) pageData {
	d := pageData{
		Time:        s.Time.Format(time.RFC3339Nano),
		Clock:       s.Time.Format("15:04:05"),
		RefreshMS:   refresh.Milliseconds(),
		RefreshSecs: int64((refresh + time.Second - 1) / time.Second),
		Pools:       make([]poolView, len(s.Pools)),
	}
	for _, c := range refreshChoices {
		label := "off"
		if c > 0 {
			label = c.String()
		}
		d.Choices = append(d.Choices, refreshChoice{Label: label, Query: c.String(), Current: c == refresh})
	}
	for i, p := range s.Pools {
		d.Pools[i] = newPoolView(p)
	}
	return d
}

func newPoolView(p poolSnapshot) poolView {
	s := p.Stats
	v := poolView{
		Name:   p.Name,
		S:      s,
		Size:   strconv.Itoa(s.MaxSize),
		Closed: closed(s),
		Group:  p.Group,
	}
	if p.Group != nil {
		if s.MaxSize == 0 {
			v.Size = "no limit"
		}
		var longest time.Duration
		for _, k := range p.Keys {
			l := slices.Max(append([]time.Duration{0}, k.Waiters...))
			longest = max(longest, l)
			v.Keys = append(v.Keys, newKeyView(k.Key, strconv.Itoa(k.Stats.MaxSize), k.Stats, l))
		}
		v.Total = newKeyView("all keys", v.Size, s, longest)
		v.Total.Total = true
	}
	if s.MaxSize > 0 {
		var parts []string
		for _, g := range []segment{
			{Class: "in-use", Label: "in use", N: s.InUse},
			{Class: "opening", Label: "opening", N: s.Opening},
			{Class: "closing", Label: "closing", N: s.Closing},
			{Class: "idle", Label: "idle", N: s.Idle},
		} {
			if g.N > 0 {
				g.Pct = pct(float64(g.N) / float64(s.MaxSize))
				v.Usage = append(v.Usage, g)
				parts = append(parts, fmt.Sprintf("%d %s", g.N, g.Label))
			}
		}
		if len(parts) == 0 {
			parts = []string{"none open"}
		}
		v.UsageNote = fmt.Sprintf("%s of %d", strings.Join(parts, ", "), s.MaxSize)
	}

	h := s.WaitHistogram
	v.HistCount = h.Count
	if h.Count > 0 {
		v.P50, v.P90, v.P99 = quantile(h, 0.5), quantile(h, 0.9), quantile(h, 0.99)
		first, last, most := -1, 0, int64(0)
		for i, n := range h.Counts {
			if n > 0 {
				if first < 0 {
					first = i
				}
				last = i
				most = max(most, n)
			}
		}
		for i := first; i <= last; i++ {
			v.Hist = append(v.Hist, bar{Label: bucketLabel(i), Range: bucketRange(i), N: h.Counts[i], Pct: pct(float64(h.Counts[i]) / float64(most))})
		}
	}

	for i, x := range p.Holders {
		v.Holders = append(v.Holders, holderView{
			N: i + 1, HeldFor: short(x.HeldFor), Caller: x.Caller, Goroutine: x.Goroutine, Stack: x.Stack,
			Key: fmt.Sprintf("%s %d %s", p.Name, x.Goroutine, x.Caller),
		})
	}
	for i, w := range p.Waiters {
		v.Waiters = append(v.Waiters, waiterView{N: i + 1, Waited: short(w)})
	}
	return v
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'f', 2, 64) }

// quantile formats Histogram.Quantile, an exclusive upper bound.
func quantile(h fairpool.Histogram, q float64) string {
	d := h.Quantile(q)
	if d == fairpool.BucketUpperBound(fairpool.NumBuckets-1) {
		return "≥" + short(fairpool.BucketUpperBound(fairpool.NumBuckets-2))
	}
	return "<" + short(d)
}

func bucketLabel(i int) string {
	if i == fairpool.NumBuckets-1 {
		return "≥" + short(fairpool.BucketUpperBound(i-1))
	}
	return "<" + short(fairpool.BucketUpperBound(i))
}

func bucketRange(i int) string {
	switch i {
	case 0:
		return "under " + short(fairpool.BucketUpperBound(0))
	case fairpool.NumBuckets - 1:
		return short(fairpool.BucketUpperBound(i-1)) + " and more"
	}
	return short(fairpool.BucketUpperBound(i-1)) + " to " + short(fairpool.BucketUpperBound(i))
}

// short formats d with three significant digits: 512µs, 1.02ms, 67.1s,
// 2m5s.
func short(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(int64(d), 10) + "ns"
	case d < time.Millisecond:
		return sig3(float64(d)/1e3) + "µs"
	case d < time.Second:
		return sig3(float64(d)/1e6) + "ms"
	case d < 100*time.Second:
		return sig3(float64(d)/1e9) + "s"
	}
	return d.Round(time.Second).String()
}

func sig3(x float64) string {
	prec := 2
	switch {
	case x >= 99.95:
		prec = 0
	case x >= 9.995:
		prec = 1
	}
	s := strconv.FormatFloat(x, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
