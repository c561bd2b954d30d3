// Package headerrules applies compiled response header rules: a list of
// remove, set and add operations built once (when a configuration is
// loaded) and applied in order to every response, at the cost of map
// operations only. The values given to Set and Add are shared by every
// response and never modified.
package headerrules

import "net/http"

// Response is a list of response header operations, applied in the order
// they were added. The zero value is an empty list. A Response is not
// modified once built, so Apply is safe for concurrent use.
type Response []op

type opKind uint8

const (
	opRemove opKind = iota
	opSet
	opAdd
)

type op struct {
	kind   opKind
	name   string   // canonical header name
	values []string // shared by every response; len == cap, never modified
}

// Remove appends an operation deleting the field name (canonical form).
func (rs *Response) Remove(name string) { *rs = append(*rs, op{kind: opRemove, name: name}) }

// Set appends an operation replacing the field name's values with values
// (which must have len == cap: Add never appends to them in place).
func (rs *Response) Set(name string, values []string) {
	*rs = append(*rs, op{kind: opSet, name: name, values: values})
}

// Add appends an operation adding values to the field name.
func (rs *Response) Add(name string, values []string) {
	*rs = append(*rs, op{kind: opAdd, name: name, values: values})
}

// Apply changes h by the operations, in order.
func (rs Response) Apply(h http.Header) {
	for i := range rs {
		op := &rs[i]
		switch op.kind {
		case opRemove:
			delete(h, op.name)
		case opSet:
			h[op.name] = op.values
		case opAdd:
			// A fresh slice: the current one may be shared (a backend
			// response's values, another rule's).
			old := h[op.name]
			h[op.name] = append(append(make([]string, 0, len(old)+len(op.values)), old...), op.values...)
		}
	}
}
