package proxy

import (
	"github.com/gatehouse-proxy/gatehouse/internal/realip"
	"github.com/gatehouse-proxy/gatehouse/internal/requestid"
)

// Request IDs ([request_id]) are made and checked by package requestid
// (its doc says why they look as they do, and whose are kept).

// assignRequestID gives q its ID (q.id; nil when request IDs are off) and
// puts it on the response, where it stays whatever the response turns
// out to be.
func (q *request) assignRequestID() {
	rc := q.rt.cfg.RequestID
	if !rc.Enabled {
		return
	}
	if vv := q.r.Header[rc.Header]; len(vv) == 1 && requestid.Valid(vv[0]) && realip.Trusted(q.rt.trusted, q.ci.Peer) {
		q.id = vv // the request's own slice, never modified
	} else {
		var b [requestid.Len]byte
		requestid.Generate(&b)
		q.id = []string{string(b[:])}
	}
	q.w.Header()[rc.Header] = q.id
}

// requestID is q's ID, "" when request IDs are off.
func (q *request) requestID() string {
	if len(q.id) == 0 {
		return ""
	}
	return q.id[0]
}
