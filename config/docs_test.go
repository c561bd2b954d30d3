package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// fragmentMarker, on the line before a ```toml fence in the README or a
// document, marks the block as a fragment of a configuration.
const fragmentMarker = "<!-- check: fragment -->"

// TestDocSnippets keeps the TOML in the README and in docs/ valid: every
// ```toml block passes the config parser.
//
// A block is a complete configuration, unless the line before its fence
// is the fragmentMarker. A fragment is completed before it is parsed,
// with only what it leaves out: a site when it has none, host names and a
// route for a site without them, an upstream with one server for every
// upstream a route names and the fragment does not define (and a server
// for one defined without), a zone for every zone a route names. Files
// and directories named in a block need not exist: problems saying that
// one does not are not counted.
func TestDocSnippets(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md")
	n := 0
	for _, f := range files {
		for _, b := range tomlBlocks(t, f) {
			n++
			name := fmt.Sprintf("%s:%d", strings.TrimPrefix(f, "../"), b.line)
			text := b.text
			if b.fragment {
				var err error
				if text, err = completeFragment(b.text); err != nil {
					t.Errorf("%s: fragment is not TOML: %v", name, err)
					continue
				}
			}
			_, err := Parse([]byte(text))
			var ps Problems
			if err != nil && !errors.As(err, &ps) {
				t.Errorf("%s: %v", name, err)
				continue
			}
			var real []string
			for _, p := range ps {
				if !strings.Contains(p.Msg, "no such file or directory") {
					real = append(real, p.Error())
				}
			}
			if len(real) > 0 {
				hint := ""
				if !b.fragment {
					hint = "\n(a block that is not a whole configuration needs " + fragmentMarker + " on the line before its fence)"
				}
				t.Errorf("%s: the TOML block does not pass the config parser:\n  %s%s", name, strings.Join(real, "\n  "), hint)
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d TOML blocks in README.md and docs/: the scan is broken", n)
	}
}

type tomlBlock struct {
	line     int // of the opening fence
	text     string
	fragment bool
}

// tomlBlocks returns the ```toml blocks of the markdown file f.
func tomlBlocks(t *testing.T, f string) []tomlBlock {
	fh, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []tomlBlock
	var cur *tomlBlock
	var body strings.Builder
	prev := ""
	sc := bufio.NewScanner(fh)
	for line := 1; sc.Scan(); line++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(l) == "```toml":
			cur = &tomlBlock{line: line, fragment: strings.TrimSpace(prev) == fragmentMarker}
			body.Reset()
		case cur != nil && strings.TrimSpace(l) == "```":
			cur.text = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(l)
			body.WriteByte('\n')
		}
		prev = l
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// completeFragment is the fragment src completed as TestDocSnippets says.
func completeFragment(src string) (string, error) {
	var tree map[string]any
	if _, err := toml.Decode(src, &tree); err != nil {
		return "", err
	}
	sub := func(m map[string]any, key string) map[string]any {
		t, ok := m[key].(map[string]any)
		if !ok {
			t = map[string]any{}
			m[key] = t
		}
		return t
	}
	sites, upstreams, zones := sub(tree, "sites"), sub(tree, "upstreams"), sub(tree, "zones")
	if len(sites) == 0 {
		sites["check"] = map[string]any{}
	}
	for name, v := range sites {
		s, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := s["hosts"]; !ok && s["default"] != true {
			s["hosts"] = []any{name + ".check.example"}
		}
		routes := tablesOf(s["routes"])
		if len(routes) == 0 {
			routes = []map[string]any{{"path": "/", "upstream": "check"}}
			s["routes"] = routes
		}
		for _, r := range routes {
			if u, ok := r["upstream"].(string); ok && u != "" && upstreams[u] == nil {
				upstreams[u] = map[string]any{}
			}
			if zs, ok := r["limit"].([]any); ok {
				for _, z := range zs {
					if z, ok := z.(string); ok && zones[z] == nil {
						zones[z] = map[string]any{"rate": "10r/s"}
					}
				}
			}
		}
	}
	for _, v := range upstreams {
		if u, ok := v.(map[string]any); ok && u["servers"] == nil {
			u["servers"] = []map[string]any{{"address": "127.0.0.1:8000"}}
		}
	}
	if len(zones) == 0 {
		delete(tree, "zones")
	}
	var b bytes.Buffer
	err := toml.NewEncoder(&b).Encode(tree)
	return b.String(), err
}

// tablesOf is an array of tables as the TOML decoder gives it, written as
// [[...]] or inline.
func tablesOf(v any) []map[string]any {
	switch x := v.(type) {
	case []map[string]any:
		return x
	case []any:
		var out []map[string]any
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}
