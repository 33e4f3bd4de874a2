package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress tells the person waiting what is being measured. On a terminal
// it redraws one bar in place; otherwise (a log, a pipe, a test) it writes
// one plain line per finished step, so logs stay readable.
type progress struct {
	w     io.Writer
	tty   bool
	width int // terminal columns, for the bar's line

	done atomic.Int64 // units finished in the current step, added by workers

	// Set by begin, read by the redraw goroutine after begin has started it.
	label   string
	total   int64         // units in the step, or 0 for a step measured in time
	expect  time.Duration // how long a step measured in time takes
	started time.Time
	stop    chan struct{}
	wg      sync.WaitGroup
}

// newProgress returns a progress reporter on w; tty says w is a terminal
// width columns wide.
func newProgress(w io.Writer, tty bool, width int) *progress {
	if width < 40 {
		width = 80
	}
	return &progress{w: w, tty: tty, width: width}
}

// begin starts a step of total units (requests), counted by add.
func (p *progress) begin(label string, total int64) { p.start(label, total, 0) }

// beginTimed starts a step that lasts about d and has nothing to count.
func (p *progress) beginTimed(label string, d time.Duration) { p.start(label, 0, d) }

func (p *progress) start(label string, total int64, expect time.Duration) {
	p.label, p.total, p.expect, p.started = label, total, expect, time.Now()
	p.done.Store(0)
	if !p.tty {
		return
	}
	p.stop = make(chan struct{})
	p.wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			p.draw()
			select {
			case <-t.C:
			case <-p.stop:
				return
			}
		}
	})
}

// add counts n finished units of the current step. Safe for concurrent use.
func (p *progress) add(n int64) { p.done.Add(n) }

// end finishes the step: the bar is replaced by a line with the time taken.
func (p *progress) end() {
	if p.tty {
		close(p.stop)
		p.wg.Wait()
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, "%s: %.2f s\n", p.label, time.Since(p.started).Seconds())
}

// fraction is how much of the current step is done, from 0 to 1.
func (p *progress) fraction() float64 {
	f := 0.0
	switch {
	case p.total > 0:
		f = float64(p.done.Load()) / float64(p.total)
	case p.expect > 0:
		f = float64(time.Since(p.started)) / float64(p.expect)
	}
	return min(max(f, 0), 1)
}

// draw redraws the bar in place: label, bar, percent, seconds so far.
func (p *progress) draw() {
	f := p.fraction()
	const barWidth = 24
	filled := int(f * barWidth)
	bar := strings.Repeat("█", filled) + strings.Repeat("░", barWidth-filled)
	tail := fmt.Sprintf(" [%s] %3.0f%% %5.1f s", bar, f*100, time.Since(p.started).Seconds())
	label := p.label
	if room := p.width - 1 - len([]rune(tail)); len([]rune(label)) > room {
		label = string([]rune(label)[:max(room, 0)])
	}
	fmt.Fprintf(p.w, "\r\x1b[K%s%s", label, tail)
}
