// Package fairprom exports fairpool pools and groups to Prometheus.
//
//	c := fairprom.NewCollector()
//	c.Add("orders", ordersPool)
//	fairprom.AddGroup(c, "tenants", tenantsGroup, false)
//	prometheus.MustRegister(c)
//
// The collector reads Pool.Stats at scrape time and reports it as constant
// metrics, so it adds nothing to Acquire or Release: the wait histogram is
// the pool's own lock-free one, not a second one on the hot path.
package fairprom

import (
	"cmp"
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

// GroupSource is what the collector reads of a group: *fairpool.Group[K, T]
// for any T.
type GroupSource[K cmp.Ordered] interface {
	Stats() fairpool.GroupStats[K]
}

// Collector is a prometheus.Collector for any number of pools and groups.
// Every metric has the labels pool="<name>" and key: empty for a pool and
// for a group's totals, the key for a group's per-key series (opt-in, see
// AddGroup). Pools and groups can be added and removed while it is
// registered. It is safe for concurrent use.
type Collector struct {
	mu      sync.Mutex
	sources map[string]func(yield func(key string, s fairpool.Stats))
}

// NewCollector returns a collector with no pools.
func NewCollector() *Collector {
	return &Collector{sources: map[string]func(func(string, fairpool.Stats)){}}
}

// Add reports s under the label pool=name. Names must be unique among the
// pools and groups added.
func (c *Collector) Add(name string, s Source) error {
	return c.add(name, func(yield func(string, fairpool.Stats)) { yield("", s.Stats()) })
}

// AddGroup reports g's totals under pool=name, key="", and, if perKey,
// each key with a pool under pool=name, key=<key> (formatted with %v).
// Per-key series grow with the number of keys: turn them on only when
// keys are few.
func AddGroup[K cmp.Ordered](c *Collector, name string, g GroupSource[K], perKey bool) error {
	return c.add(name, func(yield func(string, fairpool.Stats)) {
		gs := g.Stats()
		yield("", gs.Total)
		if !perKey {
			return
		}
		keys := make([]K, 0, len(gs.Keys))
		for k := range gs.Keys {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			yield(fmt.Sprint(k), gs.Keys[k])
		}
	})
}

func (c *Collector) add(name string, read func(func(string, fairpool.Stats))) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.sources[name]; dup {
		return fmt.Errorf("fairprom: a pool named %q is already added", name)
	}
	c.sources[name] = read
	return nil
}

// Remove stops reporting the pool or group added as name.
func (c *Collector) Remove(name string) {
	c.mu.Lock()
	delete(c.sources, name)
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
	names := make([]string, 0, len(c.sources))
	for name := range c.sources {
		names = append(names, name)
	}
	slices.Sort(names)
	reads := make([]func(func(string, fairpool.Stats)), len(names))
	for i, name := range names {
		reads[i] = c.sources[name]
	}
	c.mu.Unlock()
	// Stats takes each pool's lock briefly; do it without ours.
	for i, read := range reads {
		read(func(key string, s fairpool.Stats) { collect(ch, names[i], key, s) })
	}
}

func collect(ch chan<- prometheus.Metric, name, key string, s fairpool.Stats) {
	for _, m := range gauges {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, m.value(s), name, key)
	}
	for _, m := range counters {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, m.value(s), name, key)
	}
	for reason, n := range s.ClosedByReason() {
		ch <- prometheus.MustNewConstMetric(closedDesc, prometheus.CounterValue, float64(n), name, key, reason)
	}
	ch <- waitHistogram(name, key, s)
}

// waitHistogram turns the pool's log-scale histogram into a Prometheus
// one: the same buckets, cumulative, in seconds. The last bucket of the
// pool's histogram is the +Inf bucket. Acquires that did not wait are in
// the first bucket; the sum is the total time waited.
func waitHistogram(name, key string, s fairpool.Stats) prometheus.Metric {
	h := s.WaitHistogram
	buckets := make(map[float64]uint64, fairpool.NumBuckets-1)
	var cum uint64
	for i := range fairpool.NumBuckets - 1 {
		cum += uint64(h.Counts[i])
		buckets[fairpool.BucketUpperBound(i).Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(waitDesc, uint64(h.Count), s.WaitDuration.Seconds(), buckets, name, key)
}
