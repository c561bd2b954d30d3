package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// StatusClientClosed is nginx's 499: the client went away before the
// response. It is logged, never sent, and never counted against a backend.
const StatusClientClosed = 499

// statusNoResponse is nginx's 444: Gatehouse closed the connection without
// answering (an HTTP/2 connection over its reset budget). It is logged,
// never sent.
const statusNoResponse = 444

// errorKind classifies a failed upstream attempt. Everything that decides
// status, retry and passive-health accounting for an error is here.
type errorKind uint8

const (
	errDial       errorKind = iota // could not connect: nothing was sent, always retryable
	errTimeout                     // no response head in time: 504
	errClientGone                  // the client cancelled: 499, not the backend's fault
	errBodyLimit                   // the request body grew past the limit: 413
	errBodyRead                    // reading the client's body failed (timeout, reset): 408/400
	errQueueFull                   // max_conns queue full: 503
	errQueueTime                   // queue timeout: 503
	errNoServer                    // no server available: 503
	errProtocol                    // anything else from the backend: 502
)

var errorKindNames = [...]string{"dial", "timeout", "client_gone", "body_limit", "body_read", "queue_full", "queue_timeout", "no_server", "protocol"}

func (k errorKind) String() string { return errorKindNames[k] }

// classify maps an error from picking, queueing or the round trip to its
// kind. reqCtx is the client request's context.
func classify(reqCtx context.Context, err error) errorKind {
	var de *uhttp.DialError
	var be *uhttp.BodyError
	switch {
	case errors.As(err, &be):
		if be.Limit {
			return errBodyLimit
		}
		return errBodyRead
	case reqCtx.Err() != nil && !errors.Is(err, context.DeadlineExceeded):
		return errClientGone
	case errors.Is(err, balancer.ErrQueueFull):
		return errQueueFull
	case errors.Is(err, balancer.ErrQueueTimeout):
		return errQueueTime
	case errors.Is(err, errNoBackend):
		return errNoServer
	case errors.As(err, &de):
		if isTimeout(de.Err) {
			// A connect timeout is still "nothing sent": retryable, but
			// reported as 504 when it is the last try.
			return errDial
		}
		return errDial
	case isTimeout(err):
		return errTimeout
	}
	return errProtocol
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// status is the response status of an error kind.
func (k errorKind) status(lastErr error) int {
	switch k {
	case errDial:
		var de *uhttp.DialError
		if errors.As(lastErr, &de) && isTimeout(de.Err) {
			return http.StatusGatewayTimeout
		}
		if errors.Is(lastErr, syscall.ECONNREFUSED) {
			return http.StatusBadGateway
		}
		return http.StatusBadGateway
	case errTimeout:
		return http.StatusGatewayTimeout
	case errClientGone:
		return StatusClientClosed
	case errBodyLimit:
		return http.StatusRequestEntityTooLarge
	case errBodyRead:
		return http.StatusRequestTimeout
	case errQueueFull, errQueueTime, errNoServer:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadGateway
}

// countsAgainstBackend reports whether the error is the backend's fault
// (passive health). A client that goes away, or a body problem, is not.
func (k errorKind) countsAgainstBackend() bool {
	return k == errDial || k == errTimeout || k == errProtocol
}

// errorPage is an error page body, precomputed: plain is the page sent
// when request IDs are off, parts the page split where the request ID
// goes (parts[0] ID parts[1] ID ... parts[n]).
type errorPage struct {
	plain []byte
	parts [][]byte
}

// requestIDPlaceholder is replaced by the request ID in a site's error
// page files (error_pages): "$request_id", as in header rules.
const requestIDPlaceholder = "$request_id"

// filePage is the errorPage of an error page file.
func filePage(b []byte) *errorPage {
	return &errorPage{
		plain: bytes.ReplaceAll(b, []byte(requestIDPlaceholder), nil),
		parts: bytes.Split(b, []byte(requestIDPlaceholder)),
	}
}

// builtinPages are the default error pages, short HTML like nginx's, with
// the request ID when there is one.
var builtinPages = func() map[int]*errorPage {
	m := map[int]*errorPage{}
	for _, code := range []int{400, 403, 404, 405, 408, 413, 416, 421, 429, 431, 500, 501, 502, 503, 504} {
		text := strconv.Itoa(code) + " " + http.StatusText(code)
		head := "<!DOCTYPE html>\n<html><head><title>" + text + "</title></head>\n<body><h1>" + text + "</h1><hr><p>gatehouse"
		tail := "</p></body></html>\n"
		m[code] = &errorPage{
			plain: []byte(head + tail),
			parts: [][]byte{[]byte(head + " &middot; request ID <code>"), []byte("</code>" + tail)},
		}
	}
	return m
}()

// pageFor is site s's page for code (nil s: the built-in one); nil when
// there is none (a status without a built-in page: headers only).
func pageFor(s *site, code int) *errorPage {
	if s != nil {
		if p, ok := s.pages[code]; ok {
			return p
		}
	}
	return builtinPages[code]
}

// size is the page's length with id in it.
func (p *errorPage) size(id string) int {
	if id == "" {
		return len(p.plain)
	}
	n := (len(p.parts) - 1) * len(id)
	for _, b := range p.parts {
		n += len(b)
	}
	return n
}

// write writes the page with id in it.
func (p *errorPage) write(w http.ResponseWriter, id string) {
	if id == "" {
		_, _ = w.Write(p.plain)
		return
	}
	for i, b := range p.parts {
		if i > 0 {
			_, _ = io.WriteString(w, id)
		}
		_, _ = w.Write(b)
	}
}

// writeError answers with page (nil: no body), the header rules applied,
// its writes bounded by sb as a proxied response's are. id is the request
// ID shown on the page ("" for none). close asks the server to close the
// connection afterwards.
func writeError(w http.ResponseWriter, page *errorPage, rules respRules, id string, code int, close bool, sb sendBound) {
	if code == StatusClientClosed {
		return
	}
	n := 0
	if page != nil {
		n = page.size(id)
	}
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Content-Length"] = []string{strconv.Itoa(n)}
	h["Cache-Control"] = noStore
	rules.apply(h)
	if close {
		h["Connection"] = closeValue
	}
	w.WriteHeader(code)
	rc := http.NewResponseController(w)
	if page != nil {
		sb.arm(rc)
		page.write(w, id)
	}
	_ = sb.end(rc, page != nil)
}

var (
	htmlType   = []string{"text/html; charset=utf-8"}
	noStore    = []string{"no-store"}
	closeValue = []string{"close"}
)
