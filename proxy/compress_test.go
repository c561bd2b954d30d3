package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/gorilla/websocket"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse-proxy/gatehouse/compress"
	"github.com/gatehouse-proxy/gatehouse/config"
	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/internal/accesslog"
	"github.com/gatehouse-proxy/gatehouse/internal/leakcheck"
)

// compressText is n bytes of compressible text that is not all one
// byte: an HTML list, as a Django page has.
func compressText(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "<li class=\"item\"><a href=\"/articles/%05d/\">Article number %05d</a></li>\n", i, i*7)
	}
	return b.Bytes()[:n]
}

// decodeBody undoes the content coding ce of body; err is what the
// decoder says at the end (nil only for a complete coded stream).
func decodeBody(ce string, body []byte) ([]byte, error) {
	r, err := contentDecoder(ce, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// contentDecoder reads r with the content coding ce undone.
func contentDecoder(ce string, r io.Reader) (io.Reader, error) {
	switch ce {
	case "":
		return r, nil
	case "gzip":
		return gzip.NewReader(r)
	case "zstd":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "br":
		return brotli.NewReader(r), nil
	}
	return nil, fmt.Errorf("unknown content coding %q", ce)
}

// newCompressEdge is newFwdEdge with its own encoder cap of max, which
// must be back at zero (every encoder released) when the test ends.
func newCompressEdge(t *testing.T, cfg string, max int) (*fwdEdge, *compress.EncoderLimit) {
	t.Helper()
	limit := compress.NewEncoderLimit(max)
	f := &fwdEdge{reg: prometheus.NewRegistry(), log: &lockedBuffer{}, served: make(chan struct{}, 16)}
	logs := accesslog.New()
	logs.Stderr = f.log
	f.e, f.rt = startTestEdge(t, cfg, Deps{Metrics: NewMetrics(f.reg, "test"), AccessLogs: logs, Encoders: limit})
	leakcheck.Zero(t, "compression encoders in use", func() (int64, error) { return int64(limit.InUse()), nil })
	return f, limit
}

// compressConfig: site a.example (TLS, so HSTS over the test's HTTPS;
// a CSP rule) with "/" to upstream app at backend and "/off/" with
// compress = false; extra goes into the file before the site.
func compressConfig(backend, extra string) string {
	return `
[listeners.https]
address = "127.0.0.1:0"
` + extra + `
[sites.a]
hosts = ["a.example"]
tls = "self_signed"
hsts = "max-age=60"
redirect_https = false
access_log = "stderr"
[sites.a.response_headers]
set = { Content-Security-Policy = "default-src 'self'" }
[[sites.a.routes]]
path = "/"
upstream = "app"
[[sites.a.routes]]
path = "/off/"
upstream = "app"
compress = false
[upstreams.app]
retries = 0
servers = [{ name = "s", address = "` + backend + `" }]
`
}

// compressBackend answers by path: an HTML page with a strong ETag, JSON,
// a short page, a PNG, a range of the page, a page marked no-transform,
// a page it compressed itself, and a page with a trailer.
func compressBackend(t *testing.T, page, pageGz []byte) *httptest.Server {
	t.Helper()
	js := []byte(`{"results":[` + strings.Repeat(`{"id":1,"username":"user","email":"user@example.com","is_staff":false},`, 60) + `{}]}`)
	png := append([]byte("\x89PNG\r\n\x1a\n"), compressText(4000)...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		body := page
		switch strings.TrimPrefix(r.URL.Path, "/off") {
		case "/page":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Etag", `"v1"`)
		case "/json":
			h.Set("Content-Type", "application/json")
			body = js
		case "/small":
			h.Set("Content-Type", "text/html; charset=utf-8")
			body = page[:500]
		case "/png":
			h.Set("Content-Type", "image/png")
			body = png
		case "/range":
			h.Set("Content-Type", "text/html; charset=utf-8")
			http.ServeContent(w, r, "", time.Unix(1e9, 0), bytes.NewReader(page))
			return
		case "/notransform":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "max-age=60, no-transform")
		case "/pregz":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Encoding", "gzip")
			body = pageGz
		case "/trailer":
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Trailer", "X-Checksum")
			w.Write(page)
			h.Set("X-Checksum", "abc123")
			return
		default:
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCompressProxied (issue 14.3): a backend's HTML and JSON reach the
// client compressed with the coding its Accept-Encoding chooses (q
// values, then the server's order gzip, zstd, br), decoding to the
// backend's bytes, with Vary and a weak ETag, the header rules, HSTS and
// the request ID; an image, a range, a no-transform response, a short
// one, one the backend compressed itself (byte for byte) and a route
// with compress = false pass through. Over HTTP/1.1 and HTTP/2.
func TestCompressProxied(t *testing.T) {
	page := compressText(30 << 10)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(page)
	zw.Close()
	be := compressBackend(t, page, gz.Bytes())
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			f, _ := newCompressEdge(t, compressConfig(be.Listener.Addr().String(), ""), 16)
			base, c0 := f.serve(t, h2)
			c := fileClient(c0)
			for _, tc := range []struct {
				method, path, ae string
				hdr              map[string]string
				wantCE           string // "" none
				vary             bool   // Vary: Accept-Encoding
				want             []byte // decoded body
			}{
				{"GET", "/page", "gzip", nil, "gzip", true, page},
				{"GET", "/page", "zstd", nil, "zstd", true, page},
				{"GET", "/page", "br", nil, "br", true, page},
				{"GET", "/page", "gzip, deflate, br, zstd", nil, "gzip", true, page},
				{"GET", "/page", "gzip;q=0.5, zstd;q=0.8, br", nil, "br", true, page},
				{"GET", "/page", "br;q=0, zstd;q=0.9, gzip;q=0.3", nil, "zstd", true, page},
				{"GET", "/page", "*", nil, "gzip", true, page},
				{"GET", "/page", "identity", nil, "", true, page},
				{"GET", "/page", "gzip;q=0, deflate", nil, "", true, page},
				{"GET", "/page", "", nil, "", false, page},
				{"GET", "/json", "gzip, br", nil, "gzip", true, nil},
				{"GET", "/small", "gzip", nil, "", true, page[:500]},
				{"GET", "/png", "gzip", nil, "", false, nil},
				{"GET", "/range", "gzip", map[string]string{"Range": "bytes=100-1099"}, "", false, page[100:1100]},
				{"GET", "/notransform", "gzip", nil, "", false, page},
				{"GET", "/page", "gzip", map[string]string{"Cache-Control": "no-transform"}, "", true, page},
				{"GET", "/off/page", "gzip", nil, "", false, page},
				{"HEAD", "/page", "gzip", nil, "", true, nil},
			} {
				hdr := map[string]string{}
				for k, v := range tc.hdr {
					hdr[k] = v
				}
				if tc.ae != "" {
					hdr["Accept-Encoding"] = tc.ae
				}
				name := fmt.Sprintf("%s %s (Accept-Encoding %q %v)", tc.method, tc.path, tc.ae, tc.hdr)
				resp, raw := fileDo(t, c, tc.method, base+tc.path, hdr)
				ce := resp.Header.Get("Content-Encoding")
				if ce != tc.wantCE {
					t.Errorf("%s: Content-Encoding %q, want %q", name, ce, tc.wantCE)
					continue
				}
				body, err := decodeBody(ce, raw)
				if err != nil {
					t.Errorf("%s: decoding %d bytes of %s: %v", name, len(raw), ce, err)
					continue
				}
				if tc.want != nil && !bytes.Equal(body, tc.want) {
					t.Errorf("%s: %d bytes decoded, want the backend's %d", name, len(body), len(tc.want))
				}
				if vary := slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding"); vary != tc.vary {
					t.Errorf("%s: Vary %q, want Accept-Encoding: %v", name, resp.Header.Values("Vary"), tc.vary)
				}
				if resp.Header.Get("Content-Security-Policy") != csp || len(resp.Header.Get("X-Request-Id")) != 32 {
					t.Errorf("%s: CSP %q, request ID %q: the rules and the ID must be on every response", name,
						resp.Header.Get("Content-Security-Policy"), resp.Header.Get("X-Request-Id"))
				}
				if hsts := resp.Header.Get("Strict-Transport-Security"); (hsts == "max-age=60") != h2 {
					t.Errorf("%s: HSTS %q over TLS=%v", name, hsts, h2)
				}
				if tc.wantCE != "" {
					// The uncoded length must be gone; HTTP/2 may state
					// the coded one (net/http's, for a body that ended
					// before the first flush).
					if resp.ContentLength != -1 && (!h2 || resp.ContentLength != int64(len(raw))) || resp.Header.Get("Accept-Ranges") != "" {
						t.Errorf("%s: Content-Length %d, Accept-Ranges %q on a coded response of %d bytes", name, resp.ContentLength, resp.Header.Get("Accept-Ranges"), len(raw))
					}
					if len(raw) >= len(body)/2 {
						t.Errorf("%s: %d bytes on the wire for %d: not compressed", name, len(raw), len(body))
					}
				}
				if tc.path == "/page" {
					etag := `"v1"`
					if tc.wantCE != "" || tc.method == "HEAD" {
						etag = `W/"v1"`
					}
					if got := resp.Header.Get("Etag"); got != etag {
						t.Errorf("%s: ETag %s, want %s", name, got, etag)
					}
				}
			}
			// A response the backend compressed itself passes byte for
			// byte.
			resp, raw := fileDo(t, c, "GET", base+"/pregz", map[string]string{"Accept-Encoding": "gzip, br, zstd"})
			if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(raw, gz.Bytes()) {
				t.Errorf("backend's own gzip: Content-Encoding %q, %d bytes; want its %d bytes untouched", resp.Header.Get("Content-Encoding"), len(raw), gz.Len())
			}
			// The access log counts the bytes sent, coded (nginx's
			// $body_bytes_sent).
			resp, raw = fileDo(t, c, "GET", base+"/page?log", map[string]string{"Accept-Encoding": "br"})
			if got := loggedBytes(t, f, "/page?log"); resp.Header.Get("Content-Encoding") != "br" || got != len(raw) {
				t.Errorf("access log: %d bytes for a %d-byte brotli response (%d decoded); want the bytes sent", got, len(raw), len(page))
			}
		})
	}
}

