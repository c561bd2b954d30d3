package tlsedge

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// pebbleCA is an in-process Pebble ACME server.
type pebbleCA struct {
	dirURL    string
	wfeRoots  *x509.CertPool // trust for the directory's HTTPS
	certRoots *x509.CertPool // trust for issued certificates
	orders    atomic.Int64   // newOrder requests
	accounts  atomic.Int64   // accounts created (newAccount answered 201)
	// replaces lists the "replaces" field (RFC 9773) of every newOrder.
	replacesMu   sync.Mutex
	replaces     []string
	orderedNames []string // identifiers of every newOrder
	// ariRetryAfter, when set, replaces Pebble's fixed 6 h Retry-After on
	// renewalInfo answers (seconds), so a test sees a changed window soon.
	ariRetryAfter atomic.Pointer[string]
	// issuer signs the leaf certificates; issuerKey is its key (only with
	// keyAlg "rsa": Pebble exposes no other).
	issuer    *x509.Certificate
	issuerKey crypto.Signer
}

// pebbleOpts configure startPebbleWith.
type pebbleOpts struct {
	httpPort, tlsPort int               // where the VA validates http-01 and tls-alpn-01
	validity          uint64            // certificate lifetime in seconds (0: Pebble's default)
	eab               map[string][]byte // key ID → raw HMAC key; non-nil requires EAB
	ocspURL           string            // OCSP responder named in issued certificates
	keyAlg            string            // CA key algorithm; "" means "ecdsa"
	dnsAddr           string            // DNS server the VA asks; "" starts one answering A 127.0.0.1
	profiles          map[string]uint64 // extra profiles: name → validity in seconds
}

// startDNS answers A 127.0.0.1 for every name (TCP, as Pebble's VA asks).
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// startPebble wires Pebble's CA, VA and WFE as cmd/pebble does. The VA
// validates http-01 on httpPort and tls-alpn-01 on tlsPort of 127.0.0.1.
// validity is the certificate lifetime in seconds (0: Pebble's default).
func startPebble(t *testing.T, httpPort, tlsPort int, validity uint64) *pebbleCA {
	return startPebbleEAB(t, httpPort, tlsPort, validity, nil)
}

// startPebbleEAB is startPebble with external account binding required
// when eab (key ID → raw HMAC key) is non-nil.
func startPebbleEAB(t *testing.T, httpPort, tlsPort int, validity uint64, eab map[string][]byte) *pebbleCA {
	t.Helper()
	return startPebbleWith(t, pebbleOpts{httpPort: httpPort, tlsPort: tlsPort, validity: validity, eab: eab})
}

// startPebbleWith starts Pebble as configured by o.
func startPebbleWith(t *testing.T, o pebbleOpts) *pebbleCA {
	t.Helper()
	httpPort, tlsPort, validity, eab := o.httpPort, o.tlsPort, o.validity, o.eab
	if o.keyAlg == "" {
		o.keyAlg = "ecdsa"
	}
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	var out io.Writer = io.Discard
	if os.Getenv("TLSEDGE_PEBBLE_LOG") != "" {
		out = os.Stderr
	}
	logger := log.New(out, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: validity}}
	for n, v := range o.profiles {
		profiles[n] = ca.Profile{Description: "test " + n, ValidityPeriod: v}
	}
	authority := ca.New(logger, store, o.ocspURL, o.keyAlg, 0, 1, profiles)
	if o.dnsAddr == "" {
		o.dnsAddr = startDNS(t)
	}
	vaImpl := va.New(logger, httpPort, tlsPort, false, o.dnsAddr, store)
	for id, key := range eab {
		if err := store.AddExternalAccountKeyByID(id, base64.RawURLEncoding.EncodeToString(key)); err != nil {
			t.Fatal(err)
		}
	}
	front := wfe.New(logger, store, vaImpl, authority, []string{"pebble.letsencrypt.org"}, false, eab != nil, 0, 0)
	p := &pebbleCA{}
	h, mgmt := front.Handler(), front.ManagementHandler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var jws struct{ Payload string }
			var order struct {
				Replaces    string
				Identifiers []struct{ Value string }
			}
			if json.Unmarshal(body, &jws) == nil {
				if raw, err := base64.RawURLEncoding.DecodeString(jws.Payload); err == nil && json.Unmarshal(raw, &order) == nil {
					p.replacesMu.Lock()
					p.replaces = append(p.replaces, order.Replaces)
					for _, id := range order.Identifiers {
						p.orderedNames = append(p.orderedNames, id.Value)
					}
					p.replacesMu.Unlock()
				}
			}
		}
		if strings.HasPrefix(r.URL.Path, "/set-renewal-info/") {
			mgmt.ServeHTTP(w, r) // Pebble's management interface
			return
		}
		pw := &pebbleWriter{ResponseWriter: w, p: p, path: r.URL.Path}
		h.ServeHTTP(pw, r)
	}))
	// One request per connection: no idle keep-alive connections are left
	// in the client (which a synctest bubble could not wait out).
	srv.Config.SetKeepAlivesEnabled(false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.dirURL = srv.URL + wfe.DirectoryPath
	p.wfeRoots = x509.NewCertPool()
	p.wfeRoots.AddCert(srv.Certificate())
	p.certRoots = x509.NewCertPool()
	p.certRoots.AddCert(authority.GetRootCert(0).Cert)
	p.issuer = authority.GetIntermediateCert(0).Cert
	if k := authority.GetIntermediateKey(0); k != nil {
		p.issuerKey = k
	}
	return p
}

