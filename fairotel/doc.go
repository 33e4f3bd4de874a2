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
// time, so Acquire and Release pay nothing for them. Every series carries
// db.client.connection.pool.name. A group reports its totals like a pool
// and, if AddGroup is asked to, one series per key with fairpool.key as
// well.
//
// The conventions' metrics:
//
//	metric                                 instrument                unit          from Stats
//	db.client.connection.count             UpDownCounter, async      {connection}  Idle (state=idle), InUse (state=used)
//	db.client.connection.max               UpDownCounter, async      {connection}  MaxSize; a group's totals only with GlobalMax
//	db.client.connection.idle.max          UpDownCounter, async      {connection}  MaxIdle; not for a group's totals
//	db.client.connection.idle.min          UpDownCounter, async      {connection}  MinIdle; not for a group's totals
//	db.client.connection.pending_requests  UpDownCounter, async      {request}     Waiting
//	db.client.connection.timeouts          Counter, async            {timeout}     Timeouts (waits ended by AcquireTimeout)
//	db.client.connection.create_time       Histogram                 s             not yet recorded
//	db.client.connection.wait_time         Histogram                 s             not yet recorded
//	db.client.connection.use_time          Histogram                 s             not yet recorded
//
// idle.max and idle.min are the bounds as the pool applies them: a
// Config's MaxIdle of 0 means MaxSize, and is reported as MaxSize. A
// group's keys have the GroupConfig's MinIdle and MaxIdle; its totals
// have no idle bounds (each key's are its own, and their sum is no limit
// anyone set), so they report neither. A MinIdle of 0 is reported: it is
// the setting, not its absence.
//
// The three histograms are created, but need one observation per open,
// acquire and release, which Stats cannot give; they will be fed once the
// pool offers a hook for them. Until then they export nothing. Their
// explicit bucket boundaries, in seconds, are
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
//	fairpool.acquire.wait_time      Counter, async        s             WaitDuration: total time waited
//
// fairpool.close.reason is one of lifetime, idle_time, check_failed,
// reset_failed, discarded, over_max_idle, pool_closed, evicted (groups)
// and reclaimed (lease dropped without Release), each reported, zero or
// not.
//
// Until wait_time is fed, the mean wait over an interval is the increase
// of fairpool.acquire.wait_time divided by that of fairpool.acquires.
package fairotel