// TestCompressTrailers: a response that declares trailers is not
// compressed (a digest trailer would describe bytes Gatehouse changed);
// its trailer still arrives, over HTTP/1.1 and HTTP/2.
func TestCompressTrailers(t *testing.T) {
	page := compressText(8 << 10)
	be := compressBackend(t, page, nil)
	for _, tc := range []struct {
		client string
		h2     bool
	}{{"gatehouse", false}, {"gatehouse", true}, {"net/http", false}, {"net/http", true}} {
		t.Run(fmt.Sprintf("%s/h2=%v", tc.client, tc.h2), func(t *testing.T) {
			cfg := strings.Replace(compressConfig(be.Listener.Addr().String(), ""), "retries = 0\n", "retries = 0\n"+clientLine(tc.client), 1)
			f, _ := newCompressEdge(t, cfg, 16)
			base, c0 := f.serve(t, tc.h2)
			resp, raw := fileDo(t, fileClient(c0), "GET", base+"/trailer", map[string]string{"Accept-Encoding": "gzip"})
			if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(raw, page) || resp.Trailer.Get("X-Checksum") != "abc123" {
				t.Errorf("Content-Encoding %q, %d bytes, trailer %q; want the page as it is, and its trailer",
					resp.Header.Get("Content-Encoding"), len(raw), resp.Trailer.Get("X-Checksum"))
			}
		})
	}
}

