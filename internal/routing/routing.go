// Package routing holds the lookup tables a request is routed by: a site
// by its host name (an exact name, then a one-label wildcard, then the
// default site) and a route by the longest path prefix. The tables are
// built once per configuration generation and only read afterwards, so
// lookups take no lock; they cost map lookups and prefix compares.
package routing

import (
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
)

// Hosts finds the value (a site) that claims a host name. Build it with
// Add and Default before the first lookup; the zero value is empty.
type Hosts[S any] struct {
	exact     map[string]S // by host name, in hostname.Canonical's form
	wildcards map[string]S // "*.example.com" by its ".example.com"
	def       S
}

// Add registers s for name: a host name in hostname.Canonical's form, or
// a "*.example.com" wildcard, which claims every name one label under
// example.com (not example.com itself, nor a.b.example.com). A later Add
// of the same name wins.
func (t *Hosts[S]) Add(name string, s S) {
	if strings.HasPrefix(name, "*.") {
		if t.wildcards == nil {
			t.wildcards = map[string]S{}
		}
		t.wildcards[name[1:]] = s
		return
	}
	if t.exact == nil {
		t.exact = map[string]S{}
	}
	t.exact[name] = s
}

// SetDefault makes s the answer of Lookup for a host no one claims.
func (t *Hosts[S]) SetDefault(s S) { t.def = s }

// Default is the default set with SetDefault (the zero S when none).
func (t *Hosts[S]) Default() S { return t.def }

// Claiming is the value that names host (in hostname.Canonical's form):
// an exact name first, then a one-label wildcard; ok is false when none
// does.
func (t *Hosts[S]) Claiming(host string) (s S, ok bool) {
	if s, ok := t.exact[host]; ok {
		return s, true
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		s, ok = t.wildcards[host[i:]]
	}
	return s, ok
}

// Lookup is the value serving host: the one claiming it, else the
// default.
func (t *Hosts[S]) Lookup(host string) S {
	if s, ok := t.Claiming(host); ok {
		return s
	}
	return t.def
}

// Prefixes finds the value (a route) of the longest path prefix that
// matches. The zero value is empty.
type Prefixes[R any] struct {
	entries []prefix[R]
}

type prefix[R any] struct {
	path string
	fold bool
	r    R
}

// Add appends r for the paths beginning with path; fold compares ASCII
// letters without case (reqpath.HasPrefixFold). Entries are tried in the
// order added: add them longest first (config sorts a site's routes so)
// for the longest match to win.
func (t *Prefixes[R]) Add(path string, fold bool, r R) {
	t.entries = append(t.entries, prefix[R]{path, fold, r})
}

// Match returns the value of the first entry whose prefix p begins with
// (p is a normalised, decoded path, reqpath.Normalize's match form).
// Matching is case-sensitive, as nginx's prefix locations are, except on
// entries added with fold.
func (t *Prefixes[R]) Match(p string) (r R, ok bool) {
	for i := range t.entries {
		e := &t.entries[i]
		if e.fold {
			if reqpath.HasPrefixFold(p, e.path) {
				return e.r, true
			}
		} else if strings.HasPrefix(p, e.path) {
			return e.r, true
		}
	}
	return r, false
}
