package fairpool

import (
	"cmp"
	"context"
	"sync/atomic"
	"time"
)

// The data a Group keeps, all guarded by Group.mu: one shard per key, the
// requests waiting, and the intrusive lists that order them. The rules that
// move a request from one list to the next are in group_dispatch.go.

// shard is one key's pool: its idle connections, its two lines, and its
// counts. It lives from the first request for the key until the sweeper
// finds it unused for KeyIdleTime and drops it.
type shard[K cmp.Ordered, T any] struct {
	g    *Group[K, T]
	key  K
	idle idleStack[T] // LIFO, as in Pool: hot connections stay hot

	// places counts the parts that hold one of the key's PerKeyMax places:
	// leased, or past the key's line and waiting for the global limit or
	// for a connection. placeQ holds the parts waiting for a place, connQ
	// the parts that have a place and a global one and wait only for a
	// connection to be opened or released.
	places int
	placeQ partQueue[K, T]
	connQ  partQueue[K, T]
	global int // parts of this key whose request waits in Group.globalQ

	// globalParts holds the same parts, oldest first, so that a released
	// connection of the key finds at once the key's next request in the
	// global line (Group.handOnLocked). Kept by reqQueue, so every way out
	// of the global line leaves it too.
	globalParts partQueue[K, T]

	refs int // parts of requests in flight that name the key; it is not dropped while any do

	numOpen int // connections of the key: idle, leased, opening, closing
	opening int
	closing int

	idleLink shardLink[K, T] // in Group.idleShards while idle is not empty
	slotLink shardLink[K, T] // in Group.slotQ while it needs a connection the global limit refuses

	counters
	pace      pace         // how fast the key's lines move; see group_overload.go
	hist      *histogram   // allocated on the key's first wait, so idle keys stay small
	waitNanos atomic.Int64 // total wait of acquires that got a connection

	pos     int  // index in Group.all
	dropped bool // no longer in Group.shards; Stats skips it

	// The sweeper's view: acquires when it last looked, and since when
	// the shard has been seen unused (0: in use at the last look).
	seenAcquires int64
	quietSince   mono
	retiring     bool // its idle connections are closing because the key is unused; dropped once they are gone
}

// counter names one of the counters a key keeps, and the group keeps a
// running total of.
type counter int

const (
	cAcquires counter = iota
	cWaits
	cTimeouts
	cCancels
	cOpens
	cOpenErrors
	cSheds
	numCounters
)

// counters are a key's, or (Group.total) the whole group's since NewGroup,
// dropped keys included. Each change is made to both at once (Group.count),
// so Stats reads Total without walking the keys.
type counters struct {
	n        [numCounters]int64
	closedBy [numCloseReasons]int64
}

// request is one Acquire or AcquireAll: one part per key, in canonical
// (ascending) order. It moves through three stages, each a FIFO:
//
//	reqPlaces  the parts take their keys' places one after another, in key
//	           order; part step waits in its key's placeQ.
//	reqGlobal  all places held; the request waits in Group.globalQ for
//	           len(parts) places under GlobalMax, taken at once.
//	reqConns   every limit passed; parts without a connection wait in
//	           their key's connQ for one to be released or opened.
//
// It ends reqDone (every part has a connection) or reqFailed. Only the
// holder of Group.mu reads or writes it, except ready and, once it is done
// (ready received from, or served without waiting), err, its clock (start,
// deadline, byCtx) and the parts' connections and their vetting state,
// which only the request's goroutine touches then, outside any line.
type request[K cmp.Ordered, T any] struct {
	node[request[K, T]]                     // in Group.globalQ
	tlink               node[request[K, T]] // in Group.timed, while waiting for the timer

	ctx     context.Context // its values go to Open
	parts   []part[K, T]
	one     [1]part[K, T] // parts for a single-key request, without another allocation
	state   reqState
	step    int // reqPlaces: the part waiting for its place
	missing int // reqConns: parts still without a connection
	err     error

	refs    bool          // its parts count in their shards' refs
	waiting bool          // its goroutine waits on ready; ending it owes one signal
	ready   chan struct{} // capacity one: receives once when a wait ends

	// The request's clock, set once by startLocked when it first waits or
	// first vets a connection, whichever comes first, and kept through
	// retries: TimeoutError.Waited and every deadline count from start.
	start     mono          // 0 until set
	deadline  mono          // start plus AcquireTimeout (saturated); 0: no AcquireTimeout
	byCtx     bool          // the context's deadline comes no later: ctx.Done, not the timer, ends its waits
	waited    bool          // it has waited in a line (once is one wait in Stats)
	waitedFor time.Duration // how long, once served

	// For overload (group_overload.go): the context's deadline, and, for a
	// single-key request judged at entry, how many were ahead of it.
	ctxDone mono
	ahead   int
	paced   bool

	ticket   uint64
	passedAt mono // at the head of Group.globalQ: when a request behind it was first served ahead of it (Group.handOnLocked)
}

