package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/gatehouse-proxy/gatehouse/balancer"
	"github.com/gatehouse-proxy/gatehouse/internal/errorpage"
	"github.com/gatehouse-proxy/gatehouse/internal/sendbound"
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
		// A connect timeout is still "nothing sent": retryable, but
		// reported as 504 when it is the last try (status).
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
		return http.StatusBadGateway // refused, unreachable, reset
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

// pageFor is site s's page for code (else the built-in one); nil when
// there is none (a status without a built-in page: headers only).
func pageFor(s *site, code int) *errorpage.Page {
	if s != nil {
		if p, ok := s.pages[code]; ok {
			return p
		}
	}
	return errorpage.Builtin(code)
}

// writeError answers with page (nil: no body), the header rules applied,
// its writes bounded by sb as a proxied response's are. id is the request
// ID shown on the page ("" for none). close asks the server to close the
// connection afterwards.
func writeError(w http.ResponseWriter, page *errorpage.Page, rules respRules, id string, code int, close bool, sb sendbound.Bound) {
	if code == StatusClientClosed {
		return
	}
	n := 0
	if page != nil {
		n = page.Size(id)
	}
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Content-Length"] = []string{strconv.Itoa(n)}
	h["Cache-Control"] = noStore
	rules.Apply(h)
	if close {
		h["Connection"] = closeValue
	}
	w.WriteHeader(code)
	rc := http.NewResponseController(w)
	if page != nil {
		sb.Arm(rc)
		page.Write(w, id)
	}
	_ = sb.End(rc, page != nil)
}

var (
	htmlType   = []string{"text/html; charset=utf-8"}
	noStore    = []string{"no-store"}
	closeValue = []string{"close"}
)
