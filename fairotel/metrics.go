package fairotel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/fairpool/fairpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of every instrument: the name
// of the Meter taken from the MeterProvider given to New.
const ScopeName = "github.com/fairpool/fairpool/fairotel"

// Source is what Metrics reads of a pool: *fairpool.Pool[T] for any T,
// *sqlpool.Pool and *fairpgx.Pool. A Source that also has
//
//	Observe(fairpool.Observer) (stop func())
//
// as *fairpool.Pool[T] does, feeds the three histograms as well; one
// without it is reported from Stats alone, and its histograms stay empty.
type Source interface {
	Stats() fairpool.Stats
}

// GroupSource is what Metrics reads of a group: *fairpool.Group[K, T] for
// any T. As with Source, an Observe method feeds the histograms.
type GroupSource[K cmp.Ordered] interface {
	Stats() fairpool.GroupStats[K]
}

// Metrics reports any number of pools and groups through the instruments
// of one Meter. Pools and groups can be added and removed at any time,
// however long after they were made: each collection reads their Stats
// afresh. It is safe for concurrent use.
type Metrics struct {
	reg  metric.Registration
	inst instruments
	hist histograms

	mu      sync.Mutex
	sources map[string]*source
	closed  bool
}

// observable is the optional part of a source: Observe reports each open,
// acquire and release, which Stats cannot. It is not in Source so that a
// source with Stats alone (or a wrapper yet to pass Observe through) can
// still be added.
type observable interface {
	Observe(fairpool.Observer) (stop func())
}

// instruments are the observable instruments, all fed by one callback.
type instruments struct {
	count            metric.Int64ObservableUpDownCounter
	max              metric.Int64ObservableUpDownCounter
	idleMax, idleMin metric.Int64ObservableUpDownCounter
	gauges           []metric.Int64ObservableUpDownCounter // in the order of gauges
	counts           []metric.Int64ObservableCounter       // in the order of counters
	waited           metric.Float64ObservableCounter
	closed           metric.Int64ObservableCounter
	all              []metric.Observable // every one, for RegisterCallback
}

// source is one added pool or group. read yields its series: keyed is
// false for a pool and a group's totals, which carry no fairpool.key.
type source struct {
	read  func(yield func(key string, keyed bool, s fairpool.Stats))
	attrs series // the unkeyed series' attributes, made once
	name  string
	stop  func() // ends the histograms' observer; nil without one (yet)
}

// series holds one series' attribute sets as options, so that a
// collection allocates nothing for a pool's attributes.
type series struct {
	base, idle, used metric.ObserveOption
	closed           []metric.ObserveOption // in the order of Stats.ClosedByReason
}

func newSeries(kvs ...attribute.KeyValue) series {
	with := func(extra ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributeSet(attribute.NewSet(append(slices.Clone(kvs), extra...)...))
	}
	s := series{
		base: with(),
		idle: with(StateKey.String("idle")),
		used: with(StateKey.String("used")),
	}
	for reason := range (fairpool.Stats{}).ClosedByReason() {
		s.closed = append(s.closed, with(CloseReasonKey.String(reason)))
	}
	return s
}

// New creates the instruments on a Meter of mp (scope ScopeName) and
// registers the callback that reads every added pool at each collection.
// Call Close to unregister it.
func New(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil {
		return nil, errors.New("fairotel: nil MeterProvider")
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{sources: map[string]*source{}}
	in := &m.inst
	var errs []error
	updown := func(s spec) metric.Int64ObservableUpDownCounter {
		i, err := meter.Int64ObservableUpDownCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
		errs = append(errs, err)
		in.all = append(in.all, i)
		return i
	}
	count := func(s spec) metric.Int64ObservableCounter {
		i, err := meter.Int64ObservableCounter(s.name, metric.WithUnit(s.unit), metric.WithDescription(s.desc))
		errs = append(errs, err)
		in.all = append(in.all, i)
		return i
	}
	in.count = updown(specCount)
	in.max = updown(specMax)
	in.idleMax = updown(specIdleMax)
	in.idleMin = updown(specIdleMin)
	for _, g := range gauges {
		in.gauges = append(in.gauges, updown(g.spec))
	}
	for _, c := range counters {
		in.counts = append(in.counts, count(c.spec))
	}
	in.closed = count(specClosed)
	waited, err := meter.Float64ObservableCounter(specWaited.name, metric.WithUnit(specWaited.unit), metric.WithDescription(specWaited.desc))
	errs = append(errs, err)
	in.waited = waited
	in.all = append(in.all, waited)
	hist, err := newHistograms(meter)
	errs = append(errs, err)
	m.hist = hist
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("fairotel: %w", err)
	}
	m.reg, err = meter.RegisterCallback(m.observe, in.all...)
	if err != nil {
		return nil, fmt.Errorf("fairotel: %w", err)
	}
	return m, nil
}

// Close unregisters the callback and removes every pool and group: none
// is read or observed any more, and Metrics no longer keeps them
// reachable. The histograms keep what they recorded (under cumulative
// temporality the SDK exports a series until the MeterProvider shuts
// down) but record nothing more. After Close, Add and AddGroup return an
// error. Close may be called more than once.
func (m *Metrics) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	var stops []func()
	for _, src := range m.sources {
		if src.stop != nil {
			stops = append(stops, src.stop)
		}
	}
	m.sources = nil
	m.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return m.reg.Unregister()
}

