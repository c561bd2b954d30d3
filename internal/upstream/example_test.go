package upstream_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/upstream"
)

// A request with a header written field by field; the response lives in
// its connection until Body.Close, which returns the connection to the
// pool.
func Example() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s at %s", r.Header.Get("X-User"), r.Host)
	}))
	defer backend.Close()

	c := upstream.New(upstream.Options{ConnectTimeout: 5 * time.Second, MaxIdle: 8, IdleTimeout: time.Minute})
	defer c.Close()
	resp, err := c.Do(context.Background(), &upstream.Request{
		Addr:          backend.Listener.Addr().String(),
		Method:        "GET",
		Target:        "/hello?lang=en",
		Host:          "app.example",
		Header:        upstream.HeaderFields{"X-User": {"ada"}},
		HeaderTimeout: 5 * time.Second,
		BodyTimeout:   30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	status := resp.StatusCode
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(status, string(body))
	// Output: 200 hello ada at app.example
}
