// Package upstream is Gatehouse's HTTP/1.1 client to its backends, in two
// interchangeable implementations behind one request type:
//
//   - [Client], written for the proxy's hot path: the request runs on the
//     caller's goroutine from start to end, the request head is written
//     straight from the caller's header logic into the connection buffer
//     (no header map is built), and the response is parsed strictly on a
//     pooled bufio.Reader. Anything whose framing could be read two ways
//     is refused rather than guessed.
//   - [NetHTTP], the same requests carried by net/http's http.Transport,
//     for operators who prefer the standard library's client and as the
//     reference the first is tested against (a differential fuzz test
//     feeds both parsers the same backend bytes).
//
// Both send a [Request] with Do, and both are http.RoundTrippers too
// (RoundTrip adapts an *http.Request), so an http.Client can use them, as
// the active health checks do.
//
// # What both guarantee
//
//   - The header timeout bounds the wait for the final response head,
//     across any number of 1xx interim responses, which are handed to
//     Request.Interim (101 excepted: it answers no request this package
//     sends).
//   - Cancelling the request's context ends the exchange promptly,
//     whether it is waiting for the head or blocked reading the body: the
//     connection is closed, not reused.
//   - A response body that stalls longer than Request.BodyTimeout between
//     two reads ends with [ErrBodyTimeout].
//   - A connection is reused only when the response ended exactly at its
//     declared end: bytes the backend sent after it (after a
//     Content-Length body, a 204, a 304 or the head of a HEAD answer) are
//     never read as the answer to the next request; the connection is
//     closed and, for Client, counted (Options.OnUnsolicited).
//
// # Lifetimes
//
// A Client's idle connections are kept per backend address, most recently
// used first, and closed by Run (a reaper the caller runs on its own
// goroutine) once idle longer than Options.IdleTimeout or closed by the
// backend. A response returned by Client.Do lives in its connection: it
// is valid until its Body is closed, which returns the connection to the
// pool.
package upstream