// pebbleWriter counts created accounts and rewrites renewalInfo's
// Retry-After when the test asks.
type pebbleWriter struct {
	http.ResponseWriter
	p    *pebbleCA
	path string
}

func (w *pebbleWriter) WriteHeader(code int) {
	if w.path == "/sign-me-up" && code == http.StatusCreated {
		w.p.accounts.Add(1)
	}
	if ra := w.p.ariRetryAfter.Load(); ra != nil && strings.Contains(w.path, "renewalInfo") {
		w.Header().Set("Retry-After", *ra)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *pebbleWriter) Write(b []byte) (int, error) { return w.ResponseWriter.Write(b) }

// ordersFor counts the orders naming name.
func (p *pebbleCA) ordersFor(name string) int {
	p.replacesMu.Lock()
	defer p.replacesMu.Unlock()
	n := 0
	for _, v := range p.orderedNames {
		if v == name {
			n++
		}
	}
	return n
}

// replacesSeen returns the replaces fields of all orders so far.
func (p *pebbleCA) replacesSeen() []string {
	p.replacesMu.Lock()
	defer p.replacesMu.Unlock()
	return append([]string(nil), p.replaces...)
}

func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// edge is a Manager running with an HTTPS listener and (optionally) a
// port-80 listener, as cmd wires it.
type edge struct {
	m          *Manager
	tlsAddr    string
	alpnHellos atomic.Int64 // acme-tls/1 ClientHellos seen
	http01Hits atomic.Int64 // challenge requests seen on port 80
	stop       func()
}

func startEdge(t *testing.T, state string, cfg Config, tlsLn, httpLn net.Listener, opts Options) *edge {
	t.Helper()
	e := &edge{}
	opts.StateDir = state
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	if err := m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	tc := m.TLSConfig(Policy{})
	get := tc.GetCertificate
	tc.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == acmeALPNProto {
			e.alpnHellos.Add(1)
		}
		return get(h)
	}
	srv := &http.Server{
		Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ErrorLog: m.HandshakeErrorLog(),
	}
	var servers []*http.Server
	done := make(chan struct{}, 2)
	go func() { srv.Serve(tls.NewListener(tlsLn, tc)); done <- struct{}{} }()
	servers = append(servers, srv)
	if httpLn != nil {
		fallback := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 404) })
		h := m.HTTPHandler(fallback)
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.http01Hits.Add(1)
			h.ServeHTTP(w, r)
		})}
		go func() { hs.Serve(httpLn); done <- struct{}{} }()
		servers = append(servers, hs)
	}
	e.tlsAddr = tlsLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-runDone; err != nil {
			t.Errorf("Run: %v", err)
		}
		for _, s := range servers {
			s.Close()
			<-done
		}
	}
	t.Cleanup(e.stop)
	return e
}

func acmeConfig(p *pebbleCA, http01, alpn bool, names ...string) Config {
	return Config{
		ACME:      ACME{Email: "ops@example.com", DirectoryURL: p.dirURL, RootCAs: p.wfeRoots, HTTP01: http01, TLSALPN01: alpn},
		ACMENames: names,
		Names:     names,
	}
}

// dialSlow allows for issuance during the handshake.
func dialSlow(addr, name string, roots *x509.CertPool) (*tls.Conn, error) {
	cfg := &tls.Config{ServerName: name, RootCAs: roots}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	return tc, nil
}