// sseEvent is the i-th event of the test streams: small JSON, as Django
// Channels or django-eventstream send.
func sseEvent(i int) string {
	return fmt.Sprintf("id: %d\nevent: message\ndata: {\"room\":\"lobby\",\"user\":\"user%d\",\"text\":\"message number %d\"}\n\n", i, i%7, i)
}

// TestCompressSSE (issue 14.3): an event stream from a backend reaches
// the client compressed, event by event, over HTTP/1.1 and HTTP/2, with
// each coding. The backend sends the next event only once the client has
// decoded the previous one: an event held in the encoder, or in a
// buffer, would block the client's read, and the test's deadline would
// fail it. No sleeps, no timing.
func TestCompressSSE(t *testing.T) {
	const events = 12
	next := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		for i := range events {
			io.WriteString(w, sseEvent(i))
			w.(http.Flusher).Flush()
			if i == events-1 {
				return
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	for _, h2 := range []bool{false, true} {
		for _, coding := range []string{"gzip", "zstd", "br"} {
			t.Run(fmt.Sprintf("%s/h2=%v", coding, h2), func(t *testing.T) {
				f, limit := newCompressEdge(t, compressConfig(be.Listener.Addr().String(), ""), 16)
				base, c0 := f.serve(t, h2)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
				req.Host = "a.example"
				req.Header.Set("Accept-Encoding", coding)
				resp, err := fileClient(c0).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if ce := resp.Header.Get("Content-Encoding"); ce != coding || (resp.ProtoMajor == 2) != h2 {
					t.Fatalf("Content-Encoding %q over %s, want %s", ce, resp.Proto, coding)
				}
				dec, err := contentDecoder(coding, resp.Body)
				if err != nil {
					t.Fatalf("decoder: %v (the first event did not arrive)", err)
				}
				br := bufio.NewReader(dec)
				for i := range events {
					want := sseEvent(i)
					got := make([]byte, len(want))
					if _, err := io.ReadFull(br, got); err != nil {
						t.Fatalf("event %d: %v (it was not flushed through the compressor)", i, err)
					}
					if string(got) != want {
						t.Fatalf("event %d: %q, want %q", i, got, want)
					}
					if i == 0 && limit.InUse() != 1 {
						t.Errorf("encoders in use during the stream: %d, want 1", limit.InUse())
					}
					if i < events-1 {
						next <- struct{}{}
					}
				}
				if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
					t.Errorf("after the last event: %q, %v; want a clean end of the coded stream", rest, err)
				}
			})
		}
	}
}

// TestCompressXAccelBufferingNo: a compressed response with
// X-Accel-Buffering: no is flushed through the encoder chunk by chunk
// even though its length is known: the client decodes the first part
// while the backend holds the rest.
func TestCompressXAccelBufferingNo(t *testing.T) {
	page := compressText(4096)
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Accel-Buffering", "no")
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		w.Write(page[:2000])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write(page[2000:])
	}))
	t.Cleanup(be.Close)
	defer close(release)
	f, _ := newCompressEdge(t, compressConfig(be.Listener.Addr().String(), ""), 16)
	base, c0 := f.serve(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
	req.Host = "a.example"
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := fileClient(c0).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ce := resp.Header.Get("Content-Encoding"); ce != "zstd" || resp.Header.Get("X-Accel-Buffering") != "" {
		t.Fatalf("Content-Encoding %q, X-Accel-Buffering %q; want zstd and no X-Accel-Buffering", ce, resp.Header.Get("X-Accel-Buffering"))
	}
	dec, err := contentDecoder("zstd", resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 2000)
	if _, err := io.ReadFull(dec, first); err != nil || !bytes.Equal(first, page[:2000]) {
		t.Fatalf("the first 2000 bytes, while the backend holds the rest: %v (not flushed through the encoder)", err)
	}
}

