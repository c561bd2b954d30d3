package configfile

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "1m30s": 90 * time.Second, "7d": 7 * 24 * time.Hour, " 5m ": 5 * time.Minute, "0s": 0} {
		var d Duration
		if err := d.UnmarshalText([]byte(in)); err != nil || !d.Set || d.Value != want {
			t.Errorf("Duration %q = %+v, %v; want %v", in, d, err, want)
		}
	}
	for _, bad := range []string{"", "12 seconds", "-1s", "-1d", "xd"} {
		var d Duration
		if err := d.UnmarshalText([]byte(bad)); err == nil || d.Set {
			t.Errorf("Duration %q accepted: %+v", bad, d)
		}
	}
	if got := (Duration{}).Or(time.Second); got != time.Second {
		t.Errorf("unset Or = %v, want the default", got)
	}
	if got := (Duration{Set: true}).Or(time.Second); got != 0 {
		t.Errorf("an explicit zero Or = %v, want 0", got)
	}
}

// TestDurationWritten: what TOMLValue writes reads back the same.
func TestDurationWritten(t *testing.T) {
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7d", 90 * time.Second: "1m30s", 90 * time.Minute: "1h30m",
		2 * time.Hour: "2h", 500 * time.Millisecond: "500ms", 0: "0s", 25 * time.Hour: "25h",
	} {
		v, set := Duration{Value: d, Set: true}.TOMLValue()
		if v != want || !set {
			t.Errorf("TOMLValue(%v) = %v, %v; want %q", d, v, set, want)
			continue
		}
		back, err := ParseDuration(want)
		if err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", want, back, err, d)
		}
	}
	if _, set := (Duration{}).TOMLValue(); set {
		t.Error("an unset duration is written")
	}
}

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"10M": 10 << 20, "10MiB": 10 << 20, "10MB": 10 << 20, "512k": 512 << 10, "1KB": 1 << 10, "1024": 1024, "1G": 1 << 30} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "-1", "10X", "99999999999999G"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
	var s Size
	if err := s.UnmarshalTOML(int64(1000)); err != nil || s != (Size{1000, true}) {
		t.Errorf("UnmarshalTOML(1000) = %+v, %v", s, err)
	}
	for _, bad := range []any{int64(-1), 1.5, "10X"} {
		var s Size
		if err := s.UnmarshalTOML(bad); err == nil {
			t.Errorf("UnmarshalTOML(%v) accepted: %+v", bad, s)
		}
	}
	for n, want := range map[int64]any{10 << 20: "10M", 3 << 30: "3G", 1536: int64(1536), 3 << 10: "3k", 1 << 10: "1k", 1000: int64(1000), 0: int64(0)} {
		if v, _ := (Size{n, true}).TOMLValue(); v != want {
			t.Errorf("TOMLValue(%d) = %#v, want %#v", n, v, want)
		}
	}
}

func TestHeaderValues(t *testing.T) {
	var h HeaderValues
	if err := h.UnmarshalTOML("a"); err != nil || len(h) != 1 || h[0] != "a" {
		t.Errorf("a string: %q, %v", h, err)
	}
	if err := h.UnmarshalTOML([]any{"a", "b"}); err != nil || len(h) != 2 {
		t.Errorf("an array: %q, %v", h, err)
	}
	for _, bad := range []any{int64(1), []any{"a", int64(2)}} {
		if err := new(HeaderValues).UnmarshalTOML(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
