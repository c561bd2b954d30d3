package proxy

import "github.com/gatehouse-proxy/gatehouse/internal/accesslog"

// Access log files and formats are package accesslog's; a site holds its
// *accesslog.Log through accessLog, which writes the request's line
// (request.logEntry fills it; a WebSocket's is completed when its tunnel
// ends).

// accessLog is one site's access log.
type accessLog struct{ l *accesslog.Log }

func (a *accessLog) write(e *accesslog.Entry) { a.l.Write(e) }
