package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/prometheus/client_golang/prometheus"
)

// accelBackend answers /download/<name> with X-Accel-Redirect to
// /protected/<name>, a Content-Disposition, a Cache-Control and headers
// that must not reach the client; /raw?h=V answers with X-Accel-Redirect
// V; /plain answers normally with every kind of proxy instruction.
func accelBackend(t *testing.T) *httptest.Server {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch {
		case strings.HasPrefix(r.URL.Path, "/download/"):
			h.Set("X-Accel-Redirect", "/protected/"+strings.TrimPrefix(r.URL.Path, "/download/"))
			h.Set("Content-Type", "")
			h.Set("Content-Disposition", `attachment; filename="report.pdf"`)
			h.Set("Cache-Control", "private, max-age=60")
			h.Set("X-Accel-Buffering", "no")
			h.Set("X-Internal-Debug", "backend detail")
			io.WriteString(w, "this body is dropped")
		case r.URL.Path == "/raw":
			h.Set("X-Accel-Redirect", r.URL.Query().Get("h"))
		case r.URL.Path == "/plain":
			h.Set("X-Accel-Expires", "60")
			h.Set("X-Accel-Limit-Rate", "1024")
			h.Set("X-Sendfile", "/srv/secret/file")
			h.Set("X-Lighttpd-Send-File", "/srv/secret/file")
			io.WriteString(w, "plain")
		}
	}))
	t.Cleanup(be.Close)
	return be
}

// TestXAccelRedirect (issue 14.2): a backend's X-Accel-Redirect is served
// from the internal route with the file's bytes, the backend's
// Content-Disposition and Cache-Control, the client's Range, and no
// X-Accel-* header; the site's rules and the request ID apply.
func TestXAccelRedirect(t *testing.T) {
	dir, _, pdf := fileTree(t)
	be := accelBackend(t)
	f := newFwdEdge(t, fileConfig(dir, be.Listener.Addr().String(), "x_accel_redirect = true", ""))
	base, c0 := f.serve(t, false)
	c := fileClient(c0)

	resp, body := fileDo(t, c, "GET", base+"/download/report.pdf", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, pdf) {
		t.Fatalf("download: %d, %d bytes; want 200 with the file's %d bytes", resp.StatusCode, len(body), len(pdf))
	}
	for k, want := range map[string]string{
		"Content-Type":            "application/pdf",
		"Content-Disposition":     `attachment; filename="report.pdf"`,
		"Cache-Control":           "private, max-age=60",
		"Content-Security-Policy": csp,
		"X-Internal-Debug":        "",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("download: %s = %q, want %q", k, got, want)
		}
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "X-Accel") {
			t.Errorf("download: %s reached the client", k)
		}
	}
	if id := resp.Header.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("download: X-Request-Id %q", id)
	}
	resp, body = fileDo(t, c, "GET", base+"/download/report.pdf", map[string]string{"Range": "bytes=100-199"})
	if resp.StatusCode != 206 || !bytes.Equal(body, pdf[100:200]) {
		t.Errorf("resumed download: %d, %d bytes; want 206 with bytes 100-199", resp.StatusCode, len(body))
	}
	resp, body = fileDo(t, c, "POST", base+"/download/report.pdf", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, pdf) {
		t.Errorf("download after a POST: %d, %d bytes; want the file (the method is treated as GET, as nginx does)", resp.StatusCode, len(body))
	}
	resp, body = fileDo(t, c, "GET", base+"/download/missing.pdf", nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not here") || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("redirect to a missing file: %d %q (Content-Disposition %q); want the site's 404 page", resp.StatusCode, body, resp.Header.Get("Content-Disposition"))
	}
	resp, _ = fileDo(t, c, "GET", base+"/protected/report.pdf", nil)
	if resp.StatusCode != 404 {
		t.Errorf("internal path asked directly: %d, want 404", resp.StatusCode)
	}

	// A backend's proxy instructions never reach a client.
	resp, body = fileDo(t, c, "GET", base+"/plain", nil)
	if resp.StatusCode != 200 || string(body) != "plain" {
		t.Fatalf("/plain: %d %q", resp.StatusCode, body)
	}
	for _, k := range []string{"X-Accel-Expires", "X-Accel-Limit-Rate", "X-Sendfile", "X-Lighttpd-Send-File"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("/plain: %s = %q reached the client", k, v)
		}
	}
}