func TestACMEHTTP01RestartAndUnknownSNI(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	state := t.TempDir()
	var policyCalls atomic.Int64
	opts := Options{HostPolicy: func(ctx context.Context, host string) error {
		policyCalls.Add(1)
		return nil
	}}
	cfg := acmeConfig(p, true, false, "site.example.com")
	e := startEdge(t, state, cfg, tlsLn, httpLn, opts)

	c, err := dialSlow(e.tlsAddr, "site.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance via http-01): %v", err)
	}
	leaf := leafOf(c)
	if resp, err := get(c); err != nil || resp == "" {
		t.Errorf("request over the new certificate: %q %v", resp, err)
	}
	c.Close()
	if leaf.VerifyHostname("site.example.com") != nil {
		t.Errorf("issued certificate names %v", leaf.DNSNames)
	}
	if got := p.orders.Load(); got != 1 {
		t.Errorf("orders at the CA = %d, want 1", got)
	}
	if e.http01Hits.Load() == 0 {
		t.Error("no http-01 validation request reached port 80")
	}
	if got := e.alpnHellos.Load(); got != 0 {
		t.Errorf("%d tls-alpn-01 validations with tls-alpn-01 disabled", got)
	}
	if policyCalls.Load() == 0 {
		t.Error("Options.HostPolicy never consulted")
	}

	// Unknown SNI: the handshake fails and nothing reaches the CA, also
	// when the client asks for acme-tls/1.
	for _, mod := range []func(*tls.Config){nil, func(c *tls.Config) { c.NextProtos = []string{acmeALPNProto} }} {
		if c, err := dial(e.tlsAddr, "unknown.example.com", p.certRoots, mod); err == nil {
			c.Close()
			t.Error("handshake for an unconfigured name succeeded")
		}
	}
	if _, err := e.m.GetCertificate(monitorHello("unknown.example.com")); err == nil {
		t.Error("GetCertificate for an unconfigured name succeeded")
	}
	if got := p.orders.Load(); got != 1 {
		t.Errorf("orders at the CA after unknown SNI = %d, want 1", got)
	}
	if got := failures(e.m, reasonUnknownSNI); got < 3 {
		t.Errorf("unknown_sni failures = %v, want >= 3", got)
	}

	// Restart: a new Manager on the same state dir serves the cached
	// certificate without a new order.
	e.stop()
	tlsLn2, _ := listen(t)
	e2 := startEdge(t, state, cfg, tlsLn2, nil, Options{})
	c, err = dialSlow(e2.tlsAddr, "site.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake after restart: %v", err)
	}
	if got := leafOf(c).SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after restart served serial %v, want cached %v", got, leaf.SerialNumber)
	}
	c.Close()
	waitFor(t, func() bool {
		e2.m.maintMu.Lock()
		defer e2.m.maintMu.Unlock()
		_, ok := e2.m.acmeSeen["site.example.com"]
		return ok
	})
	if got := p.orders.Load(); got != 1 {
		t.Errorf("orders at the CA after restart = %d, want 1", got)
	}
	for _, f := range []string{state, state + "/certmagic"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, %v; want 0700", f, fi.Mode().Perm(), err)
		}
	}
}

func TestACMETLSALPN01(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	_, closedPort := listen(t) // http-01 must not be used: nothing serves it
	p := startPebble(t, closedPort, tlsPort, 0)
	e := startEdge(t, t.TempDir(), acmeConfig(p, false, true, "alpn.example.com"), tlsLn, nil, Options{})
	c, err := dialSlow(e.tlsAddr, "alpn.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance via tls-alpn-01): %v", err)
	}
	c.Close()
	if e.alpnHellos.Load() == 0 {
		t.Error("no tls-alpn-01 validation handshake reached the listener")
	}
	if got := p.orders.Load(); got != 1 {
		t.Errorf("orders = %d, want 1", got)
	}
}

