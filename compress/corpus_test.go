package compress

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// A corpus is a response body the benchmarks compress: the sizes of issue
// 14 (HTML ~30 KiB, JSON ~4 KiB, CSS 2 KiB, a 1 MiB script), cut from text
// shipped with the Go toolchain so nothing is downloaded or vendored, and a
// JSON API list generated like Django REST framework's output.
type corpus struct {
	name, contentType string
	data              []byte
}

// goFile reads n bytes at off of a file in GOROOT, or skips.
func goFile(tb testing.TB, rel string, off, n int) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(runtime.GOROOT(), rel))
	if err != nil {
		tb.Skipf("corpus file from the Go toolchain missing: %v", err)
	}
	if len(b) < off+n {
		tb.Skipf("corpus file %s has %d bytes, want %d", rel, len(b), off+n)
	}
	return b[off : off+n]
}

// apiJSON is a DRF-style paginated list, deterministic, about n bytes.
func apiJSON(n int) []byte {
	type user struct {
		ID         int    `json:"id"`
		Username   string `json:"username"`
		Email      string `json:"email"`
		FirstName  string `json:"first_name"`
		LastName   string `json:"last_name"`
		IsActive   bool   `json:"is_active"`
		DateJoined string `json:"date_joined"`
		URL        string `json:"url"`
	}
	first := []string{"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Margaret", "Dennis", "Frances"}
	last := []string{"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Thompson", "Hamilton", "Ritchie", "Allen"}
	rng := rand.New(rand.NewPCG(14, 3))
	page := struct {
		Count    int     `json:"count"`
		Next     string  `json:"next"`
		Previous *string `json:"previous"`
		Results  []user  `json:"results"`
	}{Count: 1234, Next: "https://example.com/api/users/?page=2"}
	for i := 0; ; i++ {
		f, l := first[rng.IntN(len(first))], last[rng.IntN(len(last))]
		id := 1000 + rng.IntN(9000)
		page.Results = append(page.Results, user{
			ID: id, Username: fmt.Sprintf("%s.%s%d", f, l, id), Email: fmt.Sprintf("%s.%s@example.com", f, l),
			FirstName: f, LastName: l, IsActive: rng.IntN(5) > 0,
			DateJoined: fmt.Sprintf("2024-%02d-%02dT%02d:%02d:%02d.%06dZ", 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1e6)),
			URL:        fmt.Sprintf("https://example.com/api/users/%d/", id),
		})
		b, _ := json.Marshal(page)
		if len(b) >= n {
			return b
		}
	}
}

func corpora(tb testing.TB) []corpus {
	tb.Helper()
	return []corpus{
		{"html-30k", "text/html; charset=utf-8", goFile(tb, "doc/go_spec.html", 40<<10, 30<<10)},
		{"json-4k", "application/json", apiJSON(4 << 10)},
		{"css-2k", "text/css", goFile(tb, "src/cmd/vendor/github.com/google/pprof/internal/driver/html/common.css", 0, 2<<10)},
		{"js-1m", "text/javascript", goFile(tb, "src/internal/trace/traceviewer/static/trace_viewer_full.html", 1<<20, 1<<20)},
	}
}