// TestXAccelRefused (issue 14.2): X-Accel-Redirect from an upstream
// without x_accel_redirect, to a path no internal route serves, or
// malformed is a 502 with a log line; the header never reaches the
// client.
func TestXAccelRefused(t *testing.T) {
	dir, _, _ := fileTree(t)
	be := accelBackend(t)
	for _, tc := range []struct {
		name, upstream, path, log string
	}{
		{"upstream not allowed", "", "/download/report.pdf", "the upstream may not use it"},
		{"no internal route", "x_accel_redirect = true", "/raw?h=/static/plain.txt", "no internal file route serves the target"},
		{"relative target", "x_accel_redirect = true", "/raw?h=protected/report.pdf", "not an absolute path"},
		{"dot segment", "x_accel_redirect = true", "/raw?h=/protected/../static/plain.txt", "segment"},
		{"named location", "x_accel_redirect = true", "/raw?h=@files", "named locations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			f := newFwdEdgeLogging(t, fileConfig(dir, be.Listener.Addr().String(), tc.upstream, ""), logs)
			base, c0 := f.serve(t, false)
			resp, body := fileDo(t, fileClient(c0), "GET", base+tc.path, nil)
			if resp.StatusCode != 502 || resp.Header.Get("Content-Security-Policy") != csp {
				t.Errorf("%d %q (CSP %q); want 502 with the CSP", resp.StatusCode, body, resp.Header.Get("Content-Security-Policy"))
			}
			for k := range resp.Header {
				if strings.HasPrefix(k, "X-Accel") {
					t.Errorf("%s reached the client", k)
				}
			}
			if strings.Contains(string(body), "protected") || strings.Contains(string(body), "dropped") {
				t.Errorf("body %q leaks the backend's answer", body)
			}
			if l := logs.String(); !strings.Contains(l, "X-Accel-Redirect refused") || !strings.Contains(l, tc.log) {
				t.Errorf("log lacks the refusal (%q):\n%s", tc.log, l)
			}
		})
	}
}

// TestXAccelReleasesBackend (issue 14.2): the file goes out after the
// backend is released, as in nginx: with max_conns = 1 and no queue, a
// second request is served while a slow client still downloads the first.
func TestXAccelReleasesBackend(t *testing.T) {
	dir := bigFile(t, "big.bin", 32<<20)
	be := accelBackend(t)
	cfg := bigFileConfig(dir, "30s")
	cfg = strings.Replace(cfg, "path = \"/\"\n", "path = \"/protected/\"\ninternal = true\n", 1) + `
[[sites.a.routes]]
path = "/"
upstream = "app"
[upstreams.app]
x_accel_redirect = true
retries = 0
servers = [{ name = "s", address = "` + be.Listener.Addr().String() + `", max_conns = 1 }]
`
	f := newFwdEdge(t, cfg)
	base, c := f.serve(t, false)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET /download/big.bin HTTP/1.1\r\nHost: a.example\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 200 || resp.ContentLength != 32<<20 {
		t.Fatalf("download head: %v %v", resp, err)
	}
	// The download is in progress (the client reads no more); the
	// backend must be free.
	if n := f.backendInFlight(); n != 0 {
		t.Errorf("backend in flight %d during the download, want 0", n)
	}
	code, body, err := fwdGet(t, c, base, "GET", "/plain", nil)
	if err != nil || code != 200 || body != "plain" {
		t.Errorf("second request while the file is sent: %d %q %v; want 200 (the backend slot is free)", code, body, err)
	}
}

// TestXAccelBufferingNo (issue 14.2): a response with
// X-Accel-Buffering: no is sent on chunk by chunk even when its length is
// known.
func TestXAccelBufferingNo(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Buffering", "no")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "-last")
	}))
	defer be.Close()
	defer close(release)
	f := newFwdEdge(t, fwdConfig("gatehouse", be.Listener.Addr().String(), "", "", ""))
	base, c := f.serve(t, false)
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/", nil)
		req.Host = "a.example"
		resp, err := c.Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		if v := resp.Header.Get("X-Accel-Buffering"); v != "" {
			got <- "X-Accel-Buffering reached the client: " + v
			return
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, b); err != nil {
			got <- err.Error()
			return
		}
		got <- string(b)
	}()
	select {
	case s := <-got:
		if s != "first" {
			t.Errorf("first chunk: %q, want \"first\"", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first chunk of an X-Accel-Buffering: no response did not arrive while the backend held the rest")
	}
}

// newFwdEdgeLogging is newFwdEdge with the process log (the Edge's and
// the Runtime's logger) written to logs.
func newFwdEdgeLogging(t *testing.T, cfgText string, logs io.Writer) *fwdEdge {
	t.Helper()
	f := &fwdEdge{reg: prometheus.NewRegistry(), log: &lockedBuffer{}, served: make(chan struct{}, 16)}
	al := accesslog.New()
	al.Stdout, al.Stderr = f.log, f.log
	logger := slog.New(slog.NewTextHandler(logs, nil))
	m := NewMetrics(f.reg, "test")
	rt, err := Build(t.Context(), mustParse(t, cfgText), Deps{Metrics: m, AccessLogs: al, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	rt.Start()
	f.rt = rt
	f.e = NewEdge(EdgeOptions{Metrics: m, Logger: logger})
	f.e.Swap(rt)
	t.Cleanup(func() {
		if old := f.e.Swap(nil); old != nil {
			old.Close()
		}
		f.e.Close()
	})
	return f
}
