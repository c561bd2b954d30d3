package proxy

import (
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
)

// Access log files and formats are package accesslog's; a site holds its
// *accesslog.Log through accessLog, which writes the request's logEntry.

// accessLog is one site's access log.
type accessLog struct{ l *accesslog.Log }

// logEntry is what one access log line says (accesslog.Entry's fields,
// filled by request.logEntry and, for a WebSocket, when its tunnel ends).
type logEntry struct {
	start     time.Time
	duration  time.Duration
	client    string
	method    string
	host      string
	uri       string
	proto     string
	status    int
	bytes     int64
	referer   string
	userAgent string
	upstream  string // backend address, "" when none was reached
	site      string
	route     string
	tls       bool
	requestID string // "" when request IDs are off

	// A WebSocket tunnel's line (see accesslog.Entry).
	ws        bool
	wsBytesIn int64
	wsCode    uint16
	wsCause   string
}

func (a *accessLog) write(e *logEntry) {
	a.l.Write(&accesslog.Entry{
		Start: e.start, Duration: e.duration, Client: e.client, Method: e.method, Host: e.host,
		URI: e.uri, Proto: e.proto, Status: e.status, Bytes: e.bytes, Referer: e.referer,
		UserAgent: e.userAgent, Upstream: e.upstream, Site: e.site, Route: e.route, TLS: e.tls,
		RequestID: e.requestID, WS: e.ws, WSBytesIn: e.wsBytesIn, WSCode: e.wsCode, WSCause: e.wsCause,
	})
}
