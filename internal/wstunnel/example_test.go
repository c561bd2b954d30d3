package wstunnel_test

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/wstunnel"
)

func Example() {
	reg := wstunnel.NewRegistry(wstunnel.RegistryOptions{})
	defer reg.Close()

	// In the proxy these are the hijacked client conn and the backend conn,
	// once the 101 response has been relayed. Here each peer is one end of a
	// net.Pipe.
	client, clientSide := net.Pipe()
	backendSide, backend := net.Pipe()
	tun := reg.Start(clientSide, nil, backendSide, nil, wstunnel.Options{
		IdleTimeout:  24 * time.Hour,
		CloseTimeout: 5 * time.Second,
		Labels:       wstunnel.Labels{Upstream: "daphne", Route: "chat"},
		OnEnd: func(r wstunnel.Result) {
			fmt.Printf("ended: cause=%s code=%d\n", r.Cause, r.Code)
		},
	})

	// The client sends the masked text frame "hi"; it reaches the backend
	// unchanged.
	client.Write([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2})
	fmt.Printf("backend got % x\n", readN(backend, 8))

	// Drain the route: each peer gets a Close 1012 at the next frame
	// boundary, unmasked to the client and masked to the backend.
	tun.Close(wstunnel.CloseServiceRestart, "", "drain")
	fmt.Printf("client got % x\n", readN(client, 4))
	fmt.Printf("backend got % x ... (masked)\n", readN(backend, 8)[:2])

	// Both peers answer with their own Close; the tunnel then closes both
	// conns and reports.
	client.Write([]byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xf4})
	backend.Write([]byte{0x88, 0x02, 0x03, 0xf4})
	<-tun.Done()
	// Output:
	// backend got 81 82 01 02 03 04 69 6b
	// client got 88 02 03 f4
	// backend got 88 82 ... (masked)
	// ended: cause=drain code=1012
}

func readN(r io.Reader, n int) []byte {
	b := make([]byte, n)
	io.ReadFull(r, b)
	return b
}
