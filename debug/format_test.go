package debug

import (
	"testing"
	"time"

	"github.com/fairpool/fairpool"
)

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                         "0ns",
		999:                       "999ns",
		time.Microsecond:          "1µs",
		512 * time.Microsecond:    "512µs",
		1024 * time.Microsecond:   "1.02ms",
		4096 * time.Microsecond:   "4.1ms",
		16384 * time.Microsecond:  "16.4ms",
		999999 * time.Microsecond: "1000ms",
		1500 * time.Millisecond:   "1.5s",
		fairpool.BucketUpperBound(fairpool.NumBuckets - 2): "67.1s",
		125 * time.Second:                     "2m5s",
		90*time.Minute + 400*time.Millisecond: "1h30m0s",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBucketLabels(t *testing.T) {
	if got := bucketLabel(0); got != "<1µs" {
		t.Errorf("bucket 0: %q", got)
	}
	if got := bucketRange(0); got != "under 1µs" {
		t.Errorf("bucket 0 range: %q", got)
	}
	if got := bucketRange(11); got != "1.02ms to 2.05ms" {
		t.Errorf("bucket 11 range: %q", got)
	}
	last := fairpool.NumBuckets - 1
	if got := bucketLabel(last); got != "≥67.1s" {
		t.Errorf("last bucket: %q", got)
	}
}

func TestQuantileLabels(t *testing.T) {
	var h fairpool.Histogram
	h.Counts[0], h.Counts[fairpool.NumBuckets-1], h.Count = 1, 1, 2
	if got := quantile(h, 0); got != "<1µs" {
		t.Errorf("q0: %q", got)
	}
	if got := quantile(h, 1); got != "≥67.1s" {
		t.Errorf("q1: %q", got)
	}
}