func TestACMERenewalKeepsServing(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	// Pebble issues 1 h certificates; a renew ratio of 1 puts every
	// certificate inside its renewal window at once, and certmagic looks
	// every 100 ms. The Manager's clock (the overdue warning) is 50 min
	// into the hour.
	p := startPebble(t, httpPort, tlsPort, 3600)
	cfg := acmeConfig(p, true, false, "renew.example.com")
	cfg.ACME.RenewRatio = 1
	reg := newRegistry()
	clock := newClock()
	clock.Advance(50 * time.Minute)
	e := startEdge(t, t.TempDir(), cfg, tlsLn, httpLn, Options{Registerer: reg, Now: clock.Now, RenewCheckInterval: 100 * time.Millisecond})
	first, err := dialSlow(e.tlsAddr, "renew.example.com", p.certRoots)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	firstSerial := leafOf(first).SerialNumber
	renewed := func() bool { return testutil.ToFloat64(e.m.met.renewals.WithLabelValues("success")) >= 1 }
	deadline := time.Now().Add(30 * time.Second)
	pace := time.NewTicker(50 * time.Millisecond) // handshakes while waiting, not a flood
	defer pace.Stop()
	for !renewed() {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal observed within 30s (orders %d)", p.orders.Load())
		}
		// Handshakes keep succeeding while renewal is under way.
		c, err := dial(e.tlsAddr, "renew.example.com", p.certRoots, nil)
		if err != nil {
			t.Fatalf("handshake during renewal: %v", err)
		}
		c.Close()
		<-pace.C
	}
	// The renewed certificate is served from Run's next pass (certmagic
	// loads it into its cache just after the renewal event).
	waitUntil(t, "a renewed certificate is served", func() bool {
		c, err := dial(e.tlsAddr, "renew.example.com", p.certRoots, nil)
		if err != nil {
			t.Fatalf("handshake after renewal: %v", err)
		}
		defer c.Close()
		return leafOf(c).SerialNumber.Cmp(firstSerial) != 0
	})
	if got := p.orders.Load(); got < 2 {
		t.Errorf("orders = %d, want >= 2", got)
	}
	// The connection opened on the first certificate is intact.
	if resp, err := get(first); err != nil || resp == "" {
		t.Errorf("old connection after renewal: %q %v", resp, err)
	}
	if testutil.ToFloat64(e.m.met.renewals.WithLabelValues("overdue")) < 1 {
		t.Error("renewal window almost gone, but no overdue renewal counted")
	}
	if n, err := testutil.GatherAndCount(reg, "gatehouse_tls_certificate_not_after_seconds"); err != nil || n != 1 {
		t.Errorf("not_after series = %d, %v; want 1", n, err)
	}
	// Stopping Run cuts the ACME client off: no more orders.
	e.stop()
	n := p.orders.Load()
	// Nothing to wait for: no order may come, however long one looks. A
	// short look cannot fail wrongly (only miss a late order).
	time.Sleep(200 * time.Millisecond)
	if got := p.orders.Load(); got != n {
		t.Errorf("orders went on after Run returned: %d -> %d", n, got)
	}
}

func TestACMEExternalAccountBinding(t *testing.T) {
	tlsLn, tlsPort := listen(t)
	_, closedPort := listen(t)
	key := []byte("0123456789abcdef0123456789abcdef")
	p := startPebbleEAB(t, closedPort, tlsPort, 0, map[string][]byte{"kid-1": key})
	cfg := acmeConfig(p, false, true, "eab.example.com")
	cfg.ACME.EAB = &EAB{KeyID: "kid-1", HMACKey: key}
	e := startEdge(t, t.TempDir(), cfg, tlsLn, nil, Options{})
	c, err := dialSlow(e.tlsAddr, "eab.example.com", p.certRoots)
	if err != nil {
		t.Fatalf("handshake with an EAB account: %v", err)
	}
	c.Close()

	// Without the binding the CA refuses the account: no certificate.
	tlsLn2, tlsPort2 := listen(t)
	p2 := startPebbleEAB(t, closedPort, tlsPort2, 0, map[string][]byte{"kid-1": key})
	e2 := startEdge(t, t.TempDir(), acmeConfig(p2, false, true, "eab.example.com"), tlsLn2, nil, Options{})
	if c, err := dialSlow(e2.tlsAddr, "eab.example.com", p2.certRoots); err == nil {
		c.Close()
		t.Error("certificate issued without external account binding")
	}
	if got := p2.orders.Load(); got != 0 {
		t.Errorf("orders without an account = %d, want 0", got)
	}
}

// startOCSPPebble starts Pebble issuing certificates that name resp as
// their OCSP responder, and points resp at Pebble's issuer.
func startOCSPPebble(t *testing.T, resp *responder, httpPort, tlsPort int) *pebbleCA {
	t.Helper()
	p := startPebbleWith(t, pebbleOpts{httpPort: httpPort, tlsPort: tlsPort, ocspURL: resp.srv.URL, keyAlg: "rsa"})
	if p.issuerKey == nil {
		t.Fatal("pebble exposes no issuer key")
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.issuer)
	resp.ca.Store(&testCA{cert: p.issuer, key: p.issuerKey, pool: pool})
	return p
}

