package staticfile

import (
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Servers keeps the file servers of a process, so that a reload that
// keeps a file route keeps its server, with its open-file cache, and no
// request that started on the old configuration meets a closed server.
// A server is shared by every [Servers.Get] with the same options for the
// same directory; a directory replaced by another under the same path (a
// symlink flipped to a new release) gets a new server. A server is closed
// when the last of its users gives it back ([Servers.Put]). Create one per
// process with [NewServers]; its methods are safe for concurrent use.
type Servers struct {
	mu   sync.Mutex
	m    map[serverKey]*sharedServer // the server the next Get returns
	refs map[*Server]*sharedServer   // every open server, with its users
}

// NewServers returns an empty set.
func NewServers() *Servers {
	return &Servers{m: map[serverKey]*sharedServer{}, refs: map[*Server]*sharedServer{}}
}

// serverKey is what makes two servers interchangeable: the Options that
// shape responses (not ErrorPage, Logger and Now, which a shared server
// keeps from the Get that opened it).
type serverKey struct {
	root, index, cacheControl, immutable, precompressed string
	internal, ignoreHashes, dotFiles                    bool
	cacheEntries                                        int
	cacheValid, cacheInactive                           time.Duration
	memoryBytes                                         int64
}

type sharedServer struct {
	s    *Server
	k    serverKey
	fi   fs.FileInfo // the directory when the server opened it
	refs int         // Gets not yet given back
}

func keyOf(o *Options) serverKey {
	k := serverKey{root: o.Root, index: strings.Join(o.Index, "/"), cacheControl: o.CacheControl,
		immutable: o.ImmutableCacheControl, internal: o.Internal, ignoreHashes: o.IgnoreHashes,
		dotFiles: o.AllowDotFiles, cacheEntries: o.CacheEntries, cacheValid: o.CacheValid,
		cacheInactive: o.CacheInactive, memoryBytes: o.MemoryBytes}
	if o.Precompressed == nil {
		k.precompressed = "default"
	} else {
		k.precompressed = "[" + strings.Join(o.Precompressed, ",") + "]"
	}
	return k
}

// Get returns the server for o: the open one with the same options for
// the same directory, or a new one ([New]). Every Get that returns a
// server must be paired with one Put of it.
func (ss *Servers) Get(o Options) (*Server, error) {
	k := keyOf(&o)
	fi, err := os.Stat(o.Root)
	if err != nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if e := ss.m[k]; e != nil {
		if os.SameFile(e.fi, fi) {
			e.refs++
			return e.s, nil
		}
		// The directory was replaced: the users of the old server keep
		// it until they give it back; new ones get a new server.
		delete(ss.m, k)
	}
	s, err := New(o)
	if err != nil {
		return nil, err
	}
	e := &sharedServer{s: s, k: k, fi: fi, refs: 1}
	ss.m[k] = e
	ss.refs[s] = e
	return s, nil
}

// Put gives back a server Get returned; the last user's Put closes it.
// A server Get did not return is ignored.
func (ss *Servers) Put(s *Server) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	e := ss.refs[s]
	if e == nil {
		return
	}
	if e.refs--; e.refs > 0 {
		return
	}
	delete(ss.refs, s)
	if ss.m[e.k] == e {
		delete(ss.m, e.k)
	}
	s.Close()
}

// Open reports how many servers are open (held by at least one user).
func (ss *Servers) Open() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.refs)
}
