// Command proxyfloor is the floor of the side-by-side harness's proxied
// columns (test/bench/proxyfloor.sh): Go's net/http server, HTTP/1.1 and
// HTTP/2 over TLS exactly as Gatehouse configures it, in front of the
// harness's two backends with the least work a reverse proxy must do and
// nothing else. What it costs per request against nginx is what no proxy
// built on net/http's server can go below on this machine; what
// Gatehouse costs above it is Gatehouse's (docs/performance.md).
//
// Per request it takes a kept-alive connection to the next backend in
// turn, writes the request head (the client's header fields but the
// hop-by-hop ones, X-Forwarded-For and X-Forwarded-Proto added) and
// body, reads the response head with a minimal parser (Content-Length,
// chunked, or to the end), hands the fields to net/http's ResponseWriter
// and copies the body. A WebSocket upgrade is hijacked and spliced to a
// new backend connection. It has no limits, retries, health checks,
// timeouts beyond a header timeout, request IDs, logging or metrics, and
// trusts its backends: it is a measuring stick, not a server to deploy.
//
//	proxyfloor -backends 127.0.0.1:P1,127.0.0.1:P2 -http 127.0.0.1:PORT [-https 127.0.0.1:PORT -cert F -key F]
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// upConn is a kept-alive connection to a backend.
type upConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// backend is one server with its idle connections.
type backend struct {
	addr string
	mu   sync.Mutex
	idle []*upConn
}

func (b *backend) get() (*upConn, error) {
	b.mu.Lock()
	if n := len(b.idle); n > 0 {
		uc := b.idle[n-1]
		b.idle = b.idle[:n-1]
		b.mu.Unlock()
		return uc, nil
	}
	b.mu.Unlock()
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

// maxIdle is the idle connections kept per backend (the harness's
// keepalive = 64).
const maxIdle = 64

func (b *backend) put(uc *upConn) {
	b.mu.Lock()
	if len(b.idle) < maxIdle {
		b.idle = append(b.idle, uc)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	uc.c.Close()
}

type proxy struct {
	backends []*backend
	next     atomic.Uint32
	bufs     sync.Pool // *[]byte, 32 KiB body copy buffers
}

// hopByHop are the fields a proxy does not forward (RFC 9110 7.6.1).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// ownFields are the request fields writeRequest writes itself (the
// framing of the body it sends, the forwarding fields) or leaves out:
// Expect: 100-continue is answered by net/http when the body is read.
var ownFields = map[string]bool{
	"Content-Length": true, "X-Forwarded-For": true, "X-Forwarded-Proto": true, "Expect": true,
}

func (p *proxy) pick() *backend {
	return p.backends[int(p.next.Add(1))%len(p.backends)]
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" {
		p.tunnel(w, r)
		return
	}
	b := p.pick()
	uc, err := b.get()
	if err != nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	if err := p.writeRequest(uc, r, false); err != nil {
		uc.c.Close()
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	reuse, err := p.copyResponse(w, uc, r.Method == http.MethodHead)
	switch {
	case errors.Is(err, errHead):
		// Nothing was sent: the client gets a 502, without the fields
		// read before the head broke off.
		uc.c.Close()
		clear(w.Header())
		log.Printf("backend %s: %v", b.addr, err)
		http.Error(w, "bad gateway", http.StatusBadGateway)
	case err != nil:
		// The body broke off: net/http ends the response short (and
		// closes the connection, the length being known) or without its
		// last chunk.
		uc.c.Close()
		if !errors.Is(err, errClient) {
			log.Printf("backend %s: %v", b.addr, err)
		}
	case !reuse:
		uc.c.Close()
	default:
		b.put(uc)
	}
}

// writeRequest writes r's head and body to uc; upgrade keeps the
// Connection and Upgrade fields.
func (p *proxy) writeRequest(uc *upConn, r *http.Request, upgrade bool) error {
	bw := uc.bw
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	bw.WriteString(r.RequestURI)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	for k, vv := range r.Header {
		if hopByHop[k] && !(upgrade && (k == "Connection" || k == "Upgrade")) || ownFields[k] {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	bw.WriteString("X-Forwarded-For: ")
	bw.WriteString(host)
	if r.TLS != nil {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	}
	hasBody := !upgrade && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	chunked := false
	switch {
	case !hasBody:
	case r.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(r.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if hasBody {
		var dst io.Writer = bw
		var cw io.WriteCloser
		if chunked {
			cw = httputil.NewChunkedWriter(bw)
			dst = cw
		}
		bp := p.bufs.Get().(*[]byte)
		_, err := io.CopyBuffer(dst, r.Body, *bp)
		p.bufs.Put(bp)
		if err != nil {
			return err
		}
		if cw != nil {
			cw.Close()
			bw.WriteString("\r\n")
		}
	}
	return bw.Flush()
}

// errClient marks a failed write to the client, errHead a response head
// that could not be read (nothing was sent to the client).
var (
	errClient = errors.New("client write failed")
	errHead   = errors.New("reading the response head")
)

// copyResponse reads the response head from uc, passes it to w and
// copies the body; reuse reports whether uc may carry another request.
// A head that cannot be read is errHead: nothing was sent.
func (p *proxy) copyResponse(w http.ResponseWriter, uc *upConn, head bool) (reuse bool, err error) {
	br := uc.br
	code, length, chunked, closeAfter, err := readHead(br, w.Header())
	if err != nil {
		return false, fmt.Errorf("%w: %w", errHead, err)
	}
	w.WriteHeader(code)
	if head || code == http.StatusNoContent || code == http.StatusNotModified || code/100 == 1 {
		return !closeAfter, nil
	}
	var body io.Reader
	switch {
	case chunked:
		body = httputil.NewChunkedReader(br)
	case length >= 0:
		body = &io.LimitedReader{R: br, N: length}
	default:
		body, closeAfter = br, true
	}
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return false, errClient
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, rerr
		}
	}
	if chunked {
		// The chunked reader stops at the last chunk; the trailer
		// section (empty from these backends) ends with a CRLF.
		if line, err := br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(line, "\r\n")) != 0 {
			return false, nil
		}
	}
	return !closeAfter, nil
}

// readHead reads a response head from br into h (hop-by-hop fields
// left out) and returns its status code and framing.
func readHead(br *bufio.Reader, h http.Header) (code int, length int64, chunked, closeAfter bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, false, fmt.Errorf("bad status line %q", line)
	}
	if code, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, 0, false, false, fmt.Errorf("bad status line %q", line)
	}
	length = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return code, length, chunked, closeAfter, nil
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			return 0, 0, false, false, fmt.Errorf("bad header line %q", line)
		}
		k := http.CanonicalHeaderKey(string(line[:i]))
		v := string(bytes.TrimSpace(line[i+1:]))
		switch k {
		case "Content-Length":
			if length, err = strconv.ParseInt(v, 10, 64); err != nil || length < 0 {
				return 0, 0, false, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case "Transfer-Encoding":
			chunked = strings.EqualFold(v, "chunked")
			continue
		case "Connection":
			closeAfter = strings.EqualFold(v, "close")
			continue
		}
		if hopByHop[k] {
			continue
		}
		h[k] = append(h[k], v)
	}
}

