package ratelimit

// lruLinks are the links an element of an lruList embeds.
type lruLinks[T any] struct{ prev, next *T }

// lruElem is satisfied by *T when T embeds lruLinks[T] and says where.
type lruElem[T any] interface {
	*T
	links() *lruLinks[T]
}

// lruList is an intrusive doubly linked list in order of last use: front
// is the most recently used element, back the least. The zero value is
// empty. It does no locking and no allocation.
type lruList[T any, P lruElem[T]] struct{ front, back *T }

// pushFront inserts e, which must not be in a list, at the front.
func (l *lruList[T, P]) pushFront(e *T) {
	n := P(e).links()
	n.prev, n.next = nil, l.front
	if l.front != nil {
		P(l.front).links().prev = e
	}
	l.front = e
	if l.back == nil {
		l.back = e
	}
}

// remove takes e out of the list.
func (l *lruList[T, P]) remove(e *T) {
	n := P(e).links()
	if n.prev != nil {
		P(n.prev).links().next = n.next
	} else {
		l.front = n.next
	}
	if n.next != nil {
		P(n.next).links().prev = n.prev
	} else {
		l.back = n.prev
	}
	n.prev, n.next = nil, nil
}

// touch moves e, which is in the list, to the front.
func (l *lruList[T, P]) touch(e *T) {
	if l.front != e {
		l.remove(e)
		l.pushFront(e)
	}
}

// after returns the element behind e (toward the back), or nil.
func (l *lruList[T, P]) after(e *T) *T { return P(e).links().next }
