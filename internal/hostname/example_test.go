package hostname_test

import (
	"fmt"

	"github.com/gatehouse-proxy/gatehouse/internal/hostname"
)

func ExampleCanonical() {
	for _, h := range []string{"Secret.Test.:8443", "[0:0::1]:443", "secret..test"} {
		fmt.Println(hostname.Canonical(h))
	}
	// Output:
	// secret.test true
	// ::1 true
	//  false
}
