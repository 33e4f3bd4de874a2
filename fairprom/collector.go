// Package fairprom exports fairpool pools to Prometheus.
//
//	c := fairprom.NewCollector()
//	c.Add("orders", ordersPool)
//	prometheus.MustRegister(c)
//
// The collector reads Pool.Stats at scrape time and reports it as constant
// metrics, so it adds nothing to Acquire or Release: the wait histogram is
// the pool's own lock-free one, not a second one on the hot path.
package fairprom

import (
	"fmt"
	"slices"
	"sync"

	"github.com/fairpool/fairpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Source is what the collector reads: *fairpool.Pool[T] for any T.
type Source interface {
	Stats() fairpool.Stats
}

// Collector is a prometheus.Collector for any number of pools, each
// reported with the label pool="<name>". Pools can be added and removed
// while it is registered. It is safe for concurrent use.
type Collector struct {
	mu    sync.Mutex
	pools map[string]Source
}

// NewCollector returns a collector with no pools.
func NewCollector() *Collector {
	return &Collector{pools: map[string]Source{}}
}

// Add reports s under the label pool=name. Names must be unique.
func (c *Collector) Add(name string, s Source) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.pools[name]; dup {
		return fmt.Errorf("fairprom: a pool named %q is already added", name)
	}
	c.pools[name] = s
	return nil
}

// Remove stops reporting the pool added as name.
func (c *Collector) Remove(name string) {
	c.mu.Lock()
	delete(c.pools, name)
	c.mu.Unlock()
}

// Describe sends the descriptors of every metric the collector reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range gauges {
		ch <- m.desc
	}
	for _, m := range counters {
		ch <- m.desc
	}
	ch <- closedDesc
	ch <- waitDesc
}

// Collect reads each pool's Stats once and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	names := make([]string, 0, len(c.pools))
	for name := range c.pools {
		names = append(names, name)
	}
	slices.Sort(names)
	sources := make([]Source, len(names))
	for i, name := range names {
		sources[i] = c.pools[name]
	}
	c.mu.Unlock()
	// Stats takes each pool's lock briefly; do it without ours.
	for i, s := range sources {
		collect(ch, names[i], s.Stats())
	}
}

func collect(ch chan<- prometheus.Metric, name string, s fairpool.Stats) {
	for _, m := range gauges {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, m.value(s), name)
	}
	for _, m := range counters {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, m.value(s), name)
	}
	for _, r := range closeReasons {
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(r.count(s)), name, r.label)
	}
	ch <- waitHistogram(name, s)
}

// waitHistogram turns the pool's log-scale histogram into a Prometheus
// one: the same buckets, cumulative, in seconds. The last bucket of the
// pool's histogram is the +Inf bucket. Acquires that did not wait are in
// the first bucket; the sum is the total time waited.
func waitHistogram(name string, s fairpool.Stats) prometheus.Metric {
	h := s.WaitHistogram
	buckets := make(map[float64]uint64, fairpool.NumBuckets-1)
	var cum uint64
	for i := range fairpool.NumBuckets - 1 {
		cum += uint64(h.Counts[i])
		buckets[fairpool.BucketUpperBound(i).Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(waitDesc, uint64(h.Count), s.WaitDuration.Seconds(), buckets, name)
}
