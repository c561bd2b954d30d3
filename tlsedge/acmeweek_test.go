package tlsedge

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestACMEShortLivedWeek runs a week of 6-day certificates in a few
// seconds. certmagic reads the clock itself (time.Now in its renewal
// decisions, ARI's Retry-After, backoff), so time is faked with
// testing/synctest: the Manager, certmagic's cache and maintenance, its
// job workers and lock goroutines all live in the bubble, whose clock
// starts at 2000-01-01 and jumps whenever they are all waiting.
//
// Pebble, the DNS server and the exec hook stay outside the bubble, on
// the real clock and real sockets (a bubble's clock cannot advance while
// one of its goroutines waits on a socket, so nothing in it may listen or
// keep idle connections: Pebble closes every connection after one
// request). Two things bridge the clocks: orders carry explicit notBefore
// and notAfter (now and now + 6 days on the bubble's clock; Pebble honours
// them, and computes its ARI window from the certificate's own dates), and
// certmagic's per-CA rate limiter, a process-wide goroutine created on the
// first order to a CA, is created by a warm-up order outside the bubble
// (inside, it would outlive the bubble).
//
// Over the simulated week the served certificate never expires, each one
// is replaced inside Pebble's ARI window (two thirds into its life, ± a
// day: days 3 to 5), and nothing renews early or in a loop.
func TestACMEShortLivedWeek(t *testing.T) {
	const name = "week.example.test"
	d := startTestDNS(t, "example.test")
	dir := t.TempDir()
	d.hookLog = filepath.Join(dir, "hook.log")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $2 $3\" >> "+d.hookLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, closedPort := listen(t)
	p := startPebbleWith(t, pebbleOpts{httpPort: closedPort, tlsPort: closedPort, dnsAddr: d.addr,
		profiles: map[string]uint64{"shortlived": uint64(6 * day / time.Second)}})
	cfg := acmeConfig(p, false, false, name)
	cfg.ACME.Profile = "shortlived"
	cfg.ACME.DNS = &DNS{Provider: "exec", Command: script, Resolvers: []string{d.addr}, PropagationTimeout: -1}
	cfg.ACMEOverrides = map[string]ACMEOverride{name: {DNS01: true}}

	// Warm-up on the real clock: creates certmagic's rate limiter for
	// this CA and account.
	warm := cfg
	warm.ACMENames, warm.Names = []string{"warm.example.test"}, []string{"warm.example.test"}
	warm.ACMEOverrides = map[string]ACMEOverride{"warm.example.test": {DNS01: true}}
	wm, _ := newTestManagerWith(t, Options{})
	if err := wm.Update(warm); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- wm.Run(wctx) }()
	if _, err := wm.acmeEntry(context.Background(), "warm.example.test"); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	wcancel()
	<-wdone
	p.orders.Store(0)

	synctest.Test(t, func(t *testing.T) {
		// certmagic checks every 10 minutes (its default), Run hourly.
		m, _ := newTestManagerWith(t, Options{PollInterval: time.Hour})
		m.issuerHook = func(iss *certmagic.ACMEIssuer) {
			iss.NotBefore, iss.NotAfter = -time.Second, 6*day-time.Second
			// acmez polls every 250 ms (bubble time) while Pebble
			// validates on the real clock: allow many polls.
			iss.CertObtainTimeout = 24 * time.Hour
		}
		if err := m.Update(cfg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		start := time.Now()
		type seen struct {
			leaf *x509.Certificate
			at   time.Time
		}
		var certs []seen
		for time.Since(start) < 7*day {
			time.Sleep(time.Hour)
			e := (*m.acmeCerts.Load())[name]
			if e == nil {
				if time.Since(start) > 2*time.Hour {
					t.Fatalf("no certificate an hour into the week")
				}
				continue
			}
			now := time.Now()
			if !now.Before(e.leaf.NotAfter) {
				t.Fatalf("at %v the served certificate has expired (not after %v)", now.Sub(start), e.leaf.NotAfter.Sub(start))
			}
			if len(certs) == 0 || certs[len(certs)-1].leaf.SerialNumber.Cmp(e.leaf.SerialNumber) != 0 {
				certs = append(certs, seen{e.leaf, now})
				t.Logf("day %.2f: serving %v, valid days %.2f to %.2f", now.Sub(start).Hours()/24, e.leaf.SerialNumber,
					e.leaf.NotBefore.Sub(start).Hours()/24, e.leaf.NotAfter.Sub(start).Hours()/24)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		// certmagic's file storage refreshes a held lock every 5 s and
		// its refresher notices a released lock only on its next tick:
		// let bubble time pass so no refresher outlives the bubble.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		// A renewal in the week's last hour is in certmagic's cache (and
		// counted by Pebble) but may not be served yet: Run indexes the
		// cache hourly, at the same bubble instants as the loop above
		// looks, in either order. Index once more so that every order
		// is matched to its certificate.
		m.indexACME()
		if e := (*m.acmeCerts.Load())[name]; e != nil && len(certs) > 0 && certs[len(certs)-1].leaf.SerialNumber.Cmp(e.leaf.SerialNumber) != 0 {
			certs = append(certs, seen{e.leaf, time.Now()})
			t.Logf("at the end: serving %v, valid days %.2f to %.2f", e.leaf.SerialNumber,
				e.leaf.NotBefore.Sub(start).Hours()/24, e.leaf.NotAfter.Sub(start).Hours()/24)
		}

		if len(certs) < 2 || len(certs) > 3 {
			t.Fatalf("%d certificates in a week of 6-day certificates, want 2 or 3 (a renewal every 3 to 5 days)", len(certs))
		}
		for i := 1; i < len(certs); i++ {
			old, renewedAt := certs[i-1].leaf, certs[i].at
			life := old.NotAfter.Sub(old.NotBefore)
			if age := renewedAt.Sub(old.NotBefore); age < life/2-time.Hour || age > life*5/6+time.Hour {
				t.Errorf("certificate %d replaced at age %v of %v, want inside the ARI window (days 3 to 5)", i, age, life)
			}
		}
		if got := p.orders.Load(); got != int64(len(certs)) {
			t.Errorf("orders = %d for %d certificates", got, len(certs))
		}
	})
}
