package fairotel

import (
	"github.com/fairpool/fairpool"
	"go.opentelemetry.io/otel/attribute"
)

// Attribute keys. The first two are the semantic conventions'; the others
// are this package's own, under its prefix so they cannot collide with a
// future convention.
const (
	// PoolNameKey names the pool: the name given to Add or AddGroup.
	PoolNameKey = attribute.Key("db.client.connection.pool.name")
	// StateKey says whether a connection counted by
	// db.client.connection.count is idle or used.
	StateKey = attribute.Key("db.client.connection.state")
	// GroupKeyKey carries a group's key (formatted with %v) on that key's
	// series, when AddGroup was asked for them. A group's totals and a
	// plain pool's series do not have it.
	GroupKeyKey = attribute.Key("fairpool.key")
	// CloseReasonKey says why the connections counted by
	// fairpool.connection.closed were closed.
	CloseReasonKey = attribute.Key("fairpool.close.reason")
)

// spec is an observable instrument's identity: what a reader sees of it.
type spec struct {
	name, unit, desc string
}

// The semantic conventions' instruments, with their names, units and
// descriptions verbatim (model/db/metrics.yaml).
var (
	specCount = spec{"db.client.connection.count", "{connection}",
		"The number of connections that are currently in state described by the `state` attribute."}
	specMax = spec{"db.client.connection.max", "{connection}",
		"The maximum number of open connections allowed."}
	specIdleMax = spec{"db.client.connection.idle.max", "{connection}",
		"The maximum number of idle open connections allowed."}
	specIdleMin = spec{"db.client.connection.idle.min", "{connection}",
		"The minimum number of idle open connections allowed."}
	specPending = spec{"db.client.connection.pending_requests", "{request}",
		"The number of current pending requests for an open connection."}
	specTimeouts = spec{"db.client.connection.timeouts", "{timeout}",
		"The number of connection timeouts that have occurred trying to obtain a connection from the pool."}
)

// gauge is an observable UpDownCounter read from Stats.
type gauge struct {
	spec
	value func(fairpool.Stats) int64
}

// counter is an observable Counter read from Stats.
type counter gauge

// gauges are reported for every series; db.client.connection.max is apart
// because a group without GlobalMax has no maximum to report.
var gauges = []gauge{
	{specPending, func(s fairpool.Stats) int64 { return int64(s.Waiting) }},
	{spec{"fairpool.connection.opening", "{connection}", "Connections being opened: neither idle nor used, but counted against the maximum."},
		func(s fairpool.Stats) int64 { return int64(s.Opening) }},
	{spec{"fairpool.connection.closing", "{connection}", "Connections being closed: neither idle nor used, but counted against the maximum until closed."},
		func(s fairpool.Stats) int64 { return int64(s.Closing) }},
}

var counters = []counter{
	{specTimeouts, func(s fairpool.Stats) int64 { return s.Timeouts }},
	{spec{"fairpool.acquires", "{acquire}", "Connections handed out by Acquire, TryAcquire and With."},
		func(s fairpool.Stats) int64 { return s.Acquires }},
	{spec{"fairpool.acquire.waits", "{acquire}", "Acquires that had to wait in line."},
		func(s fairpool.Stats) int64 { return s.Waits }},
	{spec{"fairpool.acquire.cancels", "{acquire}", "Waits ended by the caller's context."},
		func(s fairpool.Stats) int64 { return s.Cancels }},
	{spec{"fairpool.acquire.sheds", "{acquire}", "Acquires turned away because their context's deadline could not be met (ErrOverload)."},
		func(s fairpool.Stats) int64 { return s.Sheds }},
	{spec{"fairpool.connection.opens", "{connection}", "Connections opened."},
		func(s fairpool.Stats) int64 { return s.Opens }},
	{spec{"fairpool.connection.open_errors", "{error}", "Failed attempts to open a connection."},
		func(s fairpool.Stats) int64 { return s.OpenErrors }},
	{spec{"fairpool.connection.leaks", "{lease}", "Leases held longer than the pool's LeakThreshold."},
		func(s fairpool.Stats) int64 { return s.Leaks }},
	{spec{"fairpool.connection.reclaims", "{lease}", "Leases dropped without Release, reclaimed when the garbage collector found them (TrackLeases)."},
		func(s fairpool.Stats) int64 { return s.Reclaims }},
}

// specWaited is a Float64 counter: the total is in seconds, and rounding
// it to whole seconds would lose what matters.
var specWaited = spec{"fairpool.acquire.wait_time", "s",
	"Total time waited by acquires that got a connection."}

var specClosed = spec{"fairpool.connection.closed", "{connection}",
	"Connections closed, by reason (fairpool.close.reason)."}
