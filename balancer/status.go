package balancer

import "time"

// This file holds the read-only views of a backend's state that status
// pages need, and the one hot-path hook that feeds them (ObserveResponse).

// CheckResult is one active health-check result as reported to
// [Backend.ReportCheck].
type CheckResult struct {
	At     time.Time // when it was reported (the pool's clock)
	OK     bool
	Reason string // the checker's explanation, e.g. "status 200"
}

// LastCheck returns the latest active health-check result, and false when
// the backend has never been checked.
func (b *Backend) LastCheck() (CheckResult, bool) {
	if c := b.st.lastCheck.Load(); c != nil {
		return *c, true
	}
	return CheckResult{}, false
}

// ObserveResponse records one response the backend answered, with its
// status and its duration (the request's, from its start to the end of the
// response). It is two or three atomic adds, cheap enough for every
// request; [Backend.ResponseStats] reads the sums, and a status view turns
// the difference of two reads into a rate.
func (b *Backend) ObserveResponse(status int, d time.Duration) {
	s := b.st
	s.responses.Add(1)
	s.latency.Add(int64(d))
	if status >= 500 {
		s.responses5xx.Add(1)
	}
}

// ResponseStats are the cumulative sums of [Backend.ObserveResponse]
// since the backend's state was created (they survive reloads that keep
// the server).
type ResponseStats struct {
	Responses uint64        // responses answered
	Errors    uint64        // of which had a 5xx status
	Latency   time.Duration // sum of their durations
}

// ResponseStats returns the cumulative response statistics.
func (b *Backend) ResponseStats() ResponseStats {
	s := b.st
	// Latency first: a response counted in between shows as a slightly
	// low mean, never as a duration without its count.
	lat := s.latency.Load()
	return ResponseStats{Latency: time.Duration(lat), Errors: s.responses5xx.Load(), Responses: s.responses.Load()}
}

// SlowStartUntil reports whether the backend is in slow start at now
// (its effective weight still ramping up after coming back) and when
// that ends.
func (b *Backend) SlowStartUntil(now time.Time) (time.Time, bool) {
	ss := int64(b.pool.o.SlowStart)
	if ss <= 0 {
		return time.Time{}, false
	}
	n := now.UnixNano()
	origin := max(b.st.upSince.Load(), b.st.downTill.Load())
	if origin == 0 || n >= origin+ss || n < origin {
		return time.Time{}, false
	}
	return time.Unix(0, origin+ss), true
}

// PassiveDownUntil reports whether passive health (max_fails within
// fail_timeout) keeps the backend out at now, and until when.
func (b *Backend) PassiveDownUntil(now time.Time) (time.Time, bool) {
	t := b.st.downTill.Load()
	if t <= now.UnixNano() {
		return time.Time{}, false
	}
	return time.Unix(0, t), true
}

// DrainDeadline reports whether the backend is draining and, for a runtime
// drain with a deadline, when sticky clients lose it; a zero time means no
// deadline (drained by configuration, or until undrained).
func (b *Backend) DrainDeadline() (time.Time, bool) {
	d := b.ns.drain.Load()
	switch {
	case d != 0 && d != drainForever:
		return time.Unix(0, d), true
	case d != 0 || b.drain:
		return time.Time{}, true
	}
	return time.Time{}, false
}
