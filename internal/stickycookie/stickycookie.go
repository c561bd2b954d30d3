// Package stickycookie is the proxy's side of session persistence: the
// cookie that names a client's backend server (HAProxy's cookie
// insertion). It reads the cookie from a request, makes it for a server,
// and keeps a response that sets it out of shared caches. The cookie's
// values and their check are package balancer's; the upstream client
// strips the cookie from what the backend sees.
package stickycookie

import (
	"net/http"
	"strings"
	"time"
)

// Cookie is how the persistence cookie of an upstream is written.
type Cookie struct {
	// Name is the cookie's name.
	Name string
	// Domain is its Domain attribute; "" means none (the host only).
	Domain string
	// SameSite is "strict", "none" (which forces Secure) or anything
	// else for Lax.
	SameSite string
	// MaxAge is its lifetime, in whole seconds; zero means a session
	// cookie.
	MaxAge time.Duration
}

// For is the cookie naming server id (balancer.Backend.ID), HttpOnly, for
// the whole site, and Secure when the response goes over TLS.
func (c Cookie) For(id string, overTLS bool) *http.Cookie {
	hc := &http.Cookie{Name: c.Name, Value: id, Path: "/", HttpOnly: true, Secure: overTLS, Domain: c.Domain}
	switch c.SameSite {
	case "strict":
		hc.SameSite = http.SameSiteStrictMode
	case "none":
		hc.SameSite = http.SameSiteNoneMode
		hc.Secure = true
	default:
		hc.SameSite = http.SameSiteLaxMode
	}
	if c.MaxAge > 0 {
		hc.MaxAge = int(c.MaxAge / time.Second)
	}
	return hc
}

// Value returns the value of the named cookie in a request's header
// (quotes trimmed; "" when absent), without parsing every cookie into
// objects.
func Value(h http.Header, name string) string {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// MergePrivate adds "private" to a Cache-Control value (HAProxy's
// nocache), dropping "public" so no shared cache stores a response that
// sets a server cookie.
func MergePrivate(vv []string) string {
	var parts []string
	for _, v := range vv {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if p == "" || strings.EqualFold(p, "public") || strings.EqualFold(p, "private") {
				continue
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(append([]string{"private"}, parts...), ", ")
}