// quiesce waits until no ACME managing goroutine of m is running.
func quiesce(t *testing.T, m *Manager) {
	t.Helper()
	waitFor(t, func() bool {
		m.maintMu.Lock()
		defer m.maintMu.Unlock()
		for _, mg := range m.managing {
			select {
			case <-mg.done:
			default:
				return false
			}
		}
		return true
	})
}

// stapledACMEEdge starts an edge whose ACME certificate for name names
// resp as its OCSP responder, obtains the certificate, runs one
// maintenance pass and checks that handshakes are stapled. The edge's
// poll interval is far beyond the test: passes run when the test says.
func stapledACMEEdge(t *testing.T, name string, clock *testClock, resp *responder) (*edge, *pebbleCA, Config) {
	t.Helper()
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startOCSPPebble(t, resp, httpPort, tlsPort)
	cfg := acmeConfig(p, true, false, name)
	e := startEdge(t, t.TempDir(), cfg, tlsLn, httpLn, Options{Now: clock.Now, PollInterval: time.Hour})
	c, err := dialSlow(e.tlsAddr, name, p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance): %v", err)
	}
	c.Close()
	quiesce(t, e.m)
	e.m.maintain(context.Background())
	// Run's pass may be the one fetching the staple: wait for it.
	waitUntil(t, "the ACME certificate is stapled", func() bool {
		return stapleFrom(t, e.tlsAddr, name, p.certRoots) != nil
	})
	return e, p, cfg
}

// TestACMECertificateStapled: handshakes for an ACME name carry the staple
// of the certificate's entry (entries are found by leaf, not by the
// *tls.Certificate the engine returns).
func TestACMECertificateStapled(t *testing.T) {
	const name = "stapled.example.com"
	clock := newClock()
	resp := newResponder(t, nil, clock)
	e, _, _ := stapledACMEEdge(t, name, clock, resp)
	c, err := e.m.GetCertificate(monitorHello(name))
	if err != nil {
		t.Fatal(err)
	}
	if c.OCSPStaple == nil {
		t.Error("GetCertificate returned no staple")
	}
	// Later passes find the same entry instead of building a new one.
	e.m.maintain(context.Background())
	quiesce(t, e.m)
	if n := len(*e.m.acmeCerts.Load()); n != 1 {
		t.Errorf("%d ACME entries for one certificate, want 1", n)
	}
}

// TestACMECorruptCacheRecovers puts a corrupt account key or certificate
// into the ACME cache before start: the name still gets a certificate over
// a TLS handshake, the bad file is kept aside byte for byte, the event is
// logged at error level with the file's path and counted.
func TestACMECorruptCacheRecovers(t *testing.T) {
	const name = "corrupt.example.com"
	// A PEM private key block whose DER is garbage: autocert takes it for a
	// key and fails to parse it on every attempt.
	badKeyPEM := []byte("-----BEGIN EC PRIVATE KEY-----\nZ2FyYmFnZSwgbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n")
	garbage := []byte("\x00\x17 this is not PEM \xff\xfe")
	for _, tc := range []struct {
		desc, file, kind string
		data             []byte
	}{
		{"account key not PEM", "acme_account+key", "account_key", garbage},
		{"account key bad DER", "acme_account+key", "account_key", badKeyPEM},
		{"certificate bad key", name, "certificate", badKeyPEM},
		{"certificate not PEM", name, "certificate", garbage},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tlsLn, tlsPort := listen(t)
			httpLn, httpPort := listen(t)
			p := startPebble(t, httpPort, tlsPort, 0)
			state := t.TempDir()
			dir := filepath.Join(state, "acme")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			bad := filepath.Join(dir, tc.file)
			if err := os.WriteFile(bad, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			logger, logs := newLogBuffer(t)
			reg := newRegistry()
			e := startEdge(t, state, acmeConfig(p, true, false, name), tlsLn, httpLn, Options{Logger: logger, Registerer: reg})

			c, err := dialSlow(e.tlsAddr, name, p.certRoots)
			if err != nil {
				t.Fatalf("handshake with a corrupt cached %s: %v", tc.kind, err)
			}
			if leafOf(c).VerifyHostname(name) != nil {
				t.Errorf("served certificate names %v", leafOf(c).DNSNames)
			}
			c.Close()

			aside, _ := filepath.Glob(bad + ".bad-*")
			if len(aside) != 1 {
				t.Fatalf("files kept aside: %v, want one %s.bad-<timestamp>", aside, tc.file)
			}
			if got, err := os.ReadFile(aside[0]); err != nil || !bytes.Equal(got, tc.data) {
				t.Errorf("kept-aside file holds %q (%v), want the corrupt original", got, err)
			}
			// The replacement lives in the certmagic storage: a new account
			// key, or a new certificate for the name.
			pattern := filepath.Join(state, "certmagic", "acme", "*", "users", "*", "*.key")
			if tc.kind == "certificate" {
				pattern = filepath.Join(state, "certmagic", "certificates", "*", name, name+".crt")
			}
			if got, _ := filepath.Glob(pattern); len(got) != 1 {
				t.Errorf("storage holds %v, want one %s", got, pattern)
			}
			if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt %s is still in the old cache: %v", tc.file, err)
			}
			if _, ok := logs.find("ERROR", aside[0]); !ok {
				t.Errorf("no error-level log line naming %s", aside[0])
			}
			if got := counterValue(t, reg, "gatehouse_tls_acme_cache_corrupt_total", "kind", tc.kind); got != 1 {
				t.Errorf("gatehouse_tls_acme_cache_corrupt_total{kind=%q} = %v, want 1", tc.kind, got)
			}
		})
	}
}