// TestCompressWebSocket: a WebSocket upgrade from a browser (which sends
// Accept-Encoding with it) is never compressed: the 101 has no coding
// and the frames pass both ways untouched.
func TestCompressWebSocket(t *testing.T) {
	up := websocket.Upgrader{}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(be.Close)
	cfg := strings.Replace(compressConfig(be.Listener.Addr().String(), ""), "path = \"/\"\nupstream = \"app\"\n",
		"path = \"/\"\nupstream = \"app\"\nwebsocket.enabled = true\nwebsocket.origins = [\"*\"]\n", 1)
	f, _ := newCompressEdge(t, cfg, 16)
	base, _ := f.serve(t, false)
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", strings.TrimPrefix(base, "http://"))
	}, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://a.example/ws/", http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
		t.Errorf("101: %d, Content-Encoding %q, Vary %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	msg := string(compressText(4096))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
		t.Errorf("echo: %d bytes, %v; want the 4096 sent", len(got), err)
	}
}

// TestCompressAbort (issue 14.3): a backend that dies in the middle of
// a compressed response aborts the client's response without a valid
// coded ending, so the client cannot take the cut-off page for a whole
// one; the encoder comes back (newCompressEdge's check), as do the slot
// and the gauge.
func TestCompressAbort(t *testing.T) {
	// Half of a 1 MiB page: enough that every encoder has sent coded
	// bytes before the backend dies.
	page := compressText(512 << 10)
	for _, coding := range []string{"gzip", "zstd", "br"} {
		t.Run(coding, func(t *testing.T) { testCompressAbort(t, coding, page) })
	}
}

