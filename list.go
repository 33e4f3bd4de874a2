package fairpool

// The one intrusive doubly-linked list that every line of Pool and Group is
// made of. Intrusive, so that an element that leaves (a caller that gives
// up, a key whose idle connections run out) does so in O(1) and nothing is
// allocated on the way in or out: the links live in the element.

// node is an element's links in one list. An element that can be in several
// lists at once holds one node per list (a waiter: one for the line, one for
// the deadline list).
type node[E any] struct {
	prev, next *E
	linked     bool // in the list; lets callers add or remove without tracking it themselves
}

// linker finds in an element the node a list uses. A zero-size linker
// whose method returns a fixed field makes a list whose zero value is ready
// to use; a func-typed one (shardList's) picks the field when the list is
// made.
type linker[E any] interface {
	nodeOf(*E) *node[E]
}

// list is an intrusive list of E, linked through the nodes link picks. head,
// tail and len are read directly; only the methods change them.
type list[E any, L linker[E]] struct {
	link       L // first, so that a zero-size linker adds no padding
	head, tail *E
	len        int
}

// contains reports whether e is in the list.
func (l *list[E, L]) contains(e *E) bool { return l.link.nodeOf(e).linked }

// nextOf returns the element after e, or nil.
func (l *list[E, L]) nextOf(e *E) *E { return l.link.nodeOf(e).next }

// prevOf returns the element before e, or nil.
func (l *list[E, L]) prevOf(e *E) *E { return l.link.nodeOf(e).prev }

// pushBack puts e last, unless it is in the list already.
func (l *list[E, L]) pushBack(e *E) { l.insertBefore(e, nil) }

// pushFront puts e first, unless it is in the list already.
func (l *list[E, L]) pushFront(e *E) { l.insertAfter(e, nil) }

// insertBefore links e in front of at, or last if at is nil. An e already
// in the list stays where it is: a caller may add an element whenever it
// may need to be in (a shard that needs a connection) without checking.
func (l *list[E, L]) insertBefore(e, at *E) {
	n := l.link.nodeOf(e)
	if n.linked {
		return
	}
	n.linked = true
	n.next = at
	if at != nil {
		a := l.link.nodeOf(at)
		n.prev = a.prev
		a.prev = e
	} else {
		n.prev = l.tail
		l.tail = e
	}
	if n.prev != nil {
		l.link.nodeOf(n.prev).next = e
	} else {
		l.head = e
	}
	l.len++
}

// insertAfter links e behind at, or first if at is nil; as insertBefore,
// it leaves an e already in the list where it is.
func (l *list[E, L]) insertAfter(e, at *E) {
	if at == nil {
		l.insertBefore(e, l.head)
	} else {
		l.insertBefore(e, l.link.nodeOf(at).next)
	}
}

// remove unlinks e; an e not in the list is left alone, for the same
// reason insertBefore ignores one already in.
func (l *list[E, L]) remove(e *E) {
	n := l.link.nodeOf(e)
	if !n.linked {
		return
	}
	if n.prev != nil {
		l.link.nodeOf(n.prev).next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		l.link.nodeOf(n.next).prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next, n.linked = nil, nil, false
	l.len--
}
