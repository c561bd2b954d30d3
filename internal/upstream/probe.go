package upstream

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
)

// Check is an active health check (HAProxy's option httpchk): the request
// to send and what passes it.
type Check struct {
	Method, Path string
	// Host is the Host header; "" for the server's address.
	Host string
	// Expect are the statuses that pass.
	Expect []int
	// Body, when set, must occur in the first maxProbeBody bytes of the
	// answer.
	Body string
}

// maxProbeBody is how much of a probe's answer is read.
const maxProbeBody = 64 << 10

// Probe does one check of the server at addr through c and says why it
// passed or failed. A probe is not a client's request: it carries no
// forwarded headers, only Host and a User-Agent.
func (k *Check) Probe(ctx context.Context, c *http.Client, addr string) (ok bool, reason string) {
	req, err := http.NewRequestWithContext(ctx, k.Method, "http://"+addr+k.Path, nil)
	if err != nil {
		return false, err.Error()
	}
	if k.Host != "" {
		req.Host = k.Host
	}
	req.Header.Set("User-Agent", "gatehouse-health-check")
	resp, err := c.Do(req)
	if err != nil {
		return false, "probe failed: " + err.Error()
	}
	defer resp.Body.Close()
	status := "status " + strconv.Itoa(resp.StatusCode)
	if !slices.Contains(k.Expect, resp.StatusCode) {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
		return false, status + " from " + k.Path
	}
	if k.Body == "" {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
		return true, status
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if err != nil {
		return false, "reading body: " + err.Error()
	}
	if !bytes.Contains(b, []byte(k.Body)) {
		return false, "body does not contain " + strconv.Quote(k.Body)
	}
	return true, status + ", body matched"
}
