package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const modulePath = "github.com/gatehouse-proxy/gatehouse"

// listedPackage is the part of `go list -json` the guard tests read.
type listedPackage struct {
	ImportPath   string
	Name         string
	Doc          string
	GoFiles      []string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

var (
	listOnce sync.Once
	listPkgs []listedPackage
	listErr  error
)

// goList runs `go list -e -json ./...` once for the module.
func goList(t *testing.T) []listedPackage {
	t.Helper()
	listOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "list", "-e", "-json", "./...")
		cmd.Dir = moduleRoot
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			listErr = errors.New("go list: " + err.Error() + "\n" + stderr.String())
			return
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var p listedPackage
			if err := dec.Decode(&p); err == io.EOF {
				break
			} else if err != nil {
				listErr = err
				return
			}
			listPkgs = append(listPkgs, p)
		}
	})
	if listErr != nil {
		t.Fatal(listErr)
	}
	return listPkgs
}

// rel is a package path relative to the module ("" for the root).
func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, modulePath), "/")
}

// under reports whether the module-relative path p is dir or inside it.
func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// TestDependencies enforces the one-way package graph of STYLE.md §4 on
// the transitive (non-test) dependencies of every package.
func TestDependencies(t *testing.T) {
	t.Parallel()
	pkgs := goList(t)
	found := map[string]bool{}
	// The pieces split out of proxy (issue 13, "Shape of proxy/") are
	// small libraries on the standard library alone: none imports
	// another project package (internal ones included), so none can
	// grow back into a second proxy or pull the request type along.
	splitOut := map[string]bool{}
	for _, d := range []string{"internal/reqpath", "internal/realip", "internal/accesslog", "internal/clientshare",
		"internal/requestid", "internal/hostname", "internal/errorpage", "internal/headerrules", "internal/supervise", "internal/sendbound", "internal/stickycookie"} {
		splitOut[d] = false
	}
	// The libraries split out of config (issue 13): config may import
	// them, and they import nothing but the standard library and the
	// TOML decoder, so config stays importable by every package.
	// config/configdump (the printer) sits on top: it imports config and
	// these, and config never imports it.
	configLibs := map[string]bool{"internal/tomlstruct": true, "internal/configfile": true, "internal/regularfile": true, "internal/headerpolicy": true, "internal/tlsnames": true}
	// The pieces split out of tlsedge are libraries on the standard
	// library plus the modules their one job needs (their direct imports
	// are checked; project packages: the internal/ rule below).
	tlsSplit := map[string][]string{
		"internal/slogzap":        {"go.uber.org/zap"},
		"internal/ocspstaple":     {"golang.org/x/crypto/ocsp"},
		"internal/autocertimport": {"github.com/caddyserver/certmagic", "github.com/mholt/acmez/v3/acme"},
		"internal/devcert":        nil,
	}
	tlsSplitSeen := map[string]bool{}
	for _, p := range pkgs {
		if p.Error != nil {
			t.Logf("note: go list reports for %s: %s", p.ImportPath, p.Error.Err)
		}
		me := rel(p.ImportPath)
		found[strings.SplitN(me, "/", 2)[0]] = true
		found[me] = true
		if _, ok := splitOut[me]; ok {
			splitOut[me] = true
			for _, d := range p.Deps {
				if strings.HasPrefix(d, modulePath+"/") || strings.Contains(strings.SplitN(d, "/", 2)[0], ".") {
					t.Errorf("%s depends on %s: the packages split out of proxy use the standard library only", p.ImportPath, d)
				}
			}
		}
		if allowed, ok := tlsSplit[me]; ok {
			tlsSplitSeen[me] = true
			for _, d := range p.Imports {
				if !strings.Contains(strings.SplitN(d, "/", 2)[0], ".") || strings.HasPrefix(d, modulePath+"/") {
					continue
				}
				if !slices.ContainsFunc(allowed, func(m string) bool { return d == m || strings.HasPrefix(d, m+"/") }) {
					t.Errorf("%s imports %s: it may import only the standard library %v", p.ImportPath, d, allowed)
				}
			}
		}
		for _, d := range p.Deps {
			project := strings.HasPrefix(d, modulePath+"/")
			dep := rel(d)
			switch {
			case under(me, "config") && project && !configLibs[dep] && !(dep == "config" && me != "config"):
				t.Errorf("%s depends on project package %s: config imports no project package but the libraries split out of it (its subpackages also config)", p.ImportPath, d)
			case configLibs[me] && (project || strings.Contains(strings.SplitN(d, "/", 2)[0], ".") && !strings.HasPrefix(d, "github.com/BurntSushi/toml")):
				t.Errorf("%s depends on %s: the libraries split out of config use the standard library and the TOML decoder only", p.ImportPath, d)
			case (under(me, "balancer") || under(me, "ratelimit")) &&
				(d == "net/http" || strings.HasPrefix(d, "net/http/") || strings.HasPrefix(d, "github.com/prometheus/")):
				t.Errorf("%s depends on %s: balancer and ratelimit must stay free of net/http and Prometheus", p.ImportPath, d)
			case (under(me, "balancer") || under(me, "ratelimit")) && project:
				t.Errorf("%s depends on project package %s: balancer and ratelimit import no project package (not each other)", p.ImportPath, d)
			case under(me, "tlsedge") && project && !under(dep, "internal"):
				t.Errorf("%s depends on %s: tlsedge must not import proxy, edgeserver, balancer, ratelimit or config", p.ImportPath, d)
			case under(me, "proxy") && project && under(dep, "tlsedge"):
				t.Errorf("%s depends on %s: proxy must not import tlsedge (cmd wires them)", p.ImportPath, d)
			case under(me, "edgeserver") && project &&
				(under(dep, "proxy") || under(dep, "balancer") || under(dep, "tlsedge") || under(dep, "config")):
				t.Errorf("%s depends on %s: edgeserver (the connection stack) knows no routing, backends, certificates or config", p.ImportPath, d)
			case (under(me, "compress") || under(me, "staticfile")) && project && !under(dep, "internal"):
				t.Errorf("%s depends on %s: compress and staticfile are libraries the proxy calls; they import no other project package", p.ImportPath, d)
			case under(me, "cluster") && project && !under(dep, "internal") && !under(dep, "ratelimit"):
				t.Errorf("%s depends on %s: cluster implements ratelimit's and certmagic's interfaces; it imports no other project package", p.ImportPath, d)
			case under(me, "internal") && project && !under(dep, "internal"):
				t.Errorf("%s depends on %s: internal packages are leaves, importing no other project package", p.ImportPath, d)
			}
		}
		// proxy knows no concrete connection type: the framing guard and
		// the accept gates are edgeserver's, the conn wrappers and the
		// socket under them internal/wsproxy's to look through (it may
		// still depend on them through those packages).
		if under(me, "proxy") {
			for _, d := range p.Imports {
				dep := rel(d)
				switch {
				case !strings.HasPrefix(d, modulePath+"/"):
				case under(dep, "internal/h1guard"):
					t.Errorf("%s imports %s: the framing guard is edgeserver's; proxy reads ConnInfo", p.ImportPath, d)
				case under(dep, "internal/sockio"):
					t.Errorf("%s imports %s: finding the socket under a hijacked conn is internal/wsproxy's", p.ImportPath, d)
				}
			}
		}
		// The metric families are a leaf: Prometheus and the standard
		// library, no project package (the Runtime's state reaches them
		// through a collector the proxy passes in).
		if under(me, "internal/proxymetrics") {
			for _, d := range p.Deps {
				if strings.HasPrefix(d, modulePath+"/") {
					t.Errorf("%s depends on %s: proxymetrics defines families only and imports no project package", p.ImportPath, d)
				}
			}
		}
		// The WebSocket side of the proxy reports through callbacks: no
		// Prometheus (the proxy records the metrics in OnEnd).
		if under(me, "internal/wsproxy") || under(me, "internal/wstunnel") {
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/prometheus/") {
					t.Errorf("%s depends on %s: the WebSocket packages report through callbacks, the proxy owns the metrics", p.ImportPath, d)
				}
			}
		}
		// Nothing imports cmd/..., not even tests.
		for _, list := range [][]string{p.Deps, p.Imports, p.TestImports, p.XTestImports} {
			for _, d := range list {
				if strings.HasPrefix(d, modulePath+"/cmd/") && d != p.ImportPath {
					t.Errorf("%s imports %s: nothing may import a command", p.ImportPath, d)
				}
			}
		}
	}
	for _, want := range []string{"config", "proxy", "internal/wsproxy", "internal/proxymetrics", "internal/healthcheck", "internal/routing", "edgeserver", "internal", "balancer", "ratelimit", "tlsedge", "compress", "staticfile", "cluster", "cmd"} {
		if !found[want] {
			t.Errorf("go list found no package under %s/: the guard would check nothing there", want)
		}
	}
	for dir := range tlsSplit {
		if !tlsSplitSeen[dir] {
			t.Errorf("go list found no package %s: the guard would check nothing there (renamed? update the list)", dir)
		}
	}
	for dir, seen := range splitOut {
		if !seen {
			t.Errorf("go list found no package %s: the guard would check nothing there (renamed? update the list)", dir)
		}
	}
}

// TestPackageDocs: every package has a package doc comment.
func TestPackageDocs(t *testing.T) {
	t.Parallel()
	pkgs := goList(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found %d packages, want the whole module", len(pkgs))
	}
	for _, p := range pkgs {
		if len(p.GoFiles) == 0 {
			t.Errorf("%s has no non-test Go files (so no place for a package doc); add a doc.go", p.ImportPath)
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}
