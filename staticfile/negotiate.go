package staticfile

import "github.com/gatehouse-proxy/gatehouse/internal/coding"

// negotiate picks the representation to send from the Accept-Encoding
// header values: it returns the index in encs of the coding to serve, or
// -1 for the file itself (identity). avail[i] says whether the sibling for
// encs[i] exists. The rules are RFC 9110 §12.5.3's as coding.Negotiate
// reads them (the compressor uses the same function, so a precompressed
// sibling and a response compressed on the fly are chosen alike): the
// acceptable available coding with the highest q wins, ties going to the
// server's order (encs); identity wins only over a lower q. With no
// acceptable coding the file itself is sent, even when the header
// excludes identity: RFC 9110 allows that instead of 406, and a file is
// better than an error page. It allocates nothing.
func negotiate(values []string, encs []encoding, avail *[maxEncodings]bool) int {
	var offers [maxEncodings]coding.Coding
	var index [maxEncodings]int
	n := 0
	for i := range encs {
		if avail[i] {
			offers[n], index[n] = encs[i].coding, i
			n++
		}
	}
	if n == 0 {
		return -1
	}
	c, _ := coding.Negotiate(values, offers[:n])
	for j := range n {
		if offers[j] == c && c != coding.Identity {
			return index[j]
		}
	}
	return -1
}
