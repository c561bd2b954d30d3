package tomlstruct

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("not a level")
	}
	return nil
}

type port int

func (p *port) UnmarshalTOML(v any) error {
	n, ok := v.(int64)
	if !ok || n < 1 || n > 65535 {
		return fmt.Errorf("%v is not a port", v)
	}
	*p = port(n)
	return nil
}

type common struct {
	Name string `toml:"name"`
}

type server struct {
	common
	Port   port     `toml:"port"`
	Weight *float64 `toml:"weight"`
}

type doc struct {
	Title   string            `toml:"title"`
	Debug   *bool             `toml:"debug"`
	Small   int8              `toml:"small"`
	Count   uint              `toml:"count"`
	Level   level             `toml:"level"`
	Tags    []string          `toml:"tags"`
	Labels  map[string]string `toml:"labels"`
	Servers []server          `toml:"servers"`
	Extra   any               `toml:"extra"`
	Skipped string            `toml:"-"`
	Untag   string
}

// decodeString decodes src into a doc, returning it and the problems as
// "line: key: msg".
func decodeString(t *testing.T, src string) (doc, []string) {
	t.Helper()
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		t.Fatal(err)
	}
	lines := ScanLines(src)
	var got []string
	d := Decoder{Report: func(key, msg string) {
		got = append(got, fmt.Sprintf("%d: %s: %s", lines.Line(key), key, msg))
	}}
	var v doc
	d.Decode(tree, &v)
	return v, got
}

func TestDecodeGood(t *testing.T) {
	v, problems := decodeString(t, `
title = "t"
debug = true
small = -3
count = 7
level = "high"
tags = ["a", "b"]
extra = [1, "x"]
Untag = "u"
[labels]
x = "1"
[[servers]]
name = "a"
port = 80
weight = 2
[[servers]]
name = "b"
port = 443
weight = 0.5
`)
	if len(problems) > 0 {
		t.Fatalf("problems: %q", problems)
	}
	w1, w2 := 2.0, 0.5
	want := doc{
		Title: "t", Debug: new(true), Small: -3, Count: 7, Level: 2, Tags: []string{"a", "b"},
		Labels:  map[string]string{"x": "1"},
		Servers: []server{{common{"a"}, 80, &w1}, {common{"b"}, 443, &w2}},
		Extra:   []any{int64(1), "x"},
		Untag:   "u",
	}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %+v\nwant %+v", v, want)
	}
}

// TestDecodeBad: every bad value is reported with its key path and line,
// and decoding goes on with the next value.
func TestDecodeBad(t *testing.T) {
	v, problems := decodeString(t, `title = 3
debug = "yes"
small = 300
count = -1
level = "medium"
tags = "a"
Skipped = "s"
[labels]
x = 1
[[servers]]
name = "a"
port = 0
[[servers]]
name = "b"
port = 80
colour = "red"
`)
	want := []string{
		`7: Skipped: unknown key`, // keys in byte order: upper case first
		`4: count: -1 is out of range`,
		`2: debug: must be true or false, not the string "yes"`,
		`9: labels.x: must be a string, not the integer 1`,
		`5: level: not a level`,
		`12: servers[0].port: 0 is not a port`,
		`16: servers[1].colour: unknown key`,
		`3: small: 300 is out of range`,
		`6: tags: must be an array, not the string "a"`,
		`1: title: must be a string, not the integer 3`,
	}
	if strings.Join(problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(want, "\n"))
	}
	if len(v.Servers) != 2 || v.Servers[1].Name != "b" || v.Servers[1].Port != 80 {
		t.Errorf("servers after a bad element: %+v", v.Servers)
	}
}

func TestFailed(t *testing.T) {
	src := "[site]\nroot = 3\nname = \"a\"\n"
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		t.Fatal(err)
	}
	type site struct {
		Root string `toml:"root"`
		Name string `toml:"name"`
		Up   string `toml:"upstream"`
	}
	var v struct {
		Site site `toml:"site"`
	}
	lines := ScanLines(src)
	d := Decoder{Report: func(string, string) {}}
	d.Decode(tree, &v)
	for _, c := range []struct {
		key  string
		want bool
	}{
		{"site.root", true},       // the bad value itself
		{"site.root.x", true},     // inside it
		{"site.upstream", true},   // absent, in the table holding it
		{"site.name", false},      // present beside it
		{"site", false},           // the table
		{"other.upstream", false}, // elsewhere
	} {
		if got := d.Failed(c.key, lines.Has(c.key)); got != c.want {
			t.Errorf("Failed(%q) = %v, want %v", c.key, got, c.want)
		}
	}
	var clean Decoder
	if clean.Failed("site.upstream", false) {
		t.Error("a decoder that found nothing bad fails keys")
	}
}

func TestScanLines(t *testing.T) {
	src := `# comment
a = 1
b.c = "x # not a comment"
s = """
multi
line"""
t = { u = 1, v = { w = 2 } }
arr = [
  1,
  [2, 3],
]

[tab]
k = 'lit'
"quoted key" = 1
[[list]]
x = 1
[[list]]
x = 2
[list.sub]
y = 3
`
	want := map[string]int{
		"a": 2, "b.c": 3, "s": 4, "t": 7, "t.u": 7, "t.v": 7, "t.v.w": 7,
		"arr": 8, // array elements are not keys: their problems get the array's line
		"tab": 13, "tab.k": 14, "tab.quoted key": 15,
		"list[0]": 16, "list[0].x": 17, "list[1]": 18, "list[1].x": 19,
		"list[1].sub": 20, "list[1].sub.y": 21,
	}
	got := ScanLines(src)
	for k, line := range want {
		if got[k] != line {
			t.Errorf("line of %q = %d, want %d", k, got[k], line)
		}
	}
	if n := got.Line("arr[1][0]"); n != 8 {
		t.Errorf("Line of an array element = %d, want the array's line 8", n)
	}
	if n := got.Line("list[1].sub.z"); n != 20 {
		t.Errorf("Line of an absent key = %d, want its table's line 20", n)
	}
	if n := got.Line("nowhere.x"); n != 0 {
		t.Errorf("Line of a key in no table = %d, want 0", n)
	}
	if !got.Has("tab.k") || got.Has("tab.z") {
		t.Error("Has is wrong")
	}
}

func FuzzScanLines(f *testing.F) {
	f.Add("a = 1\n[b]\nc = [1, {d = 2}]\n[[e]]\nf = '''x'''\n")
	f.Add("[a\n\"b\n{[")
	f.Fuzz(func(t *testing.T, s string) {
		ScanLines(s) // must not panic or loop on any input
	})
}
