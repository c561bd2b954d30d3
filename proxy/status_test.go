package proxy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestResponseStatsPerServer: every response a server answers is counted
// on its backend (status pages compute error rates and latency from the
// sums); a 5xx it sends counts as an error; a request that never reached a
// server (a connection refused, answered 502 by Gatehouse) is counted on
// no server's responses but on its failures.
func TestResponseStatsPerServer(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer backend.Close()
	f := newFwdEdge(t, fwdConfig("gatehouse", backend.Listener.Addr().String(), "", "", ""))
	b := f.rt.Pool("app").Backends()[0]
	for _, path := range []string{"/", "/", "/boom"} {
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example"+path, nil))
	}
	st := b.ResponseStats()
	if st.Responses != 3 || st.Errors != 1 {
		t.Errorf("ResponseStats after 2×200 and 1×500 = %+v, want 3 responses, 1 error", st)
	}
	if st.Latency <= 0 {
		t.Errorf("ResponseStats latency sum %v, want > 0", st.Latency)
	}

	backend.Close() // connections are now refused
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, httptest.NewRequest("GET", "http://a.example/", nil))
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("request to a closed backend: %d, want 502", rec.Code)
	}
	if got := b.ResponseStats(); got.Responses != 3 {
		t.Errorf("ResponseStats after a refused connection = %+v, want still 3 responses (no response, no count)", got)
	}
	if b.Failures() != 1 {
		t.Errorf("Failures after a refused connection = %d, want 1", b.Failures())
	}
}
