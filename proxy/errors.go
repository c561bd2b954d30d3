package proxy

import (
	"context"
	"errors"
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

// builtinPages are the default error pages, short HTML like nginx's.
var builtinPages = func() map[int][]byte {
	m := map[int][]byte{}
	for _, code := range []int{400, 403, 404, 405, 408, 413, 421, 429, 431, 500, 501, 502, 503, 504} {
		text := strconv.Itoa(code) + " " + http.StatusText(code)
		m[code] = []byte("<!DOCTYPE html>\n<html><head><title>" + text + "</title></head>\n<body><h1>" + text +
			"</h1><hr><p>gatehouse</p></body></html>\n")
	}
	return m
}()

// writeError answers with the site's page for code (or the built-in one),
// its writes bounded by sb as a proxied response's are. close asks the
// server to close the connection afterwards.
func writeError(w http.ResponseWriter, s *site, code int, close bool, sb sendBound) {
	if code == StatusClientClosed {
		return
	}
	body := builtinPages[code]
	if s != nil {
		if b, ok := s.cfg.ErrorPages[code]; ok {
			body = b
		}
	}
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	h["Cache-Control"] = noStore
	if close {
		h["Connection"] = closeValue
	}
	w.WriteHeader(code)
	rc := http.NewResponseController(w)
	if body != nil {
		sb.arm(rc)
		_, _ = w.Write(body)
	}
	_ = sb.end(rc)
}

var (
	htmlType   = []string{"text/html; charset=utf-8"}
	noStore    = []string{"no-store"}
	closeValue = []string{"close"}
)