func testCompressAbort(t *testing.T, coding string, page []byte) {
	b := newScriptBackend(t, func(conn, n int, r *http.Request) scriptReply {
		return scriptReply{raw: "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1048576\r\n\r\n" + string(page), hangup: true}
	})
	{
		f, limit := newCompressEdge(t, compressConfig(b.addr(), ""), 16)
		base, c0 := f.serve(t, false)
		req, _ := http.NewRequest("GET", base+"/dies", nil)
		req.Host = "a.example"
		req.Header.Set("Accept-Encoding", coding)
		resp, err := fileClient(c0).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Errorf("%s: the cut-off response ended as if whole (%d bytes)", coding, len(raw))
		}
		if ce := resp.Header.Get("Content-Encoding"); ce != coding {
			t.Errorf("%s: Content-Encoding %q: the test needs a compressed response", coding, ce)
		}
		if body, err := decodeBody(coding, raw); err == nil {
			t.Errorf("%s: the %d bytes received decode to %d bytes with a valid ending; want a truncated stream", coding, len(raw), len(body))
		}
		<-f.served
		if n := limit.InUse(); n != 0 {
			t.Errorf("%s: %d encoders in use after the aborted response", coding, n)
		}
		if n := f.backendInFlight(); n != 0 {
			t.Errorf("%s: backend in-flight %d after the aborted response", coding, n)
		}
	}
}

