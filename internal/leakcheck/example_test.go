package leakcheck_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
)

// startServer is the shape of a test helper that starts a server: the
// goroutine check is registered before the server's Close, so it runs
// after it; the gauge is read at cleanup.
func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	leakcheck.Goroutines(t, "github.com/gatehouse-proxy/gatehouse")
	var inFlight atomic.Int64
	leakcheck.Zero(t, "requests in flight", func() (int64, error) { return inFlight.Load(), nil })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Example shows a helper (startServer above) registering the checks; every
// test that starts its server through it is then covered.
func Example() {
	_ = startServer
}
