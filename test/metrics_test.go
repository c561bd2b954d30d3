package test

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMetricsExposition scrapes /metrics after some traffic (proxied,
// 404, 421, a unique path) and checks that it passes `promtool check
// metrics` and that no label carries a client address or a raw request
// path (unbounded cardinality, and personal data in metrics).
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	be := newBackend(t, "b1", nil)
	g := startGatehouse(t, plainOnly+plainSite(be.addr()))
	const uniquePath = "/unique-e2e-path-7f3a9c"
	c := plainClient()
	for _, tc := range []struct{ path, host string }{
		{uniquePath, "app.test"},
		{uniquePath + "?q=1", "app.test"},
		{"/small/x", "app.test"},
		{uniquePath, "nobody.test"}, // 421
	} {
		get(t, c, "http://"+g.httpAddr+tc.path, tc.host, nil)
	}
	m := g.metrics()

	series := `gatehouse_http_requests_total{code="2xx",method="GET",route="/",site="app",upstream="app"}`
	if v, ok := metricValue(m, series); !ok || v != "2" {
		t.Errorf("%s = %q (present %v), want 2 (the two proxied GETs)", series, v, ok)
	}

	labelRe := regexp.MustCompile(`\{(.*)\}`)
	sc := bufio.NewScanner(strings.NewReader(m))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		lm := labelRe.FindStringSubmatch(line)
		if lm == nil {
			continue
		}
		if strings.Contains(lm[1], "127.0.0.1") {
			// Neither the client's address nor a backend address
			// belongs in a label (servers are labelled by name).
			t.Errorf("address 127.0.0.1 in a label: %s", line)
		}
		if strings.Contains(lm[1], "unique-e2e-path") {
			t.Errorf("raw request path in a label: %s", line)
		}
	}

	promtool := requireTool(t, "promtool", "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(m)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
