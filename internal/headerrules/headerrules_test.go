package headerrules

import (
	"net/http"
	"reflect"
	"testing"
)

func TestApply(t *testing.T) {
	var rs Response
	rs.Remove("Server")
	rs.Set("X-Frame-Options", []string{"DENY"})
	rs.Add("Vary", []string{"Cookie"})
	rs.Add("Vary", []string{"Origin"})
	backendVary := []string{"Accept-Encoding"}
	h := http.Header{"Server": {"gunicorn"}, "X-Frame-Options": {"SAMEORIGIN"}, "Vary": backendVary}
	rs.Apply(h)
	want := http.Header{"X-Frame-Options": {"DENY"}, "Vary": {"Accept-Encoding", "Cookie", "Origin"}}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("after the rules: %v, want %v", h, want)
	}
	if backendVary[0] != "Accept-Encoding" || len(backendVary) != 1 {
		t.Errorf("Add changed the slice it was given: %v", backendVary)
	}
	// The values of Set are shared; an Add after it must not write into
	// them.
	var rs2 Response
	shared := []string{"a"}
	rs2.Set("X-A", shared)
	rs2.Add("X-A", []string{"b"})
	h2 := http.Header{}
	rs2.Apply(h2)
	if !reflect.DeepEqual(h2["X-A"], []string{"a", "b"}) || len(shared) != 1 || cap(shared) != 1 {
		t.Errorf("X-A %v, shared %v", h2["X-A"], shared)
	}
	var none Response
	none.Apply(h2) // an empty list changes nothing
	if len(h2) != 1 {
		t.Errorf("empty rules changed the header: %v", h2)
	}
}