// The linkers of a request's two nodes.
type (
	requestGlobal[K cmp.Ordered, T any] struct{}
	requestTimed[K cmp.Ordered, T any]  struct{}
)

func (requestGlobal[K, T]) nodeOf(r *request[K, T]) *node[request[K, T]] { return &r.node }
func (requestTimed[K, T]) nodeOf(r *request[K, T]) *node[request[K, T]]  { return &r.tlink }

type reqState uint8

const (
	reqNew reqState = iota
	reqPlaces
	reqGlobal
	reqConns
	reqDone
	reqFailed
)

// part is a request's claim on one key.
type part[K cmp.Ordered, T any] struct {
	node[part[K, T]] // in the queue in names

	r      *request[K, T]
	s      *shard[K, T]
	c      *conn[T]     // once given
	placed bool         // holds one of the key's places
	vet    vetState     // how c fared at hand-out
	bad    closeReason  // vetBad: why c is to be closed
	run    *checkRun[T] // vetChecking: the Check under way

	ticket uint64
	in     *partQueue[K, T] // the queue it is in, or nil
}

type partLink[K cmp.Ordered, T any] struct{}

func (partLink[K, T]) nodeOf(p *part[K, T]) *node[part[K, T]] { return &p.node }

// vetState is how a part's connection fared at hand-out (group_vet.go).
type vetState uint8

const (
	vetNone     vetState = iota // given, not vetted yet
	vetOK                       // passed, or needed no vetting
	vetBad                      // expired or failed its Check: to be closed for reason bad
	vetChecking                 // its Check runs
	vetUnsure                   // its Check failed as the caller's time ran out: not the connection's fault
	vetOrphan                   // the caller gave up while its Check ran: the Check's goroutine settles it
)

// partQueue is a line of parts, oldest at the head, intrusive so that a
// part that gives up leaves in O(1). It serves from the head (FIFO) or,
// with lifo, from the tail, as Pool's waitQueue does. sum, shared by every
// key's queue of the same kind, counts the parts in all of them, for
// Stats.
type partQueue[K cmp.Ordered, T any] struct {
	list[part[K, T], partLink[K, T]]
	sum  *int
	lifo bool // GroupConfig.WaitOrder LIFO; globalParts, which mirrors the FIFO global line, never
}

func (q *partQueue[K, T]) push(p *part[K, T], ticket uint64) {
	p.ticket = ticket
	p.in = q
	q.pushBack(p)
	*q.sum++
}

// pushFront puts p first in serving order: a part whose connection failed
// its check keeps its turn. ticket is used if the queue is empty, or under
// LIFO, where the tail is served first.
func (q *partQueue[K, T]) pushFront(p *part[K, T], ticket uint64) {
	if q.head == nil || q.lifo {
		q.push(p, ticket)
		return
	}
	p.ticket = q.head.ticket - 1
	p.in = q
	q.list.pushFront(p)
	*q.sum++
}

// next returns the part to serve next without removing it, or nil.
func (q *partQueue[K, T]) next() *part[K, T] {
	if q.lifo {
		return q.tail
	}
	return q.head
}

