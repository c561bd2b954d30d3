package devcert_test

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/devcert"
)

func ExampleGenerate() {
	certPEM, keyPEM, err := devcert.Generate([]string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		panic(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		panic(err)
	}
	fmt.Println(pair.Leaf.DNSNames, pair.Leaf.IPAddresses, pair.Leaf.NotAfter.Sub(pair.Leaf.NotBefore))
	// Output: [localhost] [127.0.0.1] 8761h0m0s
}
