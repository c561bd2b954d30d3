package reqpath_test

import (
	"fmt"
	"net/http"

	"github.com/gatehouse-proxy/gatehouse/internal/reqpath"
)

func ExampleNormalize() {
	r, _ := http.NewRequest("GET", "http://app.test/", nil)
	r.RequestURI = "/static/x/%2e%2e//admin/a%2Fb?q=1"
	raw, rest := reqpath.Split(r)
	fwd, match, reason := reqpath.Normalize(raw)
	fmt.Printf("forwarded %q, matched %q, refused %q, query %q\n", fwd, match, reason, rest)

	_, _, reason = reqpath.Normalize("/static/../../etc/passwd")
	fmt.Println("refused:", reason)
	// Output:
	// forwarded "/static/admin/a%2Fb", matched "/static/admin/a/b", refused "", query "?q=1"
	// refused: path climbs above the root
}
