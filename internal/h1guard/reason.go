package h1guard

// ReasonHeadTooLarge is the reason Rejected gives for a head longer than
// Options.MaxHeadBytes: a request too large rather than a malformed one
// (answered 431, not 400).
const ReasonHeadTooLarge = "head too large"

// reasonCode identifies why a request was rejected; 0 means not rejected.
type reasonCode uint32

const (
	rHeadTooLarge reasonCode = iota + 1
	rRequestLine
	rVersion
	rConnect
	rTarget
	rNUL
	rBareCR
	rCTL
	rObsFold
	rSpaceBeforeColon
	rFieldLine
	rMultipleTE
	rBadTE
	rTEWithCL
	rTEOnHTTP10
	rBadCL
	rConflictCL
	rMultipleHost
	rNoHost
	rChunkSize
	rChunkTooLarge
	rChunkLineTooLong
	rChunkExt
	rChunkCRLF
	rChunkOverhead
	rTrailer
	rTrailerTooLarge
)

// String returns the reason as reported by Conn.Rejected. The strings are
// stable and few, so they can serve as metric label values.
func (r reasonCode) String() string {
	switch r {
	case rHeadTooLarge:
		return ReasonHeadTooLarge
	case rRequestLine:
		return "invalid request line"
	case rVersion:
		return "unsupported HTTP version"
	case rConnect:
		return "CONNECT not allowed"
	case rTarget:
		return "invalid request target"
	case rNUL:
		return "NUL in head"
	case rBareCR:
		return "bare CR in head"
	case rCTL:
		return "control character in head"
	case rObsFold:
		return "obs-fold in header"
	case rSpaceBeforeColon:
		return "whitespace before colon"
	case rFieldLine:
		return "malformed header line"
	case rMultipleTE:
		return "multiple Transfer-Encoding"
	case rBadTE:
		return "unsupported Transfer-Encoding"
	case rTEWithCL:
		return "Transfer-Encoding with Content-Length"
	case rTEOnHTTP10:
		return "Transfer-Encoding on HTTP/1.0"
	case rBadCL:
		return "invalid Content-Length"
	case rConflictCL:
		return "conflicting Content-Length"
	case rMultipleHost:
		return "multiple Host"
	case rNoHost:
		return "missing Host"
	case rChunkSize:
		return "invalid chunk size line"
	case rChunkTooLarge:
		return "chunk size too large"
	case rChunkLineTooLong:
		return "chunk line too long"
	case rChunkExt:
		return "invalid chunk extension"
	case rChunkCRLF:
		return "missing CRLF after chunk data"
	case rChunkOverhead:
		return "too much chunk overhead"
	case rTrailer:
		return "invalid trailer"
	case rTrailerTooLarge:
		return "trailer too large"
	}
	return "unknown"
}
