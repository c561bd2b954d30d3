package configdump

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/internal/configfile"
	"github.com/gatehouse-proxy/gatehouse/internal/tomlstruct"
)

// dumpSources are the configurations the dump tests run on: the
// embedded one, every example, and config/testdata/dump-all.toml, which
// sets nearly every key (with dump-cloudflare.toml and dump-exec.toml,
// every key: the DNS providers exclude each other). They stay in config's
// testdata, where FuzzParse takes them as seeds.
func dumpSources(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"embedded": config.DefaultTOML()}
	files, _ := filepath.Glob("../../examples/*.toml")
	more, _ := filepath.Glob("../testdata/dump-*.toml")
	files = append(files, more...)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

// TestDumpRoundTrip: a dump parses, compiles to the same configuration,
// and dumps to the same text.
func TestDumpRoundTrip(t *testing.T) {
	for name, src := range dumpSources(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			file := ""
			if name != "embedded" {
				// Absolute, so that the paths it resolves are too, as the
				// dump writes them.
				file, _ = filepath.Abs(name)
			}
			c1, err := config.ParseFile(src, file)
			if err != nil {
				t.Fatal(err)
			}
			d1 := Dump(c1)
			// Parsed from another directory: the dump's paths are absolute.
			c2, err := config.ParseFile(d1, filepath.Join(t.TempDir(), "dump.toml"))
			if err != nil {
				t.Fatalf("the dump does not parse: %v\n%s", err, d1)
			}
			if d2 := Dump(c2); !bytes.Equal(d1, d2) {
				t.Errorf("dump of the dump differs:\n%s", lineDiff(string(d1), string(d2)))
			}
			if diffs := configDiff(c1, c2); len(diffs) > 0 {
				t.Errorf("the dump compiles to another configuration:\n%s", strings.Join(diffs, "\n"))
			}
		})
	}
}

// TestDumpWritesEveryKey: every key of the file format appears, with a
// value other than its zero value, in the dump of some configuration, so
// a key added to internal/configfile without its line in dump.go (fileOf)
// is caught here (config/testdata/dump-all.toml sets each key to a value other than its
// zero value). The keys listed are not dumped on purpose (see Dump).
func TestDumpWritesEveryKey(t *testing.T) {
	notDumped := []string{
		"state_dir",           // written as a comment unless set
		"sites.*.max_body",    // every route has its own
		"sites.*.allow_trace", // every route has its own
		"runtime.min_heap",    // removed: read only to say so
	}
	for _, k := range []string{"ciphers", "curves", "http2", "max_version", "min_version", "ocsp_stapling", "session_tickets"} {
		notDumped = append(notDumped, "listeners.http."+k) // https only
	}
	covered := map[string]bool{}
	for name, src := range dumpSources(t) {
		file := ""
		if name != "embedded" {
			file = name
		}
		c, err := config.ParseFile(src, file)
		if err != nil {
			t.Fatal(err)
		}
		var tree map[string]any
		if _, err := toml.Decode(string(Dump(c)), &tree); err != nil {
			t.Fatal(err)
		}
		markKeys(covered, "", reflect.TypeFor[configfile.File](), tree)
	}
	var missing []string
	for _, k := range rawKeys("", reflect.TypeFor[configfile.File]()) {
		if !covered[k] && !slices.Contains(notDumped, k) {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("keys never written by Dump (add them to fileOf in dump.go, and a value to config/testdata/dump-all.toml):\n  %s", strings.Join(missing, "\n  "))
	}
}

// rawKeys lists the key paths of the file format below type t, "*"
// standing for a name (a site, an upstream, a header).
func rawKeys(prefix string, t reflect.Type) []string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.String && t.Elem().Kind() != reflect.Int {
		t = t.Elem()
	}
	if t.Kind() == reflect.Map {
		return rawKeys(joinKey(prefix, "*"), t.Elem())
	}
	if t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
		return []string{prefix}
	}
	var out []string
	for key, idx := range tomlstruct.Fields(t) {
		out = append(out, rawKeys(joinKey(prefix, key), t.FieldByIndex(idx).Type)...)
	}
	return out
}

// joinKey appends name to the key path parent.
func joinKey(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// markKeys marks the key paths of the dumped tree v (typed by t) as
// covered.
func markKeys(covered map[string]bool, prefix string, t reflect.Type, v any) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch x := v.(type) {
	case []map[string]any:
		for _, e := range x {
			markKeys(covered, prefix, t.Elem(), e)
		}
		return
	case map[string]any:
		if t.Kind() == reflect.Map {
			for _, e := range x {
				markKeys(covered, joinKey(prefix, "*"), t.Elem(), e)
			}
			return
		}
		if t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
			fields := tomlstruct.Fields(t)
			for k, e := range x {
				if idx, ok := fields[k]; ok {
					markKeys(covered, joinKey(prefix, k), t.FieldByIndex(idx).Type, e)
				}
			}
			return
		}
	}
	if !zeroValue(v) {
		covered[prefix] = true
	}
}

// zeroValue reports whether a dumped value is empty: "", false, 0, []. A
// key is covered only by a dump that shows a real value, so a key whose
// value fileOf forgets (and leaves at its zero value, which the dump
// writes) is caught too.
func zeroValue(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case bool:
		return !x
	case int64:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	}
	return false
}

// configDiff lists where a and b differ, treating a nil and an empty
// slice or map alike and ignoring where they were read from.
func configDiff(a, b *config.Config) []string {
	var out []string
	var walk func(path string, x, y reflect.Value)
	walk = func(path string, x, y reflect.Value) {
		switch x.Kind() {
		case reflect.Pointer:
			if x.IsNil() || y.IsNil() {
				if x.IsNil() != y.IsNil() {
					out = append(out, path+": nil and not nil")
				}
				return
			}
			walk(path, x.Elem(), y.Elem())
		case reflect.Struct:
			for i := range x.NumField() {
				f := x.Type().Field(i)
				if !f.IsExported() || f.Name == "Source" {
					continue
				}
				walk(path+"."+f.Name, x.Field(i), y.Field(i))
			}
		case reflect.Slice:
			if x.Len() != y.Len() {
				out = append(out, path+": lengths differ")
				return
			}
			for i := range x.Len() {
				walk(path+"["+strconv.Itoa(i)+"]", x.Index(i), y.Index(i))
			}
		case reflect.Map:
			if x.Len() != y.Len() {
				out = append(out, path+": sizes differ")
				return
			}
			for _, k := range x.MapKeys() {
				yv := y.MapIndex(k)
				if !yv.IsValid() {
					out = append(out, path+": key missing")
					continue
				}
				walk(path+"["+k.String()+"]", x.MapIndex(k), yv)
			}
		default:
			if !reflect.DeepEqual(x.Interface(), y.Interface()) {
				out = append(out, path+": "+reprOf(x)+" and "+reprOf(y))
			}
		}
	}
	norm := func(c *config.Config) {
		for _, s := range c.Sites {
			for _, r := range s.Routes {
				if r.Files != nil && r.Files.Precompressed == nil {
					r.Files.Precompressed = []string{"br", "zstd", "gzip"}
				}
			}
		}
	}
	norm(a)
	norm(b)
	walk("Config", reflect.ValueOf(a), reflect.ValueOf(b))
	return out
}

func reprOf(v reflect.Value) string { return fmt.Sprint(v.Interface()) }

// lineDiff shows the first lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1) + ":\n- " + al[i] + "\n+ " + bl[i]
		}
	}
	return "lengths differ"
}
