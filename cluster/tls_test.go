package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLS: rediss:// reaches a redis-server that speaks only TLS when its
// CA is trusted (RootCAs, config's ca_file), with ACL credentials; an
// untrusted server certificate is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caPool, certFile, keyFile, caFile := tlsFiles(t, dir)
	acl := filepath.Join(dir, "users.acl")
	os.WriteFile(acl, []byte("user default off\nuser gatehouse on >s3cret ~gatehouse:* ~rate:gatehouse:* &gatehouse:* +@all\n"), 0o600)
	port := freeTestPort(t)
	startRedisTLS(t, port, "--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", caFile, "--tls-auth-clients", "no", "--aclfile", acl)
	url := "rediss://gatehouse@localhost:" + port + "/0"

	n, err := New(Options{URL: url, Instance: "a", Password: "s3cret", RootCAs: caPool})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Ping(context.Background()); err != nil {
		t.Fatalf("PING over TLS with the CA trusted: %v", err)
	}
	n.beat(context.Background())
	if !n.Up() {
		t.Error("heartbeat over TLS failed")
	}

	other, _ := New(Options{URL: url, Instance: "b", Password: "s3cret"}) // system roots
	defer other.Close()
	if err := other.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("PING with the server's CA untrusted: %v, want a certificate error", err)
	}
}

func freeTestPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// startRedisTLS starts redis-server with only a TLS port.
func startRedisTLS(t *testing.T, port string, extra ...string) {
	t.Helper()
	r := startRedisArgs(t, "127.0.0.1:"+port, append([]string{"--port", "0", "--tls-port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...), false)
	waitFor(t, 10*time.Second, "redis-server listening with TLS", func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// tlsFiles writes a CA and a server certificate for localhost.
func tlsFiles(t *testing.T, dir string) (pool *x509.CertPool, certFile, keyFile, caFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test redis CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile, caFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile, caFile
}
