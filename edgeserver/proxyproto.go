package edgeserver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// ProxyHeader is a parsed PROXY protocol header (HAProxy's
// proxy-protocol.txt, versions 1 and 2).
type ProxyHeader struct {
	// Version is 1 (text) or 2 (binary).
	Version int
	// Local is true when the header carries no client address: a v2 LOCAL
	// command (the balancer's own health check), a v1 "UNKNOWN" line, or a
	// v2 Unix-socket address. The connection's own addresses apply then,
	// as the specification requires.
	Local bool
	// Source and Destination are the client's and the balancer's addresses
	// as the balancer saw them, IPv4-mapped addresses unmapped; valid only
	// when !Local.
	Source, Destination netip.AddrPort
}

// ErrNotProxy is wrapped by the error of a PROXY listener's handshake when
// the input is not a PROXY protocol header at all, for example a TLS
// ClientHello or an HTTP request sent straight to the listener.
var ErrNotProxy = errors.New("not a PROXY protocol header")

const (
	// proxyV1Max is the longest v1 line, CRLF included.
	proxyV1Max = 107
	// proxyReadBuf is the size of the buffer a header is read through: a
	// whole v1 line fits, and what the first read brings past a header
	// (the start of a TLS ClientHello, say) is kept for the connection.
	// The parser reads the body of a long v2 header straight into the
	// header it allocates, so the buffer does not bound v2 headers:
	// go-proxyproto's MaxV2HeaderSize (4 KiB) does.
	proxyReadBuf = 256
	// notProxyQuote bounds the bytes quoted in an ErrNotProxy error.
	notProxyQuote = 16
)

// readProxyHeader reads one PROXY protocol header from r and returns it
// with the bytes it read from r past the header (nil when none), which
// belong to the client's stream. It reads nothing more from r once the
// header is complete. The parsing is go-proxyproto's (proxyproto.Read);
// this function only waits for a whole v1 line (see awaitV1Line) and
// turns the result into a ProxyHeader. Anything the parser refuses is
// refused: there is no fallback and no guessing.
func readProxyHeader(r io.Reader) (ProxyHeader, []byte, error) {
	br := bufio.NewReaderSize(r, proxyReadBuf)
	if err := awaitV1Line(br); err != nil {
		if br.Buffered() == 0 {
			return ProxyHeader{}, nil, fmt.Errorf("edgeserver: no PROXY header: %w", err)
		}
		return ProxyHeader{}, nil, fmt.Errorf("edgeserver: PROXY header incomplete after %d bytes: %w", br.Buffered(), err)
	}
	ph, err := proxyproto.Read(br)
	if errors.Is(err, proxyproto.ErrNoProxyProtocol) {
		// What was read is quoted: the first bytes of a TLS ClientHello
		// or an HTTP request line show who sent them.
		b, _ := br.Peek(min(br.Buffered(), notProxyQuote))
		return ProxyHeader{}, nil, fmt.Errorf("edgeserver: %w: starts %q", ErrNotProxy, b)
	}
	if err != nil {
		return ProxyHeader{}, nil, fmt.Errorf("edgeserver: PROXY header: %w", err)
	}
	h, err := proxyHeaderOf(ph)
	if err != nil {
		return ProxyHeader{}, nil, err
	}
	var leftover []byte
	if n := br.Buffered(); n > 0 {
		leftover, _ = br.Peek(n) // br is dropped: its buffer is ours now
	}
	return h, leftover, nil
}

// awaitV1Line reads into br until it holds the end of a v1 header line
// (an LF), or 107 bytes (the longest line), or bytes that cannot start a
// v1 header. go-proxyproto refuses a v1 header that one read of the
// socket did not bring whole, since it cannot tell a slow sender from an
// attacker; the specification recommends tolerating partial headers, and
// the caller's read deadline and bound on pending headers deal with slow
// senders. A v2 header needs no such wait: the parser reads it to its
// declared length. Whether the bytes form a valid header is left to the
// parser.
func awaitV1Line(br *bufio.Reader) error {
	for {
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return err // no byte came; a partial Peek keeps what did
		}
		b, _ := br.Peek(br.Buffered())
		if !bytes.HasPrefix(b, proxyproto.SIGV1[:min(len(b), len(proxyproto.SIGV1))]) ||
			bytes.IndexByte(b[:min(len(b), proxyV1Max)], '\n') >= 0 || len(b) >= proxyV1Max {
			return nil
		}
	}
}

// proxyHeaderOf converts a header go-proxyproto parsed.
func proxyHeaderOf(ph *proxyproto.Header) (ProxyHeader, error) {
	h := ProxyHeader{Version: int(ph.Version), Local: ph.Command.IsLocal()}
	if h.Local || ph.TransportProtocol.IsUnix() {
		// LOCAL or v1 UNKNOWN: no address. AF_UNIX: no IP address to key,
		// cap or ban by; the balancer's connection stands for the client.
		h.Local = true
		return h, nil
	}
	h.Source, h.Destination = addrPortOf(ph.SourceAddr), addrPortOf(ph.DestinationAddr)
	if !h.Source.IsValid() || !h.Destination.IsValid() {
		// The parser returns IP addresses for every family it accepts with
		// the PROXY command; refuse rather than guess if that ever changes.
		return ProxyHeader{}, fmt.Errorf("edgeserver: PROXY header: family %#02x without IP addresses", byte(ph.TransportProtocol))
	}
	return h, nil
}
