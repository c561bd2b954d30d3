package errorpage_test

import (
	"os"

	"github.com/gatehouse-proxy/gatehouse/internal/errorpage"
)

func ExampleFromFile() {
	p := errorpage.FromFile([]byte("<p>Sorry. Quote request ID $request_id to support.</p>\n"))
	p.Write(os.Stdout, "3f2a9c")
	p.Write(os.Stdout, "")
	// Output:
	// <p>Sorry. Quote request ID 3f2a9c to support.</p>
	// <p>Sorry. Quote request ID  to support.</p>
}
