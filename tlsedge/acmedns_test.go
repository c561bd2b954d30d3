package tlsedge

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testDNS is an authoritative server for one zone, as BIND or Knot would
// be: A 127.0.0.1 for every name, the zone's SOA, TXT records, and RFC
// 2136 updates signed with its TSIG key (unsigned or badly signed updates
// are refused). With hookLog set, TXT records also come from that file,
// where the exec test's program writes "present|cleanup FQDN VALUE"
// lines. It serves UDP and TCP on one port.
type testDNS struct {
	addr    string
	zone    string // "example.test."
	keyName string // "gatehouse-key."
	secret  string // base64
	hookLog string

	mu      sync.Mutex
	txt     map[string][]string // lower-case FQDN → values
	updates atomic.Int64        // accepted updates
	refused atomic.Int64        // refused updates
}

func startTestDNS(t *testing.T, zone string) *testDNS {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	d := &testDNS{zone: dns.Fqdn(zone), keyName: "gatehouse-key.", secret: base64.StdEncoding.EncodeToString(raw), txt: map[string][]string{}}
	secrets := map[string]string{d.keyName: d.secret}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	d.addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(d.serve)
	// miekg answers UPDATE with NOTIMP unless told to accept it.
	accept := func(dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	udp := &dns.Server{PacketConn: pc, Handler: h, TsigSecret: secrets, MsgAcceptFunc: accept}
	tcp := &dns.Server{Listener: ln, Handler: h, TsigSecret: secrets, MsgAcceptFunc: accept}
	for _, s := range []*dns.Server{udp, tcp} {
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown() })
	}
	return d
}

