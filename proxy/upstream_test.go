package proxy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// dnsFakeResolver answers one host name with whatever address it holds;
// switching the address is "the container got a new IP".
type dnsFakeResolver struct {
	host  string
	addrs atomic.Pointer[[]netip.Addr] // nil: the lookup fails
	calls atomic.Int64
}

func (f *dnsFakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.calls.Add(1)
	a := f.addrs.Load()
	if host != f.host || a == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]netip.Addr(nil), *a...), nil
}

func (f *dnsFakeResolver) set(a ...netip.Addr) { f.addrs.Store(&a) }

// dnsBackendPair starts two backends on the same port of 127.0.0.2 and
// 127.0.0.3 (both loopback on Linux), as two containers answering on the
// same port at different addresses. Each names itself in X-Backend.
func dnsBackendPair(t *testing.T) (port int, addrs [2]netip.Addr) {
	t.Helper()
	addrs = [2]netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	var lns [2]net.Listener
	for try := 0; try < 20 && lns[1] == nil; try++ {
		l0, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("cannot listen on 127.0.0.2 (need the whole 127/8 on loopback): %v", err)
		}
		port = l0.Addr().(*net.TCPAddr).Port
		l1, err := net.Listen("tcp", fmt.Sprintf("127.0.0.3:%d", port))
		if err != nil {
			l0.Close()
			continue
		}
		lns = [2]net.Listener{l0, l1}
	}
	if lns[1] == nil {
		t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	}
	for i, name := range []string{"A", "B"} {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			fmt.Fprintf(w, `{"backend":%q}`, name)
		}))
		s.Listener.Close()
		s.Listener = lns[i]
		s.Start()
		t.Cleanup(s.Close)
	}
	return port, addrs
}

// TestUpstreamDNSFollowsAddressChange: a server given by name
// ("web:PORT", as a Podman container name) is re-resolved every
// resolve_interval through Deps.Resolver; when its address changes the
// traffic follows without a reload, sticky clients keep their cookie (the
// id is derived from the server name, not the address), and a failing
// lookup keeps the last good address.
func TestUpstreamDNSFollowsAddressChange(t *testing.T) {
	port, addrs := dnsBackendPair(t)
	res := &dnsFakeResolver{host: "web"}
	res.set(addrs[0])
	edge, rt := dnsEdge(t, res, port, nil)

	do := func(cookie string) (backend, setCookie string) {
		t.Helper()
		req := httptest.NewRequest("GET", "http://app.test/", nil)
		req.RemoteAddr = "192.0.2.10:40000"
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		rec := httptest.NewRecorder()
		edge.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET: status %d, body %q", rec.Code, rec.Body.String())
		}
		return rec.Header().Get("X-Backend"), rec.Header().Get("Set-Cookie")
	}

	first, sc := do("")
	if first != "A" || !strings.HasPrefix(sc, "SERVERID=") {
		t.Fatalf("first request: backend %q, Set-Cookie %q; want A and a SERVERID cookie", first, sc)
	}
	cookie, _, _ := strings.Cut(sc, ";")
	for i := 0; i < 10; i++ {
		if b, _ := do(""); b != "A" {
			t.Fatalf("before the change: request went to %q, want A", b)
		}
	}

	res.set(addrs[1])
	changed := time.Now()
	var took time.Duration
	for {
		if b, _ := do(""); b == "B" {
			took = time.Since(changed)
			break
		}
		if time.Since(changed) > 3*time.Second {
			t.Fatalf("traffic still on the old address 3s after the name moved (resolve_interval 100ms); lookups: %d", res.calls.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if took > time.Second {
		t.Errorf("traffic followed the new address after %v, want within resolve_interval (100ms) + 900ms", took)
	}
	if edge.Runtime() != rt {
		t.Fatal("the Runtime was replaced: the address change must not need a reload")
	}
	if bs := rt.Pool("app").Backends(); len(bs) != 1 || bs[0].AddrPort().Addr() != addrs[1] {
		t.Errorf("pool backends after the change: %v, want one at %v", bs, addrs[1])
	}
	for i := 0; i < 10; i++ {
		b, sc := do(cookie)
		if b != "B" || sc != "" {
			t.Fatalf("sticky client after the move: backend %q, Set-Cookie %q; want B and no new cookie", b, sc)
		}
	}

	// A failing lookup keeps the last good address.
	res.addrs.Store(nil)
	calls := res.calls.Load()
	deadline := time.Now().Add(3 * time.Second)
	for res.calls.Load() < calls+3 && time.Now().Before(deadline) {
		if b, _ := do(""); b != "B" {
			t.Fatalf("while lookups fail: request went to %q, want the last good address (B)", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res.calls.Load() < calls+3 {
		t.Fatalf("only %d lookups in 3s with resolve_interval 100ms", res.calls.Load()-calls)
	}
	t.Logf("traffic followed the new address after %v", took.Round(time.Millisecond))
}

// dnsEdge builds a Runtime whose upstream "app" has one server "web:port"
// resolved through res every 100 ms, starts it behind a new Edge, and
// closes both in Cleanup. m may be nil.
func dnsEdge(t *testing.T, res *dnsFakeResolver, port int, m *Metrics) (*Edge, *Runtime) {
	t.Helper()
	return startTestEdge(t, fmt.Sprintf(`
[listeners.http]
address = "127.0.0.1:0"

[listeners.https]
address = ""

[listeners.admin]
address = ""

[sites.app]
hosts = ["app.test"]
tls = "off"
access_log = "off"

[[sites.app.routes]]
path = "/"
upstream = "app"

[upstreams.app]
servers = [{ name = "web", address = "web:%d" }]
resolve_interval = "100ms"

[upstreams.app.sticky]
secret = "dns-test"
`, port), Deps{Resolver: res, Metrics: m})
}

// TestUpstreamDNSSeveralAddresses: a name with two addresses (two
// containers behind one network alias) becomes two backends that share
// the traffic, and /metrics still gathers: each address is its own
// series, labelled "name@ip:port".
func TestUpstreamDNSSeveralAddresses(t *testing.T) {
	port, addrs := dnsBackendPair(t)
	res := &dnsFakeResolver{host: "web"}
	res.set(addrs[0], addrs[1])
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, "test")
	edge, _ := dnsEdge(t, res, port, m)
	seen := map[string]int{}
	for i := 0; i < 20; i++ {
		req := httptest.NewRequest("GET", "http://app.test/", nil)
		rec := httptest.NewRecorder()
		edge.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET: status %d", rec.Code)
		}
		seen[rec.Header().Get("X-Backend")]++
	}
	if seen["A"] != 10 || seen["B"] != 10 {
		t.Errorf("round robin over the two addresses of one name: %v, want 10 each", seen)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics with a server of two addresses: %v", err)
	}
	var servers []string
	for _, mf := range mfs {
		if mf.GetName() != "gatehouse_upstream_server_up" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "server" {
					servers = append(servers, lp.GetValue())
				}
			}
		}
	}
	want := []string{fmt.Sprintf("web@127.0.0.2:%d", port), fmt.Sprintf("web@127.0.0.3:%d", port)}
	if len(servers) != 2 || servers[0] != want[0] || servers[1] != want[1] {
		t.Errorf("gatehouse_upstream_server_up server labels %q, want %q", servers, want)
	}
}