// TestACMEOCSPStapleAtStart: an ACME certificate is stapled as soon as it
// is obtained, and after a restart a saved staple past half its validity
// is refreshed at once (the poll interval is far beyond the test), while
// handshakes keep getting the saved staple.
func TestACMEOCSPStapleAtStart(t *testing.T) {
	const name = "ocsp.example.com"
	clock := newClock()
	resp := newResponder(t, nil, clock)
	tlsLn, tlsPort := listen(t)
	httpLn, httpPort := listen(t)
	p := startOCSPPebble(t, resp, httpPort, tlsPort)
	state := t.TempDir()
	cfg := acmeConfig(p, true, false, name)
	opts := Options{Now: clock.Now, PollInterval: time.Hour}
	e := startEdge(t, state, cfg, tlsLn, httpLn, opts)
	c, err := dialSlow(e.tlsAddr, name, p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance): %v", err)
	}
	c.Close()
	var first []byte
	waitUntil(t, "a new ACME certificate is stapled without waiting for a poll", func() bool {
		first = stapleFrom(t, e.tlsAddr, name, p.certRoots)
		return first != nil
	})

	e.stop()
	clock.Advance(150 * time.Minute) // 2.5 h into the 4 h window
	gate := make(chan struct{})
	resp.gate.Store(&gate)
	resp.drain()
	tlsLn2, _ := listen(t)
	e2 := startEdge(t, state, cfg, tlsLn2, nil, opts)
	resp.awaitRequest(t)
	if got := stapleFrom(t, e2.tlsAddr, name, p.certRoots); !bytes.Equal(got, first) {
		t.Errorf("during the start-up refresh the handshake stapled %d bytes, want the saved staple", len(got))
	}
	close(gate)
	waitUntil(t, "the refreshed staple is served", func() bool {
		got := stapleFrom(t, e2.tlsAddr, name, p.certRoots)
		return got != nil && !bytes.Equal(got, first)
	})
}

// TestACMEOCSPStaplingOffOnReload: turning stapling off by a reload stops
// stapling ACME certificates too (their entries outlive generations), and
// nothing is fetched.
func TestACMEOCSPStaplingOffOnReload(t *testing.T) {
	const name = "ocspoff.example.com"
	clock := newClock()
	resp := newResponder(t, nil, clock)
	e, p, cfg := stapledACMEEdge(t, name, clock, resp)

	cfg.DisableOCSP = true
	if err := e.m.Update(cfg); err != nil {
		t.Fatal(err)
	}
	hits := resp.hits.Load()
	if got := stapleFrom(t, e.tlsAddr, name, p.certRoots); got != nil {
		t.Error("ACME certificate stapled after stapling was turned off")
	}
	clock.Advance(3 * time.Hour) // past the refresh point
	e.m.maintain(context.Background())
	quiesce(t, e.m)
	if got := stapleFrom(t, e.tlsAddr, name, p.certRoots); got != nil {
		t.Error("ACME certificate stapled with stapling off")
	}
	if got := resp.hits.Load(); got != hits {
		t.Errorf("%d OCSP requests with stapling off, want 0", got-hits)
	}
}
