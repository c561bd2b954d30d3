package tomlstruct

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Valuer is implemented by a type written as one TOML value of its own
// (a duration, a size): v is the value to write (a string, a number, a
// boolean or a slice of them), and ok false means unset, so that the key
// is not written.
type Valuer interface {
	TOMLValue() (v any, ok bool)
}

// Table is a TOML table being written: its keys in order, each with a
// value, a sub-table or an array of tables. Encode builds one; the caller
// may look at it and drop keys before writing it with Bytes.
type Table struct{ entries []entry }

// entry is one key of a table: a value (text), a sub-table (sub) or an
// array of tables (subs).
type entry struct {
	key  string
	text string
	sub  *Table
	subs []*Table
}

// Encode builds the table for v, a struct (or a pointer to one) declared
// as for Decoder, or a map with string keys. Struct fields come in their
// order, map keys sorted. A key is left out when it has no value to
// write: a nil pointer, map or slice, an empty array of tables, or a
// Valuer that is unset. A struct is a table, a slice of structs an array
// of tables. A type that cannot be written is a programming error: Encode
// panics.
func Encode(v any) *Table { return tableOf(reflect.ValueOf(v)) }

func tableOf(v reflect.Value) *Table {
	t := &Table{}
	each(v, func(key string, f reflect.Value) {
		switch valueKind(f) {
		case kindOmit:
		case kindTable:
			t.entries = append(t.entries, entry{key: key, sub: tableOf(f)})
		case kindTables:
			e := entry{key: key}
			for i := range f.Len() {
				e.subs = append(e.subs, tableOf(f.Index(i)))
			}
			t.entries = append(t.entries, e)
		default:
			t.entries = append(t.entries, entry{key: key, text: tomlValue(f)})
		}
	})
	return t
}

// Keys lists t's keys in order, as they are written (quoted when they
// cannot be bare).
func (t *Table) Keys() []string {
	if t == nil {
		return nil
	}
	keys := make([]string, len(t.entries))
	for i, e := range t.entries {
		keys[i] = e.key
	}
	return keys
}

// Table is the sub-table at key, or nil (a nil *Table has no keys).
func (t *Table) Table(key string) *Table {
	if t == nil {
		return nil
	}
	for _, e := range t.entries {
		if e.key == key {
			return e.sub
		}
	}
	return nil
}

// Tables is the array of tables at key, or nil.
func (t *Table) Tables(key string) []*Table {
	if t == nil {
		return nil
	}
	for _, e := range t.entries {
		if e.key == key {
			return e.subs
		}
	}
	return nil
}

// Value is the value at key as TOML text (`"files"`, `false`, `[1, 2]`),
// or "" when key holds no value.
func (t *Table) Value(key string) string {
	if t == nil {
		return ""
	}
	for _, e := range t.entries {
		if e.key == key && e.sub == nil && e.subs == nil {
			return e.text
		}
	}
	return ""
}

// Has reports whether t has key.
func (t *Table) Has(key string) bool {
	return slices.Contains(t.Keys(), key)
}

// Drop removes keys from t.
func (t *Table) Drop(keys ...string) {
	if t == nil {
		return
	}
	t.entries = slices.DeleteFunc(t.entries, func(e entry) bool { return slices.Contains(keys, e.key) })
}

// Bytes is t written as a TOML document: its values first, then its
// sub-tables and arrays of tables, each under its header. A table that
// holds only tables gets no header of its own.
func (t *Table) Bytes() []byte {
	var b bytes.Buffer
	t.write(&b, "")
	return b.Bytes()
}

// write writes t as the body of the table named name ("" is the
// document).
func (t *Table) write(b *bytes.Buffer, name string) {
	for _, e := range t.entries {
		if e.sub == nil && e.subs == nil {
			fmt.Fprintf(b, "%s = %s\n", e.key, e.text)
		}
	}
	for _, e := range t.entries {
		full := e.key
		if name != "" {
			full = name + "." + e.key
		}
		switch {
		case e.sub != nil:
			if slices.ContainsFunc(e.sub.entries, func(e entry) bool { return e.sub == nil && e.subs == nil }) {
				fmt.Fprintf(b, "\n[%s]\n", full)
			}
			e.sub.write(b, full)
		case e.subs != nil:
			for _, s := range e.subs {
				fmt.Fprintf(b, "\n[[%s]]\n", full)
				s.write(b, full)
			}
		}
	}
}

// each calls fn for every key of the struct or map v, with its value
// (pointers followed).
func each(v reflect.Value, fn func(key string, f reflect.Value)) {
	v = reflect.Indirect(v)
	if v.Kind() == reflect.Map {
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			fn(tomlKey(k.String()), v.MapIndex(k))
		}
		return
	}
	fields := Fields(v.Type())
	type kf struct {
		key string
		idx []int
	}
	var order []kf
	for k, idx := range fields {
		order = append(order, kf{k, idx})
	}
	sort.Slice(order, func(i, j int) bool { return slices.Compare(order[i].idx, order[j].idx) < 0 })
	for _, o := range order {
		fn(tomlKey(o.key), v.FieldByIndex(o.idx))
	}
}

type kind int

const (
	kindOmit   kind = iota // nil, or an unset Valuer
	kindValue              // key = value
	kindTable              // [name]
	kindTables             // [[name]]
)

func valueKind(f reflect.Value) kind {
	if t, ok := f.Interface().(Valuer); ok {
		if _, set := t.TOMLValue(); !set {
			return kindOmit
		}
		return kindValue
	}
	switch f.Kind() {
	case reflect.Pointer, reflect.Interface:
		if f.IsNil() {
			return kindOmit
		}
		return valueKind(f.Elem())
	case reflect.Map:
		if f.IsNil() {
			return kindOmit
		}
		return kindTable
	case reflect.Struct:
		return kindTable
	case reflect.Slice:
		if f.IsNil() {
			return kindOmit
		}
		if f.Type().Elem().Kind() == reflect.Struct {
			if f.Len() == 0 {
				return kindOmit
			}
			return kindTables
		}
	}
	return kindValue
}

func tomlValue(f reflect.Value) string {
	if t, ok := f.Interface().(Valuer); ok {
		v, _ := t.TOMLValue()
		return tomlValue(reflect.ValueOf(v))
	}
	switch f.Kind() {
	case reflect.Pointer, reflect.Interface:
		return tomlValue(f.Elem())
	case reflect.String:
		return Quote(f.String())
	case reflect.Bool:
		return strconv.FormatBool(f.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(f.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(f.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		s := strconv.FormatFloat(f.Float(), 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") { // n: NaN, Inf
			s += ".0"
		}
		return s
	case reflect.Slice:
		parts := make([]string, f.Len())
		for i := range parts {
			parts[i] = tomlValue(f.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic("tomlstruct: cannot write " + f.Type().String() + " as TOML")
}

// tomlKey is k as a TOML key: bare when it can be.
func tomlKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return Quote(k)
		}
	}
	return k
}

// Quote is s as a TOML basic string.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
