package fairpgx

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrFleetFull is the error of a connect that found every slot of the
// fleet's budget (Config.FleetSize) taken, or none it may take while a
// process with fewer connections waits. IsRefusal counts it as a refusal,
// so the pool waits for the connections it holds and probes again later.
var ErrFleetFull = errors.New("fairpgx: fleet budget full")

// IsRefusal reports whether err, from a connect, means the server (or the
// fleet's budget) is full rather than broken: PostgreSQL's SQLSTATE 53300
// too_many_connections ("sorry, too many clients already", "too many
// connections for role", reserved slots), or ErrFleetFull. It is the
// default Config.Refused. 53400 configuration_limit_exceeded is not one:
// it names a setting that waiting does not change.
func IsRefusal(err error) bool {
	if errors.Is(err, ErrFleetFull) {
		return true
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53300"
}

// fleetCandidateLinger is how long the connection that waits for a slot
// is kept for the next attempt; past it nobody seems to need one.
const fleetCandidateLinger = time.Second

// fleetViewEvery bounds how often a release looks at the fleet's locks.
const fleetViewEvery = 100 * time.Millisecond

// fleet is a pool's part of a fleet-wide budget held in PostgreSQL with
// session advisory locks, in three key spaces derived from the fleet's
// name (two int4 keys each):
//
//	(slots, i)    exclusive, 0 <= i < size: one per connection of the fleet
//	(members, me) shared: held by every connection of this process that has a slot
//	(waiting, me) exclusive: held by this process's candidate, the one
//	              connection without a slot, while it waits for one
//
// A process's connection count is the number of its members locks, so
// pg_locks tells every process who waits and with how many connections:
// a process takes a free slot only if no process with fewer connections
// waits, and gives a connection back on release when a waiting process
// has two fewer than it. Shares end within one of each other.
type fleet struct {
	size                   int32
	slots, members, waitKy int32
	me                     int32

	seek chan struct{} // one connection at a time seeks a slot: at most one extra per process

	mu        sync.Mutex
	held      int                  // connections of this pool holding a slot
	giving    int                  // of those, being given back
	candidate *pgx.Conn            // connected, without a slot, holding (waiting, me)
	linger    *time.Timer          // closes candidate when unused
	viewAt    time.Time            // when needy was read
	needy     int                  // fewest connections of a waiting other process; -1: none waits
	closed    bool                 // the pool closed: no candidate is kept
	viewing   atomic.Bool          // a release is reading the view
	close     func(conn *pgx.Conn) // closes a connection, bounded
}

func newFleet(name string, size int32, closeConn func(*pgx.Conn)) *fleet {
	key := func(suffix string) int32 {
		h := fnv.New32a()
		h.Write([]byte("fairpgx fleet " + name + suffix))
		return int32(h.Sum32() & 0x7fffffff)
	}
	return &fleet{
		size: size, slots: key(""), members: key(" members"), waitKy: key(" waiting"),
		me:    int32(rand.Uint32() & 0x7fffffff),
		seek:  make(chan struct{}, 1),
		needy: -1,
		close: closeConn,
	}
}

// needySQL is the fewest connections held by a process, other than $3,
// that waits for a slot (NULL: none waits). $1 is the members key, $2 the
// waiting key.
const needySQL = `WITH l AS (
	SELECT classid::int8 AS k, objid::int8 AS o FROM pg_locks
	WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid::int8 IN ($1::int8, $2::int8))
SELECT min((SELECT count(*) FROM l m WHERE m.k = $1::int8 AND m.o = w.o)) FROM l w WHERE w.k = $2::int8 AND w.o <> $3::int8`

// trySlotSQL takes the first free slot from a random start, if no process
// with fewer than $5 connections waits, and returns it (NULL: none). The
// CASE keeps the locks untried otherwise; LIMIT 1 stops at the first lock
// taken, as the function scan is read in order.
const trySlotSQL = `WITH needy AS (` + needySQL + `)
SELECT n.min, CASE WHEN n.min IS NULL OR n.min >= $5::int8 THEN
	(SELECT q.s FROM generate_series(0, $6::int4 - 1) g(i), LATERAL (SELECT (g.i + $7::int4) % $6::int4 AS s) q
	 WHERE pg_try_advisory_lock($4::int4, q.s) LIMIT 1) END
FROM needy n`

// connect opens a connection that holds a slot of the budget, reusing
// the candidate if there is one, or returns ErrFleetFull and keeps the
// connection as the candidate. Only one connect seeks at a time, so the
// process holds at most one connection without a slot.
func (f *fleet) connect(ctx context.Context, cc *pgx.ConnConfig) (*pgx.Conn, int32, error) {
	select {
	case f.seek <- struct{}{}:
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
	defer func() { <-f.seek }()
	conn := f.takeCandidate()
	waiting := conn != nil
	if conn == nil {
		var err error
		if conn, err = pgx.ConnectConfig(ctx, cc); err != nil {
			return nil, -1, err
		}
	}
	slot, err := f.seekSlot(ctx, conn, waiting)
	switch {
	case errors.Is(err, ErrFleetFull):
		if !waiting {
			// try: the last candidate's session may not have ended yet,
			// and then its lock says the same.
			if _, err := conn.Exec(ctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4)", f.waitKy, f.me); err != nil {
				f.close(conn)
				return nil, -1, err
			}
		}
		f.keepCandidate(conn)
		return nil, -1, ErrFleetFull
	case err != nil:
		f.close(conn)
		return nil, -1, err
	}
	return conn, slot, nil
}

// seekSlot makes conn hold a slot and the members lock, and returns the
// slot, or ErrFleetFull. waiting says conn holds the waiting lock, which
// it gives up with a slot.
func (f *fleet) seekSlot(ctx context.Context, conn *pgx.Conn, waiting bool) (int32, error) {
	f.mu.Lock()
	held := f.held - f.giving
	f.mu.Unlock()
	var needy *int64
	var slot *int32
	err := conn.QueryRow(ctx, trySlotSQL, f.members, f.waitKy, f.me, f.slots, held, f.size, rand.Int32N(f.size)).Scan(&needy, &slot)
	if err != nil {
		return -1, err
	}
	f.noteNeedy(needy)
	if slot == nil {
		return -1, ErrFleetFull
	}
	f.mu.Lock()
	f.held++
	f.mu.Unlock()
	q := "SELECT pg_advisory_lock_shared($1::int4, $2::int4)"
	if waiting {
		q += ", pg_advisory_unlock($3::int4, $2::int4)"
	} else {
		q += ", $3::int4"
	}
	if _, err := conn.Exec(ctx, q, f.members, f.me, f.waitKy); err != nil {
		f.dropped(false)
		return -1, err
	}
	return *slot, nil
}

// retake makes conn, whose locks DISCARD ALL released, hold its slot and
// the members lock again. Another process may have taken the slot in
// between: then the connection must go.
func (f *fleet) retake(ctx context.Context, conn *pgx.Conn, slot int32) error {
	var ok bool
	err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1::int4, $2::int4) FROM (SELECT pg_advisory_lock_shared($3::int4, $4::int4)) m",
		f.slots, slot, f.members, f.me).Scan(&ok)
	if err == nil && !ok {
		err = fmt.Errorf("fairpgx: fleet slot %d was taken by another process during DISCARD ALL", slot)
	}
	return err
}

