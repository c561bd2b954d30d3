package requestid_test

import (
	"fmt"

	"github.com/gatehouse-proxy/gatehouse/internal/requestid"
)

func Example() {
	var b [requestid.Len]byte
	requestid.Generate(&b)
	fmt.Println(len(b), requestid.Valid(string(b[:])))
	fmt.Println(requestid.Valid("123e4567-e89b-12d3-a456-426614174000"), requestid.Valid("x\r\nSet-Cookie: a=b"))
	// Output:
	// 32 true
	// true false
}
