package config

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The TOML library parses the file into a tree (map[string]any); decode
// then fills the raw* structs from it one value at a time, so that a bad
// value (a duration that does not parse, a string where a number belongs,
// an unknown key) is reported with its full key path, array indexes
// included, and decoding goes on with the next value. The bad value is left
// unset, and compile's own checks of that key are not reported again: one
// problem per mistake.
//
// Keys are declared as before: a struct field with a `toml:"name"` tag
// (no tag: the field's name; "-": never decoded; options after a comma
// are ignored), of any of these types:
//
//   - string, bool, the integer kinds (range-checked), float32/64 (an
//     integer is accepted);
//   - a pointer to any of them, nil when the key is absent;
//   - a slice (a TOML array, or an array of tables for a struct element);
//   - a map with string keys (a table whose keys are names);
//   - a struct (a table); an embedded struct without a tag shares its
//     parent's table;
//   - a type with an UnmarshalTOML(any) error method (toml.Unmarshaler),
//     given the value as the library parsed it, or with UnmarshalText,
//     given a string (or the text of a number or boolean);
//   - any, which receives the parsed value as it is.

// joinKey appends name to the key path parent.
func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// decode stores v, the parsed TOML value at key, in rv (settable). It
// reports whether v was accepted at rv's level: false leaves rv as it was
// (the caller then keeps the key unset). Problems below rv's level (a bad
// element, a bad field) are reported without making the whole value bad.
func (c *compiler) decode(key string, v any, rv reflect.Value) bool {
	if rv.Kind() == reflect.Pointer {
		nv := reflect.New(rv.Type().Elem())
		if !c.decode(key, v, nv.Elem()) {
			return false
		}
		rv.Set(nv)
		return true
	}
	if rv.CanAddr() {
		switch u := rv.Addr().Interface().(type) {
		case toml.Unmarshaler:
			if err := u.UnmarshalTOML(v); err != nil {
				c.badValue(key, "%v", err)
				return false
			}
			return true
		case encoding.TextUnmarshaler:
			var s string
			switch x := v.(type) {
			case string:
				s = x
			case int64, float64, bool:
				s = fmt.Sprint(x)
			default:
				c.badValue(key, "must be a string, not %s", describe(v))
				return false
			}
			if err := u.UnmarshalText([]byte(s)); err != nil {
				c.badValue(key, "%v", err)
				return false
			}
			return true
		}
	}
	switch rv.Kind() {
	case reflect.Struct:
		if tv := reflect.ValueOf(v); tv.IsValid() && tv.Type() == rv.Type() {
			rv.Set(tv) // time.Time and the library's own local times
			return true
		}
		m, ok := v.(map[string]any)
		if !ok {
			c.badValue(key, "must be a table, not %s", describe(v))
			return false
		}
		fields := tableFields(rv.Type())
		for _, name := range sortedKeys(m) {
			f, ok := fields[name]
			if !ok {
				c.badValue(joinKey(key, name), "unknown key")
				continue
			}
			c.decode(joinKey(key, name), m[name], rv.FieldByIndex(f))
		}
		return true
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			panic("config: a map key type must be a string: " + rv.Type().String())
		}
		m, ok := v.(map[string]any)
		if !ok {
			c.badValue(key, "must be a table, not %s", describe(v))
			return false
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMapWithSize(rv.Type(), len(m)))
		}
		for _, name := range sortedKeys(m) {
			ev := reflect.New(rv.Type().Elem()).Elem()
			if c.decode(joinKey(key, name), m[name], ev) {
				rv.SetMapIndex(reflect.ValueOf(name).Convert(rv.Type().Key()), ev)
			}
		}
		return true
	case reflect.Slice:
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		case []map[string]any:
			items = make([]any, len(x))
			for i, t := range x {
				items[i] = t
			}
		default:
			c.badValue(key, "must be an array, not %s", describe(v))
			return false
		}
		// A bad element keeps its place (as a zero value, not checked
		// again) so that later elements keep their index in messages.
		s := reflect.MakeSlice(rv.Type(), len(items), len(items))
		for i, item := range items {
			c.decode(key+"["+strconv.Itoa(i)+"]", item, s.Index(i))
		}
		rv.Set(s)
		return true
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			c.badValue(key, "must be a string, not %s", describe(v))
			return false
		}
		rv.SetString(s)
		return true
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			c.badValue(key, "must be true or false, not %s", describe(v))
			return false
		}
		rv.SetBool(b)
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			c.badValue(key, "must be an integer, not %s", describe(v))
			return false
		}
		if rv.OverflowInt(n) {
			c.badValue(key, "%d is out of range", n)
			return false
		}
		rv.SetInt(n)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(int64)
		if !ok {
			c.badValue(key, "must be an integer, not %s", describe(v))
			return false
		}
		if n < 0 || rv.OverflowUint(uint64(n)) {
			c.badValue(key, "%d is out of range", n)
			return false
		}
		rv.SetUint(uint64(n))
		return true
	case reflect.Float32, reflect.Float64:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int64:
			f = float64(x)
		default:
			c.badValue(key, "must be a number, not %s", describe(v))
			return false
		}
		if rv.OverflowFloat(f) {
			c.badValue(key, "%v is out of range", f)
			return false
		}
		rv.SetFloat(f)
		return true
	case reflect.Interface:
		if rv.NumMethod() == 0 {
			if v != nil {
				rv.Set(reflect.ValueOf(v))
			}
			return true
		}
	}
	panic("config: cannot decode TOML into " + rv.Type().String())
}

// badValue records a problem with the value at key and marks key, so that
// compile does not report the same mistake again (see suppressed).
func (c *compiler) badValue(key, format string, args ...any) {
	c.errf(key, format, args...)
	if c.bad == nil {
		c.bad, c.badTables = map[string]bool{}, map[string]bool{}
	}
	c.bad[key] = true
	if i := strings.LastIndexByte(key, '.'); i > 0 {
		c.badTables[key[:i]] = true
	}
}

// suppressed reports whether a problem at key is a consequence of a value
// that could not be decoded, and so is not reported: key is that value or
// inside it, or key is absent from the file and sits in a table (not the
// top level) that holds such a value — a route whose root is a number is
// not also told that it lacks an upstream.
func (c *compiler) suppressed(key string) bool {
	if len(c.bad) == 0 {
		return false
	}
	for k := key; k != ""; {
		if c.bad[k] {
			return true
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	if _, present := c.lines[key]; present {
		return false
	}
	i := strings.LastIndexByte(key, '.')
	return i > 0 && c.badTables[key[:i]]
}

// tableFields maps the TOML keys of struct type t to field index paths.
func tableFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("toml")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := out[name]; !dup {
				out[name] = idx
			}
		}
	}
	walk(t, nil)
	return out
}

// describe names a parsed TOML value's type for messages, with the value
// when it is short.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) <= 40 {
			return "the string " + strconv.Quote(x)
		}
		return "a string"
	case int64:
		return "the integer " + strconv.FormatInt(x, 10)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return "the float " + fmt.Sprint(x)
		}
		return "the float " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "the boolean " + strconv.FormatBool(x)
	case time.Time:
		return "a date or time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a %T", v)
}
