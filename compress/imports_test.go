package compress

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package a leaf the proxy can call: no project
// package (proxy, config, edgeserver, tlsedge, ...) but internal/..., so
// it never forms a cycle and is tested on its own.
func TestImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/gatehouse-proxy/gatehouse/") && !strings.HasPrefix(p, "github.com/gatehouse-proxy/gatehouse/internal/") {
				t.Errorf("%s imports %s: compress imports no project package but internal/...", f, p)
			}
		}
	}
}
