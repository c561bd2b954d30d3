package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	uhttp "github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// server is a backend as the checker sees it, recording what it is told.
type server struct {
	addr    string
	mu      sync.Mutex
	results []bool
	reasons []string
	told    chan struct{}
}

func (s *server) Addr() string { return s.addr }

func (s *server) ReportCheck(ok bool, reason string) {
	s.mu.Lock()
	s.results = append(s.results, ok)
	s.reasons = append(s.reasons, reason)
	s.mu.Unlock()
	s.told <- struct{}{}
}

// transport is net/http's, recording that the checker closed it.
type transport struct {
	*http.Transport
	closed chan struct{}
}

func (t *transport) Close() { t.CloseIdleConnections(); close(t.closed) }

// TestRun: each round probes every server through the given transport and
// tells each its result (Observe first); Run closes the transport when
// ctx ends.
func TestRun(t *testing.T) {
	hosts := make(chan string, 2)
	backend := func(status int) *server {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hosts <- r.Host + " " + r.URL.Path
			w.WriteHeader(status)
		}))
		t.Cleanup(ts.Close)
		return &server{addr: strings.TrimPrefix(ts.URL, "http://"), told: make(chan struct{}, 1)}
	}
	up, down := backend(http.StatusOK), backend(http.StatusInternalServerError)
	tr := &transport{Transport: &http.Transport{}, closed: make(chan struct{})}
	var mu sync.Mutex
	observed := map[*server]bool{}
	c := New(Options[*server]{
		Servers:   func() []*server { return []*server{up, down} },
		Check:     uhttp.Check{Method: "GET", Path: "/health", Host: "app.example", Expect: []int{200}},
		Interval:  time.Hour,
		Timeout:   10 * time.Second,
		Transport: tr,
		Observe: func(s *server, ok bool, took time.Duration) {
			mu.Lock()
			observed[s] = ok
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	<-up.told
	<-down.told
	cancel()
	<-done
	select {
	case <-tr.closed:
	default:
		t.Error("Run returned without closing its transport")
	}
	for _, s := range []*server{up, down} {
		want := s == up
		if len(s.results) != 1 || s.results[0] != want {
			t.Errorf("%s told %v (%v), want one %v", s.addr, s.results, s.reasons, want)
		}
		if got, seen := observed[s]; !seen || got != want {
			t.Errorf("%s observed %v (seen %v), want %v", s.addr, got, seen, want)
		}
	}
	for range 2 {
		if h := <-hosts; h != "app.example /health" {
			t.Errorf("probe went to %q, want Host app.example and path /health", h)
		}
	}
}
