package test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
)

// redisServer is a real redis-server (Debian package redis-server) on a
// free loopback port, without persistence; killed in Cleanup.
type redisServer struct {
	t    *testing.T
	addr string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
	out *syncBuffer
}

// startRedisServer starts redis-server, or skips the test when it is not
// installed (fails with GATEHOUSE_REQUIRE_TOOLS=1).
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	requireTool(t, "redis-server", "redis-server")
	port := freePort(t)
	r := &redisServer{t: t, addr: "127.0.0.1:" + strconv.Itoa(port),
		args: []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the server (again, after stop, on the same port: its data
// is gone, as with a Redis without persistence) and waits until it
// answers PING.
func (r *redisServer) start() {
	r.t.Helper()
	r.mu.Lock()
	r.out = &syncBuffer{}
	r.cmd = exec.Command("redis-server", r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		r.mu.Unlock()
		r.t.Fatalf("redis-server: %v", err)
	}
	r.mu.Unlock()
	waitUntil(r.t, 10*time.Second, "redis-server answering PING", func() bool {
		v, err := r.do("PING")
		return err == nil && v == "+PONG"
	})
}

// stop kills the server and waits for it.
func (r *redisServer) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// do sends one inline command and returns the first line of the reply
// (enough for PING, GET of a short value, KEYS' count): the test looks
// at Redis without a client library of its own.
func (r *redisServer) do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	var b bytes.Buffer
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if n == 0 {
		return "", err
	}
	return string(bytes.TrimRight(buf[:n], "\r\n")), nil
}

// testPebble is an in-process Pebble ACME server (as cmd/pebble wires
// it) counting the orders it gets.
type testPebble struct {
	dirURL    string
	wfePEM    []byte         // trust for the directory's HTTPS
	certRoots *x509.CertPool // trust for issued certificates
	mu        sync.Mutex
	orders    map[string]int // newOrder requests by identifier
}

// startTestPebble starts Pebble whose VA validates http-01 on httpPort
// and tls-alpn-01 on tlsPort of 127.0.0.1, every name resolving to
// 127.0.0.1.
func startTestPebble(t *testing.T, httpPort, tlsPort int) *testPebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	logger := log.New(io.Discard, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "test"}})
	vaImpl := va.New(logger, httpPort, tlsPort, false, startTestDNS(t), store)
	front := wfe.New(logger, store, vaImpl, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &testPebble{orders: map[string]int{}}
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			// The JWS payload is base64url; the names are in it. Count
			// the order under every configured name it mentions.
			for _, name := range []string{"one.example.com"} {
				if bytes.Contains(decodeJWSPayload(body), []byte(name)) {
					p.orders[name]++
				}
			}
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.dirURL = srv.URL + wfe.DirectoryPath
	p.wfePEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	p.certRoots = x509.NewCertPool()
	p.certRoots.AddCert(authority.GetRootCert(0).Cert)
	return p
}

func (p *testPebble) ordersFor(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.orders[name]
}

// startTestDNS answers A 127.0.0.1 for every name (TCP, as Pebble's VA
// asks).
func startTestDNS(t *testing.T) string {
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

// forwarder is a TCP port that passes each connection to the address
// pick chooses when it arrives (the CA's validation connections, sent to
// an instance of the test's choosing).
type forwarder struct {
	ln    net.Listener
	pick  func() (addr, name string)
	wg    sync.WaitGroup
	count atomic.Int64
	mu    sync.Mutex
	sent  map[string]int // connections by the name pick returned
}

func startForwarder(t *testing.T, pick func() (addr, name string)) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, pick: pick, sent: map[string]int{}}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				addr, name := f.pick()
				if addr == "" {
					return
				}
				f.mu.Lock()
				f.sent[name]++
				f.mu.Unlock()
				f.count.Add(1)
				u, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) port() int { return f.ln.Addr().(*net.TCPAddr).Port }

func (f *forwarder) sentTo() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.sent {
		out[k] = v
	}
	return out
}

// writePEM writes b to path (0600).
func writePEM(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clusterAdmin sends an authorised admin request (the configs here set
// the token "cluster-test").
func clusterAdmin(t *testing.T, g *gatehouse, method, path string) (int, string) {
	t.Helper()
	return adminDo(t, g.adminAddr, method, path, "", map[string]string{"Authorization": "Bearer cluster-test"}, "")
}

// decodeJWSPayload returns the decoded payload of a flattened JWS (an
// ACME request body), or nil.
func decodeJWSPayload(body []byte) []byte {
	var jws struct{ Payload string }
	if json.Unmarshal(body, &jws) != nil {
		return nil
	}
	b, _ := base64.RawURLEncoding.DecodeString(jws.Payload)
	return b
}
