package upstream

import (
	"bufio"
	"net"
	"net/http"
)

// Upgrade sends an upgrade request (a WebSocket handshake: protocol
// "websocket") on conn, which the caller dialled and owns, and reads the
// answer. The head is written by WriteHead from req's Header, plus Upgrade
// and Connection: upgrade, which a Forward header drops as hop-by-hop.
// The answer is read with http.ReadResponse, not Client's parser: after a
// 101 the connection is the caller's tunnel, never pooled, and nothing of
// HTTP's framing applies to it; a refusal is passed on and the connection
// closed. The returned reader holds what the backend sent after the head.
// The caller sets conn's deadlines; req's timeouts and Body are not used.
func Upgrade(conn net.Conn, req *Request, protocol string) (*http.Response, *bufio.Reader, error) {
	bw := bufio.NewWriterSize(conn, 2048)
	WriteHead(bw, req.Method, req.Target, req.Host, req.Header)
	bw.WriteString("Upgrade: ")
	bw.WriteString(protocol)
	bw.WriteString("\r\nConnection: Upgrade\r\n\r\n")
	if err := bw.Flush(); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: req.Method})
	if err != nil {
		return nil, nil, err
	}
	return resp, br, nil
}
