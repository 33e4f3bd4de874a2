package fairotel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// secondsBuckets are the boundaries advised for the three histograms (see
// the package doc): 1-2.5-5 steps, fine where waits and opens usually
// are, with the default AcquireTimeout (5 s) and OpenTimeout (30 s) on a
// boundary so that waits and opens cut short by them stand apart.
var secondsBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5,
	10, 30, 60,
}

// histograms are the conventions' three histograms. They need one
// observation per open, acquire and release, which Stats cannot give, so
// they are fed by a fairpool.Observer on each source that has Observe.
type histograms struct {
	create, wait, use metric.Float64Histogram
}

func newHistograms(meter metric.Meter) (histograms, error) {
	var h histograms
	var err error
	newHist := func(name, desc string) metric.Float64Histogram {
		if err != nil {
			return nil
		}
		var i metric.Float64Histogram
		i, err = meter.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(secondsBuckets...))
		return i
	}
	h.create = newHist("db.client.connection.create_time", "The time it took to create a new connection.")
	h.wait = newHist("db.client.connection.wait_time", "The time it took to obtain an open connection from the pool.")
	h.use = newHist("db.client.connection.use_time", "The time between borrowing a connection and returning it to the pool.")
	return h, err
}

// timings are one pool's recorders, shaped as fairpool.Observer's
// fields are: each takes a plain duration, with no context.
type timings struct {
	opened   func(took time.Duration)
	acquired func(waited time.Duration)
	released func(held time.Duration)
}

// timings returns recorders that carry attrs. They run on every acquire
// and release, so the attribute set and the option slice are built here,
// once: an option passed alone would make a variadic slice per call, and
// it escapes into the SDK.
func (h *histograms) timings(attrs attribute.Set) timings {
	opt := []metric.RecordOption{metric.WithAttributeSet(attrs)}
	// The hooks have no context of their own, and the histograms take
	// nothing from one but exemplars, which a pool-wide hook cannot
	// attribute to a request anyway.
	ctx := context.Background()
	return timings{
		opened:   func(d time.Duration) { h.create.Record(ctx, d.Seconds(), opt...) },
		acquired: func(d time.Duration) { h.wait.Record(ctx, d.Seconds(), opt...) },
		released: func(d time.Duration) { h.use.Record(ctx, d.Seconds(), opt...) },
	}
}