// after returns the part served after p, or nil.
func (q *partQueue[K, T]) after(p *part[K, T]) *part[K, T] {
	if q.lifo {
		return p.prev
	}
	return p.next
}

// pop removes and returns the part to serve next, or nil.
func (q *partQueue[K, T]) pop() *part[K, T] {
	p := q.next()
	if p != nil {
		q.remove(p)
	}
	return p
}

func (q *partQueue[K, T]) remove(p *part[K, T]) {
	q.list.remove(p)
	p.in = nil
	*q.sum--
}

// nth returns the part k-th in serving order (0 is next), or nil.
func (q *partQueue[K, T]) nth(k int) *part[K, T] {
	p := q.next()
	for ; p != nil && k > 0; k-- {
		p = q.after(p)
	}
	return p
}

// reqQueue is the global line: requests in the order they reached it.
// While here, each part of a request is in its key's globalParts.
type reqQueue[K cmp.Ordered, T any] struct {
	list[request[K, T], requestGlobal[K, T]]
}

func (q *reqQueue[K, T]) push(r *request[K, T], ticket uint64) {
	r.ticket = ticket
	for i := range r.parts {
		p := &r.parts[i]
		p.s.globalParts.push(p, ticket)
	}
	q.pushBack(r)
}

func (q *reqQueue[K, T]) remove(r *request[K, T]) {
	for i := range r.parts {
		p := &r.parts[i]
		p.in.remove(p) // its key's globalParts: in no other queue while here
	}
	r.passedAt = 0
	q.list.remove(r)
}

// timedList holds the waiting requests that the timer ends, in deadline
// order, so that the timer pops the due ones from the head and re-arms for
// the new head: O(requests expired) per run, however many wait.
type timedList[K cmp.Ordered, T any] struct {
	list[request[K, T], requestTimed[K, T]]
}

// insert puts r after every request whose deadline is not later. Requests
// that share AcquireTimeout begin waiting in deadline order, so the common
// case is the tail; a request waiting again after a failed check keeps its
// first deadline and goes back past the newer ones.
func (l *timedList[K, T]) insert(r *request[K, T]) {
	after := l.tail
	for after != nil && after.deadline > r.deadline {
		after = l.prevOf(after)
	}
	l.insertAfter(r, after)
}

// shardList is a list of shards whose link, set by NewGroup, picks which of
// a shard's nodes it uses, so one shard can be in both of Group's lists.
type shardList[K cmp.Ordered, T any] struct {
	list[shard[K, T], shardLinkFunc[K, T]]
}

// shardLink is a shard's node in one shardList.
type shardLink[K cmp.Ordered, T any] node[shard[K, T]]

// shardLinkFunc picks a shard's node for a shardList.
type shardLinkFunc[K cmp.Ordered, T any] func(*shard[K, T]) *shardLink[K, T]

func (f shardLinkFunc[K, T]) nodeOf(s *shard[K, T]) *node[shard[K, T]] {
	return (*node[shard[K, T]])(f(s))
}

// todo is what a critical section decided and its caller does after
// unlocking: wake the goroutines of requests it ended (as Pool's finishPut
// sends grants after unlocking: waking a goroutine under the lock would
// lengthen every critical section, and under load turn the mutex into a
// convoy), open connections and close them, each in a goroutine of its
// own: a slow Open or Close delays no caller.
type todo[K cmp.Ordered, T any] struct {
	first  *request[K, T]   // ended: signal its goroutine (one, most often: no allocation)
	ready  []*request[K, T] // more of them
	opens  []openJob[K, T]
	closes []closeJob[K, T]
}

func (t *todo[K, T]) signal(r *request[K, T]) {
	if t.first == nil {
		t.first = r
	} else {
		t.ready = append(t.ready, r)
	}
}

type openJob[K cmp.Ordered, T any] struct {
	s   *shard[K, T]
	ctx context.Context
	at  mono // when it was decided: its cost counts from here (moveBoundLocked)
}

type closeJob[K cmp.Ordered, T any] struct {
	s  *shard[K, T]
	c  *conn[T]
	at mono
}
