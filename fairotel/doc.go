// Package fairotel exports fairpool pools and groups to OpenTelemetry,
// as the semantic conventions' database client connection-pool metrics
// (model/db/metrics.yaml, semantic conventions v1.44, stability
// development) and a few of fairpool's own.
//
//	m, err := fairotel.New(meterProvider)
//	if err != nil { ... }
//	defer m.Close()
//	m.Add("orders", ordersPool) // db.client.connection.pool.name="orders"
//	fairotel.AddGroup(m, "tenants", tenantsGroup, false)
//
// A pool's figures are read from Pool.Stats by one callback, at collection
// time, so Acquire and Release pay nothing for them. The three histograms
// are the exception: they need every open, acquire and release, which
// they get from a fairpool.Observer that Add and AddGroup attach to any
// source with an Observe method (Pool, Group, sqlpool.Pool and
// fairpgx.Pool have one), and which
// Remove and Close detach. Every series carries
// db.client.connection.pool.name. A group reports its totals like a pool
// and, if AddGroup is asked to, one series per key with fairpool.key as
// well, except in the histograms, which a group feeds with its totals
// alone.
//
// The conventions' metrics:
//
//	metric                                 instrument                unit          from
//	db.client.connection.count             UpDownCounter, async      {connection}  Idle (state=idle), InUse (state=used)
//	db.client.connection.max               UpDownCounter, async      {connection}  MaxSize; a group's totals only with GlobalMax
//	db.client.connection.idle.max          UpDownCounter, async      {connection}  MaxIdle; not for a group's totals
//	db.client.connection.idle.min          UpDownCounter, async      {connection}  MinIdle; not for a group's totals
//	db.client.connection.pending_requests  UpDownCounter, async      {request}     Waiting
//	db.client.connection.timeouts          Counter, async            {timeout}     Timeouts (waits ended by AcquireTimeout)
//	db.client.connection.create_time       Histogram                 s             Observer.Opened: each successful open
//	db.client.connection.wait_time         Histogram                 s             Observer.Acquired: each lease handed out
//	db.client.connection.use_time          Histogram                 s             Observer.Released: each Release or Discard
//
// idle.max and idle.min are the bounds as the pool applies them: a
// Config's MaxIdle of 0 means MaxSize, and is reported as MaxSize. A
// group's keys have the GroupConfig's MinIdle and MaxIdle; its totals
// have no idle bounds (each key's are its own, and their sum is no limit
// anyone set), so they report neither. A MinIdle of 0 is reported: it is
// the setting, not its absence.
//
// The histograms cost each acquire and release a Histogram.Record, which
// allocates nothing but with the OpenTelemetry SDK takes a few hundred
// nanoseconds: several times what an uncontended acquire and release of
// an idle connection take by themselves. A source without Observe leaves
// them empty.
// wait_time has every lease handed out, zero for one that did not wait,
// and its wait includes any open it waited for; a wait that ends without
// a connection is not in it (db.client.connection.timeouts and
// fairpool.acquire.cancels count those). Failed opens are not in
// create_time (fairpool.connection.open_errors counts them). use_time
// leaves out leases already out when the source was added. After Remove
// or Close nothing more is recorded, but under cumulative temporality
// the SDK goes on exporting what was. Their explicit bucket boundaries,
// in seconds, are
//
//	0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05
//	0.1 0.25 0.5 1 2.5 5 10 30 60
//
// from a wait for an idle connection (well under a millisecond) through
// a fresh open (milliseconds) to the default AcquireTimeout (5 s) and
// OpenTimeout (30 s); a View in the MeterProvider can replace them.
//
// fairpool's own metrics, under its prefix (counters run from the pool's
// creation):
//
//	metric                          instrument            unit          from Stats
//	fairpool.connection.opening     UpDownCounter, async  {connection}  Opening: neither idle nor used, but counted in max
//	fairpool.connection.closing     UpDownCounter, async  {connection}  Closing: likewise
//	fairpool.connection.opens       Counter, async        {connection}  Opens
//	fairpool.connection.open_errors Counter, async        {error}       OpenErrors
//	fairpool.connection.closed      Counter, async        {connection}  Closed*, by fairpool.close.reason
//	fairpool.connection.leaks       Counter, async        {lease}       Leaks: leases held past LeakThreshold
//	fairpool.connection.reclaims    Counter, async        {lease}       Reclaims: leases dropped without Release
//	fairpool.acquires               Counter, async        {acquire}     Acquires
//	fairpool.acquire.waits          Counter, async        {acquire}     Waits: acquires that queued
//	fairpool.acquire.cancels        Counter, async        {acquire}     Cancels: waits ended by the caller's context
//	fairpool.acquire.sheds          Counter, async        {acquire}     Sheds: acquires turned away, their deadline out of reach
//	fairpool.acquire.wait_time      Counter, async        s             WaitDuration: total time waited
//
// fairpool.close.reason is one of lifetime, idle_time, check_failed,
// reset_failed, discarded, over_max_idle, pool_closed, evicted (groups)
// and reclaimed (lease dropped without Release), each reported, zero or
// not.
//
// For a source without Observe, the mean wait over an interval is still
// to be had from Stats: the increase of fairpool.acquire.wait_time divided
// by that of fairpool.acquires.
package fairotel