func (d *testDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if r.Opcode == dns.OpcodeUpdate {
		t := r.IsTsig()
		if t == nil || w.TsigStatus() != nil || !strings.EqualFold(t.Hdr.Name, d.keyName) {
			d.refused.Add(1)
			m.Rcode = dns.RcodeRefused
			w.WriteMsg(m)
			return
		}
		d.mu.Lock()
		for _, rr := range r.Ns {
			txt, ok := rr.(*dns.TXT)
			name := strings.ToLower(rr.Header().Name)
			switch {
			case rr.Header().Class == dns.ClassANY:
				delete(d.txt, name)
			case !ok:
			case rr.Header().Class == dns.ClassNONE:
				vals := d.txt[name]
				for i, v := range vals {
					if v == strings.Join(txt.Txt, "") {
						vals = append(vals[:i], vals[i+1:]...)
						break
					}
				}
				d.txt[name] = vals
			default:
				d.txt[name] = append(d.txt[name], strings.Join(txt.Txt, ""))
			}
		}
		d.mu.Unlock()
		d.updates.Add(1)
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		w.WriteMsg(m)
		return
	}
	for _, q := range r.Question {
		name := strings.ToLower(q.Name)
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 1}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
		case dns.TypeSOA:
			soa := &dns.SOA{Hdr: dns.RR_Header{Name: d.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
				Ns: "ns." + d.zone, Mbox: "hostmaster." + d.zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
			if name == d.zone {
				m.Answer = append(m.Answer, soa)
			} else if dns.IsSubDomain(d.zone, name) {
				m.Ns = append(m.Ns, soa)
			}
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			for _, v := range d.values(name) {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
		}
	}
	w.WriteMsg(m)
}

// values lists the TXT values of name: updated ones and the hook log's.
func (d *testDNS) values(name string) []string {
	d.mu.Lock()
	vals := append([]string(nil), d.txt[name]...)
	d.mu.Unlock()
	if d.hookLog == "" {
		return vals
	}
	f, err := os.Open(d.hookLog)
	if err != nil {
		return vals
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 3 || !strings.EqualFold(fs[1], name) {
			continue
		}
		if fs[0] == "present" {
			vals = append(vals, fs[2])
		} else {
			for i, v := range vals {
				if v == fs[2] {
					vals = append(vals[:i], vals[i+1:]...)
					break
				}
			}
		}
	}
	return vals
}

// dnsEdge starts Pebble validating through d and an edge whose dns-01
// names use dnsCfg; http-01 and tls-alpn-01 have nothing to answer them.
func dnsEdge(t *testing.T, d *testDNS, dnsCfg *DNS, names []string, overrides map[string]ACMEOverride) (*edge, *pebbleCA) {
	t.Helper()
	tlsLn, _ := listen(t)
	_, closedPort := listen(t)
	p := startPebbleWith(t, pebbleOpts{httpPort: closedPort, tlsPort: closedPort, dnsAddr: d.addr})
	cfg := acmeConfig(p, true, false, names...)
	cfg.ACME.DNS = dnsCfg
	cfg.ACMEOverrides = overrides
	return startEdge(t, t.TempDir(), cfg, tlsLn, nil, Options{}), p
}

// TestACMEDNS01RFC2136: an exact name and a wildcard are issued through
// dns-01 with TSIG-signed dynamic updates (checked for propagation at the
// server); the wildcard certificate serves any one-label subdomain; the
// challenge records are removed afterwards.
func TestACMEDNS01RFC2136(t *testing.T) {
	d := startTestDNS(t, "example.test")
	e, p := dnsEdge(t, d, &DNS{
		Provider: "rfc2136", Server: d.addr, KeyName: d.keyName, Secret: []byte(d.secret + "\n"),
		Resolvers: []string{d.addr}, PropagationTimeout: 30 * time.Second,
	}, []string{"api.example.test", "*.example.test"}, map[string]ACMEOverride{"api.example.test": {DNS01: true}})
	for _, sni := range []string{"api.example.test", "www.example.test", "other.example.test"} {
		c, err := dialSlow(e.tlsAddr, sni, p.certRoots)
		if err != nil {
			t.Fatalf("handshake for %s (issuance via dns-01): %v", sni, err)
		}
		if err := leafOf(c).VerifyHostname(sni); err != nil {
			t.Errorf("%s: %v", sni, err)
		}
		c.Close()
	}
	if got := leafOf(mustDial(t, e.tlsAddr, "www.example.test", p)).DNSNames; len(got) != 1 || got[0] != "*.example.test" {
		t.Errorf("www.example.test served %v, want the wildcard certificate", got)
	}
	if got := p.orders.Load(); got != 2 {
		t.Errorf("orders = %d, want 2 (one per name)", got)
	}
	if d.updates.Load() < 4 || d.refused.Load() != 0 {
		t.Errorf("dns updates: %d accepted, %d refused; want >= 4 (present and cleanup for two names) and 0", d.updates.Load(), d.refused.Load())
	}
	waitUntil(t, "challenge records cleaned up", func() bool {
		return len(d.values("_acme-challenge.example.test.")) == 0 && len(d.values("_acme-challenge.api.example.test.")) == 0
	})
	// A name two labels down is not covered by the wildcard, and nothing
	// is ordered for it.
	if c, err := dial(e.tlsAddr, "a.b.example.test", p.certRoots, nil); err == nil {
		c.Close()
		t.Error("a.b.example.test was served")
	}
	if got := p.orders.Load(); got != 2 {
		t.Errorf("orders after unknown SNI = %d, want 2", got)
	}
}

// TestACMEDNS01RFC2136BadKey: an update signed with the wrong TSIG secret
// is refused by the server, so nothing is issued and the handshake fails.
func TestACMEDNS01RFC2136BadKey(t *testing.T) {
	d := startTestDNS(t, "example.test")
	wrong := base64.StdEncoding.EncodeToString([]byte("not the secret, not the secret!!"))
	e, p := dnsEdge(t, d, &DNS{
		Provider: "rfc2136", Server: d.addr, KeyName: d.keyName, Secret: []byte(wrong), Resolvers: []string{d.addr},
	}, []string{"*.example.test"}, nil)
	if c, err := dialSlow(e.tlsAddr, "www.example.test", p.certRoots); err == nil {
		c.Close()
		t.Fatal("issued with a wrong TSIG secret")
	}
	if d.refused.Load() == 0 {
		t.Error("no update was refused")
	}
}

// TestACMEDNS01Exec: the exec provider runs the configured program with
// present/cleanup, the FQDN and the value.
func TestACMEDNS01Exec(t *testing.T) {
	d := startTestDNS(t, "example.test")
	dir := t.TempDir()
	d.hookLog = filepath.Join(dir, "hook.log")
	script := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $2 $3\" >> "+d.hookLog+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e, p := dnsEdge(t, d, &DNS{Provider: "exec", Command: script, Resolvers: []string{d.addr}, PropagationTimeout: -1},
		[]string{"*.example.test"}, nil)
	c, err := dialSlow(e.tlsAddr, "www.example.test", p.certRoots)
	if err != nil {
		t.Fatalf("handshake (issuance via the exec hook): %v", err)
	}
	c.Close()
	var log []byte
	waitUntil(t, "the hook ran present and cleanup", func() bool {
		log, _ = os.ReadFile(d.hookLog)
		return strings.Contains(string(log), "present _acme-challenge.example.test. ") &&
			strings.Contains(string(log), "cleanup _acme-challenge.example.test. ")
	})
}

// mustDial is dial that fails the test.
func mustDial(t *testing.T, addr, name string, p *pebbleCA) *tlsConn {
	t.Helper()
	c, err := dial(addr, name, p.certRoots, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