// TestCompressFiles (issue 14.3): on a file route, a precompressed
// sibling wins and passes untouched; a text file without one is
// compressed per request when it is at most max_file_size, with Vary and
// a weak ETag that revalidates (304); a larger one goes out as it is
// (through sendfile, TestFileSendfilePath); a range, an image and a
// route with compress = false are never compressed.
func TestCompressFiles(t *testing.T) {
	dir, css, _ := fileTree(t)
	js := compressText(48 << 10)
	big := compressText(300 << 10)
	for name, b := range map[string][]byte{"static/app.js": js, "static/big.js": big, "static/logo.png": append([]byte("\x89PNG\r\n\x1a\n"), js...)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := strings.Replace(fileConfig(dir, "127.0.0.1:9", "", ""), "[[sites.a.routes]]\npath = \"/static/\"\n",
		"[[sites.a.routes]]\npath = \"/raw/\"\nalias = \""+filepath.Join(dir, "static")+"\"\ncompress = false\n[[sites.a.routes]]\npath = \"/static/\"\n", 1)
	f, _ := newCompressEdge(t, cfg, 16)
	base, c0 := f.serve(t, false)
	c := fileClient(c0)
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		resp, raw := fileDo(t, c, "GET", base+path, hdr)
		body, err := decodeBody(resp.Header.Get("Content-Encoding"), raw)
		if err != nil {
			t.Fatalf("%s: decoding %s: %v", path, resp.Header.Get("Content-Encoding"), err)
		}
		return resp, body
	}
	// The sibling (.gz) wins for gzip; zstd is compressed per request.
	resp, body := get("/static/app.3f2a1b9c4d5e.css", map[string]string{"Accept-Encoding": "gzip"})
	if resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(body, css) || !strings.HasSuffix(resp.Header.Get("Etag"), `-gzip"`) {
		t.Errorf("css with a .gz sibling, gzip: %q, ETag %s", resp.Header.Get("Content-Encoding"), resp.Header.Get("Etag"))
	}
	resp, body = get("/static/app.3f2a1b9c4d5e.css", map[string]string{"Accept-Encoding": "zstd"})
	if resp.Header.Get("Content-Encoding") != "zstd" || !bytes.Equal(body, css) || resp.Header.Get("Content-Security-Policy") != csp ||
		resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Errorf("css without a .zst sibling, zstd: %q, CSP %q, Cache-Control %q", resp.Header.Get("Content-Encoding"),
			resp.Header.Get("Content-Security-Policy"), resp.Header.Get("Cache-Control"))
	}
	resp, body = get("/static/app.js", map[string]string{"Accept-Encoding": "br"})
	etag := resp.Header.Get("Etag")
	if resp.Header.Get("Content-Encoding") != "br" || !bytes.Equal(body, js) || !strings.HasPrefix(etag, `W/"`) ||
		!slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("48 KiB script, br: Content-Encoding %q, ETag %s, Vary %q", resp.Header.Get("Content-Encoding"), etag, resp.Header.Values("Vary"))
	}
	resp, body = get("/static/app.js", map[string]string{"Accept-Encoding": "br", "If-None-Match": etag})
	if resp.StatusCode != 304 || len(body) != 0 || resp.Header.Get("Etag") != etag {
		t.Errorf("revalidating %s: %d, ETag %s; want 304 with the same weak tag", etag, resp.StatusCode, resp.Header.Get("Etag"))
	}
	for _, tc := range []struct {
		path string
		hdr  map[string]string
		want []byte
		code int
	}{
		{"/static/big.js", nil, big, 200},                                           // over max_file_size (256 KiB)
		{"/static/app.js", map[string]string{"Range": "bytes=0-99"}, js[:100], 206}, // a range
		{"/static/logo.png", nil, nil, 200},                                         // not a compressible type
		{"/raw/app.js", nil, js, 200},                                               // compress = false
		{"/static/app.js", map[string]string{"Accept-Encoding": "identity"}, js, 200},
	} {
		hdr := map[string]string{"Accept-Encoding": "gzip, br, zstd"}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		resp, body := get(tc.path, hdr)
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Encoding") != "" || tc.want != nil && !bytes.Equal(body, tc.want) {
			t.Errorf("%s %v: %d, Content-Encoding %q, %d bytes; want %d, the file as it is", tc.path, tc.hdr, resp.StatusCode,
				resp.Header.Get("Content-Encoding"), len(body), tc.code)
		}
	}
	// HEAD: the head a GET's compressed answer has, without a body.
	resp, raw := fileDo(t, c, "HEAD", base+"/static/app.js", map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 || len(raw) != 0 || resp.Header.Get("Etag") != etag || !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
		t.Errorf("HEAD: %d, ETag %s (GET's %s), Vary %q", resp.StatusCode, resp.Header.Get("Etag"), etag, resp.Header.Values("Vary"))
	}
	// The access log counts the coded bytes of a compressed file.
	resp, raw = fileDo(t, c, "GET", base+"/static/app.js?log", map[string]string{"Accept-Encoding": "gzip"})
	if got := loggedBytes(t, f, "/static/app.js?log"); resp.Header.Get("Content-Encoding") != "gzip" || got != len(raw) {
		t.Errorf("access log: %d bytes for a %d-byte gzip file (%d decoded); want the bytes sent", got, len(raw), len(js))
	}
}

// loggedBytes waits for f's access log line of uri and returns its
// bytes.
func loggedBytes(t *testing.T, f *fwdEdge, uri string) int {
	t.Helper()
	re := regexp.MustCompile(`"uri":"` + regexp.QuoteMeta(uri) + `".*"bytes":(\d+)`)
	for {
		if m := re.FindStringSubmatch(f.log.String()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
		select {
		case <-f.served:
		case <-time.After(10 * time.Second):
			t.Fatalf("no access log line for %s:\n%s", uri, f.log.String())
		}
	}
}

// TestCompressXAccelRedirect: a text file a backend hands over with
// X-Accel-Redirect is compressed as the internal route that serves it
// says (its compress key), with the backend's Content-Disposition.
func TestCompressXAccelRedirect(t *testing.T) {
	dir, _, _ := fileTree(t)
	csv := compressText(20 << 10)
	if err := os.WriteFile(filepath.Join(dir, "private", "export.csv"), csv, 0o644); err != nil {
		t.Fatal(err)
	}
	be := accelBackend(t)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("compress=%v", on), func(t *testing.T) {
			cfg := fileConfig(dir, be.Listener.Addr().String(), "x_accel_redirect = true", "")
			if !on {
				cfg = strings.Replace(cfg, "internal = true\n", "internal = true\ncompress = false\n", 1)
			}
			f, _ := newCompressEdge(t, cfg, 16)
			base, c0 := f.serve(t, false)
			resp, raw := fileDo(t, fileClient(c0), "GET", base+"/download/export.csv", map[string]string{"Accept-Encoding": "gzip"})
			want := map[bool]string{true: "gzip", false: ""}[on]
			body, err := decodeBody(resp.Header.Get("Content-Encoding"), raw)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != want || err != nil || !bytes.Equal(body, csv) ||
				resp.Header.Get("Content-Disposition") != `attachment; filename="report.pdf"` {
				t.Errorf("%d, Content-Encoding %q (want %q), %d bytes decoded (%v), Content-Disposition %q", resp.StatusCode,
					resp.Header.Get("Content-Encoding"), want, len(body), err, resp.Header.Get("Content-Disposition"))
			}
		})
	}
}

