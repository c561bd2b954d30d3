package staticfile

import (
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxIdle is how many idle descriptors one file keeps for reuse. A
// request borrows a descriptor for itself (see file.take), so a file read
// by more requests at once than this opens the extra descriptors and
// closes them afterwards.
const maxIdle = 2

// file is one regular file on disk (a served file or one of its
// precompressed siblings): its metadata as of the last check and a small
// pool of open descriptors.
//
// A descriptor is owned by one request at a time: http.ServeContent seeks
// and reads through the file offset, and sendfile(2) moves that offset
// too, so a descriptor shared between requests would mix their bytes.
// Borrowing instead of sharing (with ReadAt) keeps the *os.File that lets
// net/http reach sendfile, and it makes closing safe: the cache closes
// only idle descriptors; a borrowed one is closed when it comes back to a
// retired file.
type file struct {
	name    string // relative to the root
	size    int64
	modTime time.Time
	info    fs.FileInfo // for os.SameFile
	etag    []string    // Etag header value, shared, never mutated
	clen    []string    // Content-Length header value, shared, never mutated
	lastMod []string    // Last-Modified header value, shared, never mutated; nil: none (see newFile)

	// inMem: the content is data, read when the entry was built, and no
	// descriptor is used; mem is the cache whose budget holds it.
	inMem bool
	data  []byte
	mem   *cache

	mu    sync.Mutex
	idle  []*os.File // guarded by mu
	stale bool       // guarded by mu: retired; returned descriptors are closed
}

func newFile(name string, fi fs.FileInfo, coding string) *file {
	f := &file{
		name:    name,
		size:    fi.Size(),
		modTime: fi.ModTime(),
		info:    fi,
		etag:    []string{makeETag(fi, coding)},
		clen:    []string{strconv.FormatInt(fi.Size(), 10)},
		idle:    make([]*os.File, 0, maxIdle),
	}
	// As http.ServeContent's setLastModified: no Last-Modified for the
	// zero time or the Unix epoch (a file whose time was reset).
	if mt := f.modTime; !mt.IsZero() && !mt.Equal(time.Unix(0, 0)) {
		f.lastMod = []string{mt.UTC().Format(http.TimeFormat)}
	}
	return f
}

// makeETag returns a strong validator from the modification time (in
// nanoseconds) and the size, like nginx's "mtime-size" but with
// nanoseconds, so that a file rewritten within a second with the same
// size still gets a new tag. The inode is left out on purpose: two
// Gatehouse machines serving the same deploy give the same tags. A
// precompressed sibling's tag has its own time and size and the coding
// appended, so no two representations share one.
func makeETag(fi fs.FileInfo, coding string) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 16)
	if coding != "" {
		b = append(b, '-')
		b = append(b, coding...)
	}
	b = append(b, '"')
	return string(b)
}

