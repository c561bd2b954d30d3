package proxy

import (
	"crypto/tls"
	"slices"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/headerrules"
	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// Header rules (config.HeaderRules) compiled at Build: a site's rules then
// a route's, as one list of operations applied in order, so that applying
// them costs map operations only. The headers Gatehouse owns (framing,
// hop-by-hop, the forwarding headers, Host, HSTS, the request ID, the
// X-Accel-* instructions) are refused by config; Gatehouse's own response
// fields (HSTS, the request ID, the sticky cookie) are written after the
// rules, so no rule can remove them.

// respRules are the response rules of a site or route, in order.
type respRules = headerrules.Response

// compileResponse makes the operations of the given rule tables, in order.
func compileResponse(tables ...config.HeaderRules) respRules {
	var out respRules
	for _, t := range tables {
		for _, n := range t.Remove {
			out.Remove(n)
		}
		for _, f := range t.Set {
			out.Set(f.Name, literals(f))
		}
		for _, f := range t.Add {
			out.Add(f.Name, literals(f))
		}
	}
	return out
}

// literals are a response field's values (config allows no variables
// there).
func literals(f config.HeaderField) []string {
	vs := make([]string, 0, len(f.Values))
	for _, v := range f.Values {
		vs = append(vs, v.String())
	}
	return slices.Clip(vs)
}

// reqField is a field the request rules write toward the backend.
type reqField struct {
	name   string
	lit    []string             // the values when they hold no variable; shared
	values []config.HeaderValue // else, expanded per request
}

// reqRules are the request rules of a route (the site's, then its own).
type reqRules struct {
	// omit are the client fields not passed on: removed or set by a
	// rule, and the request ID header. nil: none.
	omit   map[string]bool
	fields []reqField
}

// compileRequest merges the rule tables in order: a later table's remove
// or set of a name cancels what an earlier one wrote for it. idHeader is
// the request ID header ("" when request IDs are off).
func compileRequest(idHeader string, tables ...config.HeaderRules) reqRules {
	var rr reqRules
	omit := map[string]bool{}
	drop := func(name string) {
		omit[name] = true
		rr.fields = slices.DeleteFunc(rr.fields, func(f reqField) bool { return f.name == name })
	}
	for _, t := range tables {
		for _, n := range t.Remove {
			drop(n)
		}
		for _, f := range t.Set {
			drop(f.Name)
			rr.fields = append(rr.fields, compileField(f))
		}
		for _, f := range t.Add {
			rr.fields = append(rr.fields, compileField(f))
		}
	}
	if idHeader != "" {
		omit[idHeader] = true
	}
	if len(omit) > 0 {
		rr.omit = omit
	}
	return rr
}

func compileField(f config.HeaderField) reqField {
	rf := reqField{name: f.Name}
	for _, v := range f.Values {
		for _, p := range v {
			if p.Var != config.VarNone {
				rf.values = f.Values
				return rf
			}
		}
	}
	rf.lit = literals(f)
	return rf
}

// requestFields writes the proxy's own fields of a backend request (the
// request ID, then the route's request rules) through uhttp.Forward's
// Extra, straight into the upstream client's buffer.
type requestFields struct {
	q   *request
	buf [128]byte // scratch for expanded values
}

// WriteFields implements uhttp.Fields.
func (x *requestFields) WriteFields(w uhttp.FieldWriter) {
	q := x.q
	if q.id != nil {
		w.Field(q.rt.cfg.RequestID.Header, q.id)
	}
	for i := range q.route.reqRules.fields {
		f := &q.route.reqRules.fields[i]
		if f.lit != nil {
			w.Field(f.name, f.lit)
			continue
		}
		for _, v := range f.values {
			w.FieldBytes(f.name, q.expand(x.buf[:0], v))
		}
	}
}

// expand appends v with its variables replaced by q's values.
func (q *request) expand(b []byte, v config.HeaderValue) []byte {
	for _, p := range v {
		switch p.Var {
		case config.VarNone:
			b = append(b, p.Lit...)
		case config.VarRemoteAddr:
			b = q.client.AppendTo(b)
		case config.VarScheme:
			if q.ci.TLS != nil {
				b = append(b, "https"...)
			} else {
				b = append(b, "http"...)
			}
		case config.VarHost:
			b = append(b, q.host...)
		case config.VarRequestID:
			b = append(b, q.requestID()...)
		case config.VarSSLProtocol:
			if q.ci.TLS != nil {
				b = append(b, sslProtocol(q.ci.TLS.Version)...)
			}
		}
	}
	return b
}

// sslProtocol is nginx's $ssl_protocol for a TLS version.
func sslProtocol(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return ""
}

var _ uhttp.Fields = (*requestFields)(nil)
