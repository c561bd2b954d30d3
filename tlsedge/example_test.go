package tlsedge_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/gatehouse-proxy/gatehouse/tlsedge"
)

// Example runs the lifecycle cmd uses: New once, Update per configuration
// generation, Run in the background, TLSConfig per listener. Here the
// certificate is the self-signed development one `gatehouse run` uses
// without a configuration.
func Example() {
	state, err := os.MkdirTemp("", "gatehouse-state")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(state)

	m, err := tlsedge.New(tlsedge.Options{StateDir: state})
	if err != nil {
		panic(err)
	}
	if err := m.Update(tlsedge.Config{SelfSigned: []string{"localhost"}, Names: []string{"localhost"}}); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }),
		TLSConfig: m.TLSConfig(tlsedge.Policy{}),
		ErrorLog:  m.HandshakeErrorLog(),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.ServeTLS(ln, "", "")
	}()

	// Trust the development certificate, as a developer would.
	pemBytes, err := os.ReadFile(filepath.Join(state, "selfsigned", "cert.pem"))
	if err != nil {
		panic(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
	res, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(res.Proto, tls.VersionName(res.TLS.Version), string(body))

	client.CloseIdleConnections()
	srv.Close()
	<-served
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// HTTP/2.0 TLS 1.3 hello
	// run: <nil>
}