// noteNeedy records a fresh view.
func (f *fleet) noteNeedy(needy *int64) {
	f.mu.Lock()
	f.viewAt = time.Now()
	f.needy = -1
	if needy != nil {
		f.needy = int(*needy)
	}
	f.mu.Unlock()
}

// giveBack reports whether a connection being released, which holds a
// slot, should be closed to leave its slot to a process that waits with
// at least two connections fewer than this one. It reads the fleet's
// locks on conn at most every fleetViewEvery.
func (f *fleet) giveBack(conn *pgx.Conn) bool {
	f.mu.Lock()
	stale := time.Since(f.viewAt) >= fleetViewEvery
	f.mu.Unlock()
	if stale && f.viewing.CompareAndSwap(false, true) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var needy *int64
		if err := conn.QueryRow(ctx, needySQL, f.members, f.waitKy, f.me).Scan(&needy); err == nil {
			f.noteNeedy(needy)
		}
		cancel()
		f.viewing.Store(false)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.needy >= 0 && f.needy+1 < f.held-f.giving {
		f.giving++
		return true
	}
	return false
}

// dropped counts the close of a connection that held a slot.
func (f *fleet) dropped(given bool) {
	f.mu.Lock()
	f.held--
	if given {
		f.giving--
	}
	f.mu.Unlock()
}

func (f *fleet) takeCandidate() *pgx.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.candidate
	f.candidate = nil
	if f.linger != nil {
		f.linger.Stop()
	}
	return c
}

// keepCandidate keeps conn for the next attempt, closing it if none comes
// within fleetCandidateLinger: then nobody waits for a slot, and it must
// not hold the waiting lock.
func (f *fleet) keepCandidate(conn *pgx.Conn) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		f.close(conn)
		return
	}
	f.candidate = conn
	if f.linger == nil {
		f.linger = time.AfterFunc(fleetCandidateLinger, f.dropCandidate)
	} else {
		f.linger.Reset(fleetCandidateLinger)
	}
	f.mu.Unlock()
}

func (f *fleet) dropCandidate() {
	f.mu.Lock()
	c := f.candidate
	f.candidate = nil
	f.mu.Unlock()
	if c != nil {
		f.close(c)
	}
}

// shutdown closes the candidate for Pool.Close and keeps no other.
func (f *fleet) shutdown() {
	f.mu.Lock()
	f.closed = true
	if f.linger != nil {
		f.linger.Stop()
	}
	f.mu.Unlock()
	f.dropCandidate()
}
