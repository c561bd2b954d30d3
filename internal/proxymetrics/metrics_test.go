package proxymetrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRouteLabels: a route's children fold methods into the fixed set and
// statuses into classes (an out-of-range status counts as 5xx), and
// Unrouted counts under an empty route and upstream.
func TestRouteLabels(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, "test", nil)
	rm := m.ForRoute("s", "/api/", "app")
	rm.Done("GET", 200, time.Millisecond)
	rm.Done("BREW", 418, time.Millisecond)
	rm.Done("POST", 999, time.Millisecond)
	m.Unrouted("", "HEAD", 421)
	for _, tc := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"s", "/api/", "app", "GET", "2xx"}, 1},
		{[]string{"s", "/api/", "app", "OTHER", "4xx"}, 1},
		{[]string{"s", "/api/", "app", "POST", "5xx"}, 1},
		{[]string{"", "", "", "HEAD", "4xx"}, 1},
		{[]string{"s", "/api/", "app", "GET", "5xx"}, 0},
	} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(tc.labels...)); got != tc.want {
			t.Errorf("requests%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.Duration, "gatehouse_http_request_duration_seconds"); n != 1 {
		t.Errorf("duration series = %d, want 1 (the route's)", n)
	}
}

// TestReloadResult: a failed reload clears the success gauge and keeps
// the last success time; both results are exported from the start.
func TestReloadResult(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg, "test", nil)
	const want0 = `
# HELP gatehouse_config_reloads_total Configuration reloads by result (success, failure).
# TYPE gatehouse_config_reloads_total counter
gatehouse_config_reloads_total{result="failure"} 0
gatehouse_config_reloads_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want0), "gatehouse_config_reloads_total"); err != nil {
		t.Error(err)
	}
	m.ReloadResult(true, time.Unix(1000, 0))
	m.ReloadResult(false, time.Unix(2000, 0))
	if got := testutil.ToFloat64(m.reloadOK); got != 0 {
		t.Errorf("last_reload_successful after a failure = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.reloadTime); got != 1000 {
		t.Errorf("last success time = %v, want 1000 (the failure does not move it)", got)
	}
}
