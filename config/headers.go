package config

import (
	"fmt"
	"net/textproto"
	"sort"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
	"github.com/gatehouse-proxy/gatehouse/internal/headerpolicy"
)

// Header rules ([sites.X.response_headers], [sites.X.request_headers] and
// the same tables on a route): nginx's add_header ... always,
// proxy_set_header and proxy_hide_header, HAProxy's http-response
// set-header and del-header. Names and values are checked here, once; the
// proxy applies the compiled rules without parsing anything per request.
//
// Some headers are Gatehouse's to write, because a rule could put the
// response or the backend's view of the client into an unsafe state;
// naming one in a rule is a configuration error that says why
// (internal/headerpolicy decides which, and the syntax of names and
// values).

// headerVars are the variables of request header values.
var headerVars = map[string]Var{
	"remote_addr":  VarRemoteAddr,
	"scheme":       VarScheme,
	"host":         VarHost,
	"request_id":   VarRequestID,
	"ssl_protocol": VarSSLProtocol,
}

const headerVarList = "$remote_addr, $scheme, $host, $request_id, $ssl_protocol"

// parseValue splits a request header value into literals and variables
// ($name or ${name}). A "$" not followed by a letter or "{" is literal.
func parseValue(v string) (HeaderValue, error) {
	var out HeaderValue
	lit := strings.Builder{}
	for i := 0; i < len(v); {
		if v[i] != '$' || i+1 == len(v) {
			lit.WriteByte(v[i])
			i++
			continue
		}
		var name string
		j := i + 1
		switch {
		case v[j] == '{':
			end := strings.IndexByte(v[j:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed \"${\" at byte %d", i)
			}
			name, j = v[j+1:j+end], j+end+1
		case isVarByte(v[j]) && !(v[j] >= '0' && v[j] <= '9'):
			for j < len(v) && isVarByte(v[j]) {
				j++
			}
			name = v[i+1 : j]
		default:
			lit.WriteByte('$')
			i++
			continue
		}
		vr, ok := headerVars[name]
		if !ok {
			return nil, fmt.Errorf("unknown variable $%s (known: %s)", name, headerVarList)
		}
		if lit.Len() > 0 {
			out = append(out, ValuePart{Lit: lit.String()})
			lit.Reset()
		}
		out = append(out, ValuePart{Var: vr})
		i = j
	}
	if lit.Len() > 0 {
		out = append(out, ValuePart{Lit: lit.String()})
	}
	return out, nil
}

func isVarByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// headers compiles one rules table at key ("sites.a.response_headers");
// request says it is a request_headers table. requestID is the request ID
// header's canonical name, "" when request IDs are off.
func (c *compiler) headers(key string, r configfile.Headers, request bool, requestID string) HeaderRules {
	var hr HeaderRules
	seen := map[string]string{} // canonical name -> "remove", "set" or "add:<written name>"
	check := func(k, op, raw string) (string, bool) {
		if !headerpolicy.ValidName(raw) {
			c.errf(k, "%q is not a header name", raw)
			return "", false
		}
		name := textproto.CanonicalMIMEHeaderKey(raw)
		var why string
		if request {
			why = headerpolicy.Request(name, op, requestID)
		} else {
			why = headerpolicy.Response(name, requestID)
		}
		if why != "" {
			c.errf(k, "%s %s", raw, why)
			return "", false
		}
		return name, true
	}
	for i, raw := range r.Remove {
		k := fmt.Sprintf("%s.remove[%d]", key, i)
		name, ok := check(k, "remove", raw)
		if !ok {
			continue
		}
		if _, dup := seen[name]; dup {
			c.errf(k, "%s is listed twice", name)
			continue
		}
		seen[name] = "remove"
		hr.Remove = append(hr.Remove, name)
	}
	field := func(op string, m map[string]configfile.HeaderValues) []HeaderField {
		var out []HeaderField
		for _, raw := range sortedKeys(m) {
			k := key + "." + op + "." + raw
			name, ok := check(k, op, raw)
			if !ok {
				continue
			}
			if prev, dup := seen[name]; dup && (op == "set" || prev == "set" || prev == op) {
				c.errf(k, "%s is already in %s of the same table", name, prev)
				continue
			}
			seen[name] = op
			f := HeaderField{Name: name}
			if len(m[raw]) == 0 {
				c.errf(k, "has no value")
			}
			for _, v := range m[raw] {
				if why := headerpolicy.CheckValue(v); why != "" {
					c.errf(k, "value %q %s", v, why)
					continue
				}
				if !request {
					if hv, err := parseValue(v); err == nil && hasVar(hv) {
						c.errf(k, "value %q: variables are expanded in request_headers only", v)
						continue
					}
					f.Values = append(f.Values, HeaderValue{{Lit: v}})
					continue
				}
				hv, err := parseValue(v)
				if err != nil {
					c.errf(k, "value %q: %v", v, err)
					continue
				}
				f.Values = append(f.Values, hv)
			}
			out = append(out, f)
		}
		sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	hr.Set = field("set", r.Set)
	hr.Add = field("add", r.Add)
	return hr
}

func hasVar(v HeaderValue) bool {
	for _, p := range v {
		if p.Var != VarNone {
			return true
		}
	}
	return false
}

// String is the value with its variables written as $name.
func (v HeaderValue) String() string {
	var b strings.Builder
	for _, p := range v {
		if p.Var == VarNone {
			b.WriteString(p.Lit)
			continue
		}
		for name, vr := range headerVars {
			if vr == p.Var {
				b.WriteString("${" + name + "}")
			}
		}
	}
	return b.String()
}