// sameVersion reports whether two stats describe the same file with the
// same content, as far as metadata tells.
func sameVersion(a, b fs.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// take borrows a descriptor: an idle one, or a new one opened through
// root. It fails when the file on disk is no longer the one described
// (replaced, removed, changed): the caller drops the entry and looks the
// name up again.
func (f *file) take(root *os.Root) (*os.File, error) {
	f.mu.Lock()
	if n := len(f.idle); n > 0 {
		fd := f.idle[n-1]
		f.idle[n-1] = nil
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		return fd, nil
	}
	f.mu.Unlock()
	fd, fi, err := openRegular(root, f.name)
	if err != nil {
		return nil, err
	}
	if !sameVersion(fi, f.info) {
		fd.Close()
		return nil, errChanged
	}
	return fd, nil
}

// give returns a borrowed descriptor: kept for the next request, or
// closed when the file is retired or already keeps maxIdle.
func (f *file) give(fd *os.File) {
	f.mu.Lock()
	if !f.stale && len(f.idle) < maxIdle {
		f.idle = append(f.idle, fd)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	fd.Close()
}

// retire closes the idle descriptors, makes give close the borrowed ones
// when they come back, and gives the memory budget back (requests still
// reading data keep it alive until they finish).
func (f *file) retire() {
	f.mu.Lock()
	idle := f.idle
	was := f.stale
	f.idle = nil
	f.stale = true
	f.mu.Unlock()
	for _, fd := range idle {
		fd.Close()
	}
	if !was && f.mem != nil {
		f.mem.unreserve(int64(len(f.data)))
	}
}

// load reads the content of f from fd into memory when it is small and
// the cache's budget allows.
func (f *file) load(c *cache, fd *os.File) bool {
	if c == nil || f.size > SmallFileBytes || !c.reserve(f.size) {
		return false
	}
	b := make([]byte, f.size)
	if n, err := fd.ReadAt(b, 0); int64(n) != f.size {
		_ = err // shorter than its stat said (truncated meanwhile): use the descriptor
		c.unreserve(f.size)
		return false
	}
	f.data, f.inMem, f.mem = b, true, c
	return true
}

// entry is what the cache holds for one name: the file, its usable
// precompressed siblings and the response headers computed once.
type entry struct {
	key      string
	ident    *file
	enc      [maxEncodings]*file       // usable siblings, by index in Server.encs; nil: none
	sib      [maxEncodings]fs.FileInfo // every sibling seen (also stale ones), for revalidation
	avail    [maxEncodings]bool        // enc[i] != nil
	variants bool                      // some sibling is usable: responses vary on Accept-Encoding
	ctype    []string                  // Content-Type value, shared, never mutated
	cc       []string                  // Cache-Control value, shared, never mutated

	checked  atomic.Int64 // clock (Server.now) of the last check against the disk
	checking atomic.Bool  // a request is checking it now (or it was found changed)

	// guarded by cache.mu
	prev, next *entry
	lastUsed   int64
	cached     bool
}

func (e *entry) retire() {
	e.ident.retire()
	for _, f := range e.enc {
		if f != nil {
			f.retire()
		}
	}
}

// cache is the open-file cache: a bounded LRU of entries by name, each
// checked against the disk at most once per valid interval, and dropped
// after inactive without use.
type cache struct {
	max      int
	valid    int64 // ns; 0: check on every use
	inactive int64 // ns
	memMax   int64 // bytes of file content kept in memory, at most
	mem      atomic.Int64

	mu   sync.Mutex
	m    map[string]*entry // guarded by mu
	ring entry             // guarded by mu: ring.next is the most recently used, ring.prev the least
}

func newCache(max int, valid, inactive time.Duration, memMax int64) *cache {
	c := &cache{max: max, valid: int64(valid), inactive: int64(inactive), memMax: memMax, m: make(map[string]*entry)}
	c.ring.next, c.ring.prev = &c.ring, &c.ring
	return c
}

func (c *cache) unlink(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = &c.ring, c.ring.next
	c.ring.next.prev = e
	c.ring.next = e
}

// sweepLocked removes entries unused for c.inactive, and the least
// recently used ones beyond c.max, into victims.
func (c *cache) sweepLocked(now int64, victims []*entry) []*entry {
	for e := c.ring.prev; e != &c.ring; e = c.ring.prev {
		if len(c.m) <= c.max && now-e.lastUsed <= c.inactive {
			break
		}
		c.removeLocked(e)
		victims = append(victims, e)
	}
	return victims
}

func (c *cache) removeLocked(e *entry) {
	c.unlink(e)
	delete(c.m, e.key)
	e.cached = false
}

// get returns the entry for name, or nil, and marks it used.
func (c *cache) get(name string, now int64) *entry {
	var victims [4]*entry
	c.mu.Lock()
	e := c.m[name]
	if e != nil {
		if c.ring.next != e { // a hot file is at the front already
			c.unlink(e)
			c.pushFront(e)
		}
		e.lastUsed = now
	}
	v := c.sweepLocked(now, victims[:0])
	c.mu.Unlock()
	for _, x := range v {
		x.retire()
	}
	return e
}

// put adds e, replacing any entry for the same name.
func (c *cache) put(e *entry, now int64) {
	var victims [4]*entry
	v := victims[:0]
	c.mu.Lock()
	if old := c.m[e.key]; old != nil {
		c.removeLocked(old)
		v = append(v, old)
	}
	c.m[e.key] = e
	e.cached = true
	e.lastUsed = now
	c.pushFront(e)
	v = c.sweepLocked(now, v)
	c.mu.Unlock()
	for _, x := range v {
		x.retire()
	}
}

// drop removes e (if it is still the cached entry for its name) and
// retires it.
func (c *cache) drop(e *entry) {
	c.mu.Lock()
	if e.cached && c.m[e.key] == e {
		c.removeLocked(e)
	}
	c.mu.Unlock()
	e.retire()
}

// closeAll retires every entry.
func (c *cache) closeAll() {
	c.mu.Lock()
	var all []*entry
	for e := c.ring.next; e != &c.ring; e = c.ring.next {
		c.removeLocked(e)
		all = append(all, e)
	}
	c.mu.Unlock()
	for _, e := range all {
		e.retire()
	}
}

// reserve takes n bytes of the memory budget; false when they do not fit.
func (c *cache) reserve(n int64) bool {
	for {
		cur := c.mem.Load()
		if cur+n > c.memMax {
			return false
		}
		if c.mem.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (c *cache) unreserve(n int64) { c.mem.Add(-n) }

// len reports the number of cached names.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
