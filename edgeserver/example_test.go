package edgeserver_test

import (
	"fmt"
	"net"
	"time"

	"github.com/gatehouse-proxy/gatehouse/edgeserver"
	"github.com/gatehouse-proxy/gatehouse/ratelimit"
)

// Guarding a listener: at most 10 connections per client address, banned
// clients closed before their first byte, strikes counted for refusals.
func ExampleNewListener() {
	jail := ratelimit.NewJail(ratelimit.JailOptions{})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l := edgeserver.NewListener(inner, edgeserver.ListenerOptions{
		Jail:  jail,
		Conns: ratelimit.NewConnLimiter(10, 0),
		OnRefuse: func(k ratelimit.Key, reason string) {
			if reason == ratelimit.ReasonPerKey {
				jail.RecordAt(k, "too many connections", time.Now())
			}
		},
	})
	defer l.Close()

	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			defer c.Close()
			c.Write([]byte("x"))
		}
	}()
	c, err := l.Accept()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	// http.Server{ConnContext: ...} would store this for the handlers.
	fmt.Println("client:", edgeserver.ClientAddr(c))
	// Output:
	// client: 127.0.0.1
}