// Add reports src under db.client.connection.pool.name=name. Names must
// be unique among the pools and groups added. If src has an Observe
// method (see Source), its opens, acquires and releases from now on feed
// create_time, wait_time and use_time; a lease already out when Add is
// called is not in use_time.
func (m *Metrics) Add(name string, src Source) error {
	return m.add(name, src, func(yield func(string, bool, fairpool.Stats)) { yield("", false, src.Stats()) })
}

// AddGroup reports g's totals under db.client.connection.pool.name=name
// and, if perKey, each key that has a pool under the same name with
// fairpool.key=<key> (formatted with %v) as well. Per-key series grow with
// the number of keys: turn them on only when keys are few. Totals and
// per-key series share the metric names, so an aggregation over a group
// must filter on fairpool.key being absent (totals) or present (keys),
// not add both.
//
// If g has an Observe method, as *fairpool.Group does, the histograms are
// fed with the group's opens, acquires and releases under the name alone,
// never with fairpool.key, even when perKey is set: a group reports its
// events for all keys together, and a histogram series per key would cost
// far more than a gauge's.
func AddGroup[K cmp.Ordered](m *Metrics, name string, g GroupSource[K], perKey bool) error {
	return m.add(name, g, func(yield func(string, bool, fairpool.Stats)) {
		gs := g.Stats()
		yield("", false, gs.Total)
		if !perKey {
			return
		}
		for k, s := range gs.Keys {
			yield(fmt.Sprint(k), true, s)
		}
	})
}

// add takes the name for read and, if from is observable, hooks the
// histograms to it.
func (m *Metrics) add(name string, from any, read func(func(string, bool, fairpool.Stats))) error {
	src := &source{read: read, attrs: newSeries(PoolNameKey.String(name)), name: name}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("fairotel: Metrics is closed")
	}
	if _, dup := m.sources[name]; dup {
		m.mu.Unlock()
		return fmt.Errorf("fairotel: a pool named %q is already added", name)
	}
	m.sources[name] = src
	m.mu.Unlock()

	o, ok := from.(observable)
	if !ok {
		return nil
	}
	// Observe is called without our lock, as Stats is, so that no source
	// is ever called with it held. The name was taken first, so what is
	// recorded meanwhile is under this source's name; a Remove or Close
	// in between found no stop to call, and calling it falls to us.
	tm := m.hist.timings(attribute.NewSet(PoolNameKey.String(name)))
	stop := o.Observe(fairpool.Observer{Acquired: tm.acquired, Opened: tm.opened, Released: tm.released})
	m.mu.Lock()
	current := m.sources[name] == src
	if current {
		src.stop = stop
	}
	m.mu.Unlock()
	if !current {
		stop()
	}
	return nil
}

// Remove stops reporting the pool or group added as name: from the next
// collection on, the series read from its Stats are absent, and its
// histograms record nothing more (their series keep what they recorded,
// as after Close).
func (m *Metrics) Remove(name string) {
	m.mu.Lock()
	var stop func()
	if src := m.sources[name]; src != nil {
		stop = src.stop
	}
	delete(m.sources, name)
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// observe is the one callback: it reads each source's Stats once.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	srcs := make([]*source, 0, len(m.sources))
	for _, s := range m.sources {
		srcs = append(srcs, s)
	}
	m.mu.Unlock()
	// Stats takes each pool's lock briefly; do it without ours, so that
	// Add and Remove never wait for a pool.
	for _, src := range srcs {
		src.read(func(key string, keyed bool, s fairpool.Stats) {
			attrs := src.attrs
			if keyed {
				attrs = newSeries(PoolNameKey.String(src.name), GroupKeyKey.String(key))
			}
			m.inst.report(o, attrs, s)
		})
	}
	return nil
}

func (in *instruments) report(o metric.Observer, a series, s fairpool.Stats) {
	o.ObserveInt64(in.count, int64(s.Idle), a.idle)
	o.ObserveInt64(in.count, int64(s.InUse), a.used)
	// A group without GlobalMax has MaxSize 0: no maximum, which 0 would
	// misstate.
	if s.MaxSize > 0 {
		o.ObserveInt64(in.max, int64(s.MaxSize), a.base)
	}
	// MaxIdle is never 0 once applied, except in a group's totals, which
	// have no idle bounds: the keys' bounds are per key, and their sum is
	// no limit anyone set. MinIdle is reported alongside, 0 included,
	// because there 0 is the setting.
	if s.MaxIdle > 0 {
		o.ObserveInt64(in.idleMax, int64(s.MaxIdle), a.base)
		o.ObserveInt64(in.idleMin, int64(s.MinIdle), a.base)
	}
	for i, g := range gauges {
		o.ObserveInt64(in.gauges[i], g.value(s), a.base)
	}
	for i, c := range counters {
		o.ObserveInt64(in.counts[i], c.value(s), a.base)
	}
	i := 0
	for _, n := range s.ClosedByReason() {
		o.ObserveInt64(in.closed, n, a.closed[i])
		i++
	}
	o.ObserveFloat64(in.waited, s.WaitDuration.Seconds(), a.base)
}
