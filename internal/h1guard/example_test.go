package h1guard_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/gatehouse-proxy/gatehouse/internal/h1guard"
)

type guardKey struct{}

// guarded wraps each accepted connection in a guard.
type guarded struct{ net.Listener }

func (l guarded) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return h1guard.Wrap(c, h1guard.Options{}), nil
}

// A request smuggling attempt (Content-Length and Transfer-Encoding
// together) never reaches the handler: the handler sees the marker request,
// answers 400 and the server closes the connection.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, guardKey{}, c.(*h1guard.Conn))
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := r.Context().Value(guardKey{}).(*h1guard.Conn)
			if reason, ok := g.Rejected(); ok && r.URL.Path == h1guard.MarkerPath {
				fmt.Println("handler: rejected:", reason)
				w.Header().Set("Connection", "close")
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			fmt.Println("handler:", r.Method, r.URL.Path)
		}),
	}
	go srv.Serve(guarded{ln})
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, req := range []string{
		"GET /ok HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"POST /smuggle HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /after HTTP/1.1\r\nHost: example.com\r\n\r\n",
	} {
		io.WriteString(c, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fmt.Println("client: connection closed")
			return
		}
		resp.Body.Close()
		fmt.Println("client:", resp.Status)
	}
	// Output:
	// handler: GET /ok
	// client: 200 OK
	// handler: rejected: Transfer-Encoding with Content-Length
	// client: 400 Bad Request
	// client: connection closed
}

// An Upgrade request that the handler does not upgrade leaves the guard
// on: a smuggling attempt sent after it is still refused. The server tells
// the guard about hijacks through ConnState, so that a real switch (101 on
// a hijacked connection) passes the stream through.
func Example_upgrade() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, guardKey{}, c.(*h1guard.Conn))
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateHijacked {
				c.(*h1guard.Conn).Hijacked()
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g := r.Context().Value(guardKey{}).(*h1guard.Conn)
			if reason, ok := g.Rejected(); ok && r.URL.Path == h1guard.MarkerPath {
				fmt.Println("handler: rejected:", reason)
				w.Header().Set("Connection", "close")
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			fmt.Println("handler:", r.Method, r.URL.Path, "Upgrade:", r.Header.Get("Upgrade"))
		}),
	}
	go srv.Serve(guarded{ln})
	defer srv.Close()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, req := range []string{
		"GET /page HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"POST /smuggle HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	} {
		io.WriteString(c, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			fmt.Println("client: connection closed")
			return
		}
		resp.Body.Close()
		fmt.Println("client:", resp.Status)
	}
	// Output:
	// handler: GET /page Upgrade: websocket
	// client: 200 OK
	// handler: rejected: Transfer-Encoding with Content-Length
	// client: 400 Bad Request
}
