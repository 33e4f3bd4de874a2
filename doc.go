// Package fairpool shares a bounded set of connections (SQL sessions, cache
// clients, sockets: any T) among many goroutines, fairly.
//
// # The contract
//
//   - Bounded: never more than Config.MaxSize connections exist, counting
//     those being opened and those being closed.
//   - Fair: waiters are served strictly in arrival order (Config.WaitOrder
//     FIFO, the default). While anyone waits, no connection is idle and no
//     slot is unused, and a newcomer queues behind the waiters: a released
//     connection goes straight to the oldest waiter, never through the idle
//     set where a newcomer could take it. TryAcquire fails rather than jump
//     the line. With N goroutines, MaxSize S and hold time h, every wait
//     stays near (N/S)·h. A caller whose connection fails its check or is
//     found expired keeps its turn: it goes back into the line ahead of
//     everyone who arrived after it. (A caller that arrives during that
//     check and finds another connection idle takes it, as when nobody
//     waits: the line is empty then.)
//   - Bounded waiting: no wait outlasts Config.AcquireTimeout (5 s unless
//     set) or its context. The error says why and shows the pool's state.
//     A caller whose context's deadline cannot be met hears so at once
//     (see Overload).
//   - Nothing lost: a connection handed to a waiter that gives up at that
//     instant goes to the next waiter or back to idle. A connection being
//     opened for a caller that gives up is kept. A panic inside With closes
//     that connection and keeps propagating; the pool stays whole.
//   - Reentrant: With inside With on the same context uses the same
//     connection, so nested use cannot deadlock even a pool of one.
//   - Faults do not break it: a Config callback (Open, Close, Check, Reset)
//     that blocks, fails or panics cannot exceed MaxSize, lose a slot, hold
//     a wait past its bound or end the program. Close callbacks run on the
//     pool's goroutines, never on a caller's; Check is bounded by the
//     caller's deadline; a panic becomes a *PanicError, logged at ERROR.
//     A caller whose context has already ended gets its error before
//     anything is handed out or checked.
//
// A Pool is safe for concurrent use by any number of goroutines.
//
// # Leases
//
// Acquire returns a *Lease, a new one each time. Exactly one of Release
// (reuse the connection) or Discard (close it: it is broken) takes effect;
// the first call wins and later calls, on that Lease or any older one, do
// nothing, so a stale Lease can never return a connection someone else now
// holds. Value panics after the lease ended for the same reason.
//
// With is the block form: it acquires, runs a function, and releases, or
// discards if the function panics or returns an error wrapping ErrBadConn.
//
// # Leaks and deadlocks
//
// With Config.TrackLeases (or LeakThreshold) every lease records where it
// was acquired: timeout errors name the oldest holders, leases held past
// LeakThreshold are logged once, a Lease dropped without Release is
// reclaimed when the garbage collector finds it (a released one never is),
// and an Acquire certain to wait forever, because With calls enclosing it
// on its own goroutine hold every connection, fails at once with
// ErrDeadlock. A lease from Acquire does not count toward that: it may
// have been handed to a goroutine that will release it, and when in doubt
// the pool waits. Require runs code with the connection an
// enclosing With bound to the context, or fails with ErrNoLease.
//
// # Groups
//
// A Group keeps one pool per key (database, shard, tenant), made on first
// use and dropped when unused, under PerKeyMax per key and GlobalMax for
// all keys. A request waits first in its key's line (order per key), then
// in one line shared by all keys (order global), each first come, first
// served. AcquireAll and WithAll take several keys all or nothing, in
// ascending order, and cannot deadlock one another.
//
// # Overload
//
// When callers come faster than the connections can serve them, a plain
// FIFO line serves every one of them late. Every waiter's context carries
// its deadline, so the pool does better by default: a caller whose
// deadline the line cannot meet (the waiters ahead, at the pace the line
// has been moving, plus the time a lease is held) is turned away at once,
// and a connection never goes to a waiter too close to its deadline to
// use it; the next in line gets it. Both fail with a *TimeoutError whose
// Err is ErrOverload (it is also a context.DeadlineExceeded) and whose
// Estimate says what the pool expected; Stats.Sheds counts them. Callers
// without a deadline (only AcquireTimeout) are never judged, and those
// that are served are served in arrival order. Config.IgnoreDeadlines
// turns this off, for comparison.
//
// WaitOrder Adaptive goes further, and helps callers without deadlines
// too: while a line has stood for 100 ms it serves the newest first and
// gives every waiter 5 ms at most, so that most are served fast and the
// rest fail fast.
//
// # Close
//
// Close fails every waiter and later Acquire with ErrClosed, closes idle
// connections, closes leased ones as they come back, and waits for all of
// that, bounded by its context: when ctx ends first, Close returns ctx's
// error at once and the closes go on; a drained pool returns nil whatever
// ctx's state.
//
// # Example
//
//	pool, err := fairpool.New(fairpool.Config[*Client]{
//		Open:    func(ctx context.Context) (*Client, error) { return Dial(ctx, addr) },
//		Close:   func(c *Client) error { return c.Close() },
//		MaxSize: 10,
//	})
//	if err != nil {
//		return err
//	}
//	defer pool.Close(context.Background())
//
//	err = pool.With(ctx, func(ctx context.Context, c *Client) error {
//		return c.Do(ctx, "PING")
//	})
package fairpool