// TestCompressSendTimeout (issue 14.3): a compressed response to a
// client that takes no byte is still bounded by timeouts.send: every
// write the encoder makes, and the flushes of an event stream, are
// armed; the handler returns, the slot and the encoder come back.
func TestCompressSendTimeout(t *testing.T) {
	page := "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 65536\r\n\r\n" + string(compressText(64<<10))
	// zstd holds a short body until the stream ends: its bytes are
	// written when the coded stream is closed, which must be armed too.
	short := "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2048\r\n\r\n" + string(compressText(2048))
	stream := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" + sseEvent(1)
	for _, c := range []struct {
		name, upstream, ae string
		h2                 bool
	}{
		{"page over HTTP/1", page, "gzip", false},
		{"page over HTTP/2", page, "gzip", true},
		{"short page over HTTP/1", short, "zstd", false},
		{"short page over HTTP/2", short, "zstd", true},
		{"stream over HTTP/1", stream, "gzip", false},
		{"stream over HTTP/2", stream, "br", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			runStuckClient(t, c.upstream, c.h2, c.ae)
		})
	}
}

// TestCompressionDefaultsAgree: config's [compression] defaults are
// package compress's, and config accepts exactly the type patterns
// compress does.
func TestCompressionDefaultsAgree(t *testing.T) {
	if config.DefaultCompressionGzipLevel != compress.DefaultGzipLevel ||
		config.DefaultCompressionZstdLevel != compress.DefaultZstdLevel ||
		config.DefaultCompressionBrotliLevel != compress.DefaultBrotliLevel ||
		config.DefaultCompressionMinLength != compress.DefaultMinLength ||
		config.DefaultCompressionMaxEncoders != compress.DefaultMaxEncoders {
		t.Error("config's [compression] defaults differ from package compress's")
	}
	var names []string
	for _, e := range compress.DefaultEncodings() {
		names = append(names, e.String())
	}
	if !slices.Equal(names, config.DefaultCompressionEncodings()) {
		t.Errorf("encodings: config %q, compress %q", config.DefaultCompressionEncodings(), names)
	}
	if !slices.Equal(config.DefaultCompressionTypes(), compress.DefaultTypes()) {
		t.Errorf("types: config %q\ncompress %q", config.DefaultCompressionTypes(), compress.DefaultTypes())
	}
	for _, p := range []string{"text/html", "text/*", "*/*+json", "Application/JSON", "image/svg+xml",
		"*/json", "*/*", "text/h*", "image/*+xml", "*/*+", "text", "text/html; charset=utf-8", "a/b/c", "/x", "x/", "*/*+j*"} {
		_, cerr := config.Parse([]byte("[compression]\ntypes = [" + strconv.Quote(p) + "]\n" + `
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:9" }]
[listeners.https]
address = ""
`))
		_, perr := compress.New(compress.Options{Types: []string{p}})
		if (cerr == nil) != (perr == nil) {
			t.Errorf("type %q: config says %v, compress says %v", p, cerr, perr)
		}
	}
}

