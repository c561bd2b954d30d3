package tomlstruct

import (
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

type seconds int

func (s seconds) TOMLValue() (any, bool) { return strconv.Itoa(int(s)) + "s", s != 0 }

func (s *seconds) UnmarshalText(b []byte) error {
	n, err := strconv.Atoi(strings.TrimSuffix(string(b), "s"))
	*s = seconds(n)
	return err
}

// TestEncode: values first, then tables and arrays of tables; unset keys
// left out; keys quoted when they cannot be bare; and what is written
// decodes back to the same value.
func TestEncode(t *testing.T) {
	type inner struct {
		Wait  seconds `toml:"wait"`
		Ratio float64 `toml:"ratio"`
	}
	type item struct {
		common
		On bool `toml:"on"`
	}
	type outer struct {
		Title  string           `toml:"title"`
		Note   *string          `toml:"note"`
		Tags   []string         `toml:"tags"`
		Nums   []int            `toml:"nums"`
		In     inner            `toml:"in"`
		ByName map[string]inner `toml:"by_name"`
		Items  []item           `toml:"items"`
		None   []item           `toml:"none"`
	}
	v := outer{
		Title: "a \"q\"\n", Tags: []string{}, Nums: []int{1, 2},
		In:     inner{Wait: 5, Ratio: 2},
		ByName: map[string]inner{"b.c": {Ratio: 0.5}, "a": {Wait: 1}},
		Items:  []item{{common{"x"}, true}, {common{"y"}, false}},
		None:   []item{},
	}
	tab := Encode(&v)
	want := `title = "a \"q\"\n"
tags = []
nums = [1, 2]

[in]
wait = "5s"
ratio = 2.0

[by_name.a]
wait = "1s"
ratio = 0.0

[by_name."b.c"]
ratio = 0.5

[[items]]
name = "x"
on = true

[[items]]
name = "y"
on = false
`
	if got := string(tab.Bytes()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := tab.Table("by_name").Keys(); strings.Join(got, " ") != `a "b.c"` {
		t.Errorf("Keys = %q", got)
	}
	if tab.Value("title") != `"a \"q\"\n"` || !tab.Has("nums") || tab.Has("note") || len(tab.Tables("items")) != 2 {
		t.Error("Value, Has or Tables is wrong")
	}
	tab.Table("in").Drop("wait")
	tab.Drop("by_name", "items")
	if got := string(tab.Bytes()); got != "title = \"a \\\"q\\\"\\n\"\ntags = []\nnums = [1, 2]\n\n[in]\nratio = 2.0\n" {
		t.Errorf("after Drop:\n%s", got)
	}

	var back outer
	var tree map[string]any
	if _, err := toml.Decode(want, &tree); err != nil {
		t.Fatal(err)
	}
	d := Decoder{Report: func(key, msg string) { t.Errorf("decoding the output: %s: %s", key, msg) }}
	d.Decode(tree, &back)
	if back.Title != v.Title || back.ByName["b.c"].Ratio != 0.5 || back.ByName["a"].Wait != 1 || len(back.Items) != 2 || back.Items[0].Name != "x" {
		t.Errorf("decoded back: %+v", back)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"a": `"a"`, `"\`: `"\"\\"`, "\t\r\n": `"\t\r\n"`, "\x00\x7f": `"\u0000\u007F"`, "é": `"é"`} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}