// tunnel splices an upgraded request (WebSocket) to a new backend
// connection.
func (p *proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	b := p.pick()
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	uc := &upConn{c: c, bw: bufio.NewWriterSize(c, 1024)}
	if err := p.writeRequest(uc, r, true); err != nil {
		c.Close()
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	cc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		c.Close()
		return
	}
	// Plain read/write loops: io.Copy between two TCP connections would
	// splice(2) through a pipe pair held for as long as a direction waits,
	// four descriptors per idle tunnel.
	done := make(chan struct{}, 2)
	splice := func(dst, src net.Conn, pending []byte) {
		if len(pending) > 0 {
			dst.Write(pending)
		}
		buf := make([]byte, 4096)
		io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		done <- struct{}{}
	}
	var pending []byte
	if n := brw.Reader.Buffered(); n > 0 {
		// What the client sent after the head and net/http buffered.
		pending, _ = brw.Reader.Peek(n)
	}
	go splice(c, cc, pending)
	go splice(cc, c, nil)
	<-done
	<-done
	cc.Close()
	c.Close()
}

func main() {
	backends := flag.String("backends", "", "comma-separated backend addresses (HTTP/1.1, round robin)")
	httpAddr := flag.String("http", "", "plaintext listen address")
	httpsAddr := flag.String("https", "", "TLS listen address (needs -cert and -key)")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	flag.Parse()
	if *backends == "" || *httpAddr == "" {
		log.Fatal("proxyfloor: -backends and -http are required")
	}
	p := &proxy{}
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	for _, a := range strings.Split(*backends, ",") {
		p.backends = append(p.backends, &backend{addr: a})
	}
	// As Gatehouse's listeners: header and idle timeouts, HTTP/2 on the
	// TLS listener only.
	newServer := func() *http.Server {
		s := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second}
		s.Protocols = new(http.Protocols)
		s.Protocols.SetHTTP1(true)
		return s
	}
	errc := make(chan error, 2)
	plain := newServer()
	plain.Addr = *httpAddr
	go func() { errc <- plain.ListenAndServe() }()
	if *httpsAddr != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		s := newServer()
		s.Addr = *httpsAddr
		s.Protocols.SetHTTP2(true)
		s.TLSConfig = &tls.Config{
			Certificates:           []tls.Certificate{pair},
			MinVersion:             tls.VersionTLS12,
			CurvePreferences:       []tls.CurveID{tls.X25519},
			SessionTicketsDisabled: true,
			NextProtos:             []string{"h2", "http/1.1"},
		}
		go func() { errc <- s.ListenAndServeTLS("", "") }()
	}
	log.Fatal(<-errc)
}