// TestCompressEncoderCapAcrossReload: the encoder cap (Deps.Encoders) is
// the process's, shared by every generation: with a cap of one, an event
// stream open on the old generation leaves none for a stream on the new
// one, which goes out uncompressed rather than over the cap.
func TestCompressEncoderCapAcrossReload(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, sseEvent(0))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(be.Close)
	defer close(release)
	text := compressConfig(be.Listener.Addr().String(), "")
	f, limit := newCompressEdge(t, text, 1)
	base, c0 := f.serve(t, false)
	c := fileClient(c0)
	open := func() *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/events", nil)
		req.Host = "a.example"
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	first := open()
	if first.Header.Get("Content-Encoding") != "gzip" || limit.InUse() != 1 {
		t.Fatalf("first stream: Content-Encoding %q, encoders in use %d; want gzip, 1", first.Header.Get("Content-Encoding"), limit.InUse())
	}
	logs := accesslog.New()
	logs.Stderr = io.Discard
	rt, err := Build(context.Background(), mustParse(t, text), Deps{Encoders: limit, AccessLogs: logs})
	if err != nil {
		t.Fatal(err)
	}
	rt.Start()
	old := f.e.Swap(rt)
	t.Cleanup(old.Close)
	second := open()
	if ce := second.Header.Get("Content-Encoding"); ce != "" || limit.InUse() != 1 {
		t.Errorf("a stream on the new generation while the old one's holds the only encoder: Content-Encoding %q, in use %d; want none, 1", ce, limit.InUse())
	}
	line, err := bufio.NewReader(second.Body).ReadString('\n')
	if err != nil || line != "id: 0\n" {
		t.Errorf("the uncompressed stream: %q %v", line, err)
	}
}

// runStuckClient serves one request for a backend answering upstream to
// a client that takes no byte (stuckWriter), with Accept-Encoding ae, in
// a synctest bubble: the handler must return after the 2 s send timeout
// with every write armed, the response compressed, and the backend slot
// and the encoder given back.
func runStuckClient(t *testing.T, upstream string, h2 bool, ae string) {
	synctest.Test(t, func(t *testing.T) {
		limit := compress.NewEncoderLimit(16)
		e, rt := startTestEdge(t, sendConfig, Deps{Encoders: limit})
		useStaticUpstream(rt, upstream)
		b := rt.Pool("app").Backends()[0]
		w := newStuckWriter(t)
		req := httptest.NewRequest("GET", "/x", nil)
		req.Host = "app.test"
		req.Header.Set("Accept-Encoding", ae)
		if h2 {
			req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
		}
		ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10")}
		req = req.WithContext(edgeserver.WithConnInfo(context.Background(), ci))
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.ServeHTTP(w, req)
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("handler still writing 3 s after the request with a 2 s send timeout (writes blocked with no deadline: %v)", w.unarmed)
		}
		if took := time.Since(start); took != 2*time.Second {
			t.Errorf("handler returned after %v, want 2s", took)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.unarmed) > 0 {
			t.Errorf("writes with no deadline: %v", w.unarmed)
		}
		if ce := w.h.Get("Content-Encoding"); ce != ae || w.writes == 0 {
			t.Errorf("Content-Encoding %q after %d writes: the test needs a compressed response that reached the client", ce, w.writes)
		}
		if n := limit.InUse(); n != 0 {
			t.Errorf("encoders in use after the handler returned: %d", n)
		}
		if n := b.InFlight(); n != 0 {
			t.Errorf("backend slots held after the handler returned: %d", n)
		}
	})
}

// BenchmarkServeHTTPCompressed is BenchmarkServeHTTP (nolog) for a 4 KiB
// HTML answer: without Accept-Encoding (as before compression was wired
// in), and compressed with each coding at its default level.
func BenchmarkServeHTTPCompressed(b *testing.B) {
	html := "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 4096\r\n\r\n" + string(compressText(4096))
	for _, ae := range []string{"", "gzip", "zstd", "br"} {
		b.Run("accept="+ae, func(b *testing.B) {
			e, rt := benchEdge(b, benchConfigFor("off", "gatehouse"), Deps{})
			useStaticUpstream(rt, html)
			req := httptest.NewRequest("GET", "/page", nil)
			req.Host = "app.test"
			if ae != "" {
				req.Header.Set("Accept-Encoding", ae)
			}
			ci := &edgeserver.ConnInfo{Listener: "http", Peer: netip.MustParseAddr("192.0.2.10")}
			w := benchServe(b, e, req.WithContext(edgeserver.WithConnInfo(req.Context(), ci)))
			if got := w.h.Get("Content-Encoding"); got != ae {
				b.Fatalf("Content-Encoding %q, want %q", got, ae)
			}
		})
	}
}
