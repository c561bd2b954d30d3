package tomlstruct

import (
	"encoding"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Decoder fills a struct from a parsed TOML tree (the map[string]any that
// toml.Decode produces) one value at a time, so that a bad value (a
// duration that does not parse, a string where a number belongs, an
// unknown key) is reported with its full key path, array indexes included,
// and decoding goes on with the next value. The bad value is left unset,
// and the Decoder remembers it, so that the caller's own checks of that key
// can be left out (see Failed): one problem per mistake.
//
// Keys are declared as for the TOML library: a struct field with a
// `toml:"name"` tag (no tag: the field's name; "-": never decoded; options
// after a comma are ignored), of any of these types:
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
//
// A type outside this list is a programming error: Decode panics.
type Decoder struct {
	// Report receives each value that could not be decoded: its key
	// path (e.g. "sites.main.routes[0].upstream") and what is wrong with
	// it ("unknown key", "must be a string, not the integer 3"). It is
	// called in the order of the file's keys, sorted within a table.
	// Required.
	Report func(key, msg string)

	// bad holds the keys whose value could not be decoded (left unset),
	// badTables the tables holding them: see Failed.
	bad, badTables map[string]bool
}

// Decode stores tree, a TOML document as toml.Decode parses it into a
// map[string]any, in the struct v points to.
func (d *Decoder) Decode(tree map[string]any, v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("tomlstruct: Decode needs a non-nil pointer, not " + rv.Type().String())
	}
	d.decode("", tree, rv.Elem())
}

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
func (d *Decoder) decode(key string, v any, rv reflect.Value) bool {
	if rv.Kind() == reflect.Pointer {
		nv := reflect.New(rv.Type().Elem())
		if !d.decode(key, v, nv.Elem()) {
			return false
		}
		rv.Set(nv)
		return true
	}
	if rv.CanAddr() {
		switch u := rv.Addr().Interface().(type) {
		case toml.Unmarshaler:
			if err := u.UnmarshalTOML(v); err != nil {
				d.badValue(key, "%v", err)
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
				d.badValue(key, "must be a string, not %s", describe(v))
				return false
			}
			if err := u.UnmarshalText([]byte(s)); err != nil {
				d.badValue(key, "%v", err)
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
			d.badValue(key, "must be a table, not %s", describe(v))
			return false
		}
		fields := Fields(rv.Type())
		for _, name := range slices.Sorted(maps.Keys(m)) {
			f, ok := fields[name]
			if !ok {
				d.badValue(joinKey(key, name), "unknown key")
				continue
			}
			d.decode(joinKey(key, name), m[name], rv.FieldByIndex(f))
		}
		return true
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			panic("tomlstruct: a map key type must be a string: " + rv.Type().String())
		}
		m, ok := v.(map[string]any)
		if !ok {
			d.badValue(key, "must be a table, not %s", describe(v))
			return false
		}
		if rv.IsNil() {
			rv.Set(reflect.MakeMapWithSize(rv.Type(), len(m)))
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			ev := reflect.New(rv.Type().Elem()).Elem()
			if d.decode(joinKey(key, name), m[name], ev) {
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
			d.badValue(key, "must be an array, not %s", describe(v))
			return false
		}
		// A bad element keeps its place (as a zero value, not checked
		// again) so that later elements keep their index in messages.
		s := reflect.MakeSlice(rv.Type(), len(items), len(items))
		for i, item := range items {
			d.decode(key+"["+strconv.Itoa(i)+"]", item, s.Index(i))
		}
		rv.Set(s)
		return true
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.badValue(key, "must be a string, not %s", describe(v))
			return false
		}
		rv.SetString(s)
		return true
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.badValue(key, "must be true or false, not %s", describe(v))
			return false
		}
		rv.SetBool(b)
		return true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			d.badValue(key, "must be an integer, not %s", describe(v))
			return false
		}
		if rv.OverflowInt(n) {
			d.badValue(key, "%d is out of range", n)
			return false
		}
		rv.SetInt(n)
		return true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := v.(int64)
		if !ok {
			d.badValue(key, "must be an integer, not %s", describe(v))
			return false
		}
		if n < 0 || rv.OverflowUint(uint64(n)) {
			d.badValue(key, "%d is out of range", n)
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
			d.badValue(key, "must be a number, not %s", describe(v))
			return false
		}
		if rv.OverflowFloat(f) {
			d.badValue(key, "%v is out of range", f)
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
	panic("tomlstruct: cannot decode TOML into " + rv.Type().String())
}

// badValue reports a problem with the value at key and marks key, so that
// the caller can leave out later problems it causes (see Failed).
func (d *Decoder) badValue(key, format string, args ...any) {
	d.Report(key, fmt.Sprintf(format, args...))
	if d.bad == nil {
		d.bad, d.badTables = map[string]bool{}, map[string]bool{}
	}
	d.bad[key] = true
	if i := strings.LastIndexByte(key, '.'); i > 0 {
		d.badTables[key[:i]] = true
	}
}

// Failed reports whether a problem at key is a consequence of a value
// that could not be decoded, and so should not be reported: key is that
// value or inside it, or key is absent from the file (inFile false) and
// sits in a table (not the top level) that holds such a value — a route
// whose root is a number is not also told that it lacks an upstream.
func (d *Decoder) Failed(key string, inFile bool) bool {
	if len(d.bad) == 0 {
		return false
	}
	for k := key; k != ""; {
		if d.bad[k] {
			return true
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	if inFile {
		return false
	}
	i := strings.LastIndexByte(key, '.')
	return i > 0 && d.badTables[key[:i]]
}

// Fields maps the TOML keys of struct type t to field index paths (for
// reflect.Value.FieldByIndex), as Decoder and Encode see them: the fields
// of an untagged embedded struct are its parent's, and the first field to
// claim a key has it.
func Fields(t reflect.Type) map[string][]int {
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
