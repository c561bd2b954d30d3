package autocertimport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/gatehouse-proxy/gatehouse/internal/autocertimport"
)

func ExampleImport() {
	state, err := os.MkdirTemp("", "gatehouse-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(state)
	// What autocert left: an account key (and, in real life, certificates).
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(key)
	os.MkdirAll(filepath.Join(state, "acme"), 0o700)
	os.WriteFile(filepath.Join(state, "acme", "acme_account+key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(state, "acme", "broken.example.com"), []byte("torn"), 0o600)

	storage := &certmagic.FileStorage{Path: filepath.Join(state, "certmagic")}
	autocertimport.Import(context.Background(), autocertimport.Options{
		Dir:          filepath.Join(state, "acme"),
		Storage:      storage,
		IssuerKey:    "acme-v02.api.letsencrypt.org-directory",
		DirectoryURL: "https://acme-v02.api.letsencrypt.org/directory",
		Email:        "ops@example.com",
		Now:          time.Now,
		Corrupt:      func(kind string) { fmt.Println("moved aside:", kind) },
	})
	keys, _ := storage.List(context.Background(), "acme", true)
	for _, k := range keys {
		if storage.Exists(context.Background(), k) && filepath.Ext(k) == ".key" {
			fmt.Println(k)
		}
	}
	// Output:
	// moved aside: certificate
	// acme/acme-v02.api.letsencrypt.org-directory/users/ops@example.com/ops.key
}
