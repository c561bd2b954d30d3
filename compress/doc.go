// Package compress compresses HTTP responses (gzip, zstd, brotli) for
// Gatehouse's proxied and file routes, and precompresses static files at
// deploy time. It knows nothing of routes, config or the proxy: the proxy
// builds one [Compressor] per distinct set of [Options] and wraps each
// response that the route allows to be compressed:
//
//	cw := comp.Wrap(w, r)
//	defer cw.Abort() // on a panic (ErrAbortHandler): no valid trailer, encoder released
//	serve(cw, r)     // WriteHeader, Write, Flush as usual
//	err := cw.Close()
//
// or, around a handler, comp.Handler(h).
//
// # Negotiation
//
// [Negotiate] reads Accept-Encoding with q-values as RFC 9110 §12.5.3
// says, among the codings offered in the server's order of preference;
// that order decides between codings a client weighs equally, which is
// what every browser does. The default order (gzip, zstd, brotli) and
// levels were chosen by measuring CPU per KiB and ratio
// (docs/compression.md): at the levels cheap enough for dynamic
// responses, klauspost/compress's gzip matches zstd and beats brotli per
// CPU second on typical Django bodies.
//
// # What is compressed
//
// The [Writer] decides when the status is written; the rules are listed
// on [Writer]. In short: compressible types only ([DefaultTypes]: text,
// JSON, JavaScript, XML, SVG, WebAssembly, uncompressed fonts; never
// images, video, WOFF2 or archives), bodies of at least MinLength, and
// never a response that is already encoded, partial (206, Content-Range),
// bodiless (HEAD, 204, 304), or marked Cache-Control: no-transform.
//
// # Streams
//
// Server-sent events (text/event-stream) are compressed, and every Flush
// by the handler goes through the encoder (a sync flush, so everything
// written so far can be decoded) and then to the connection, so each
// event reaches the client when it is sent. A per-event flush costs
// ratio (a flush marker per event), but events of one stream repeat
// their field names and the encoder keeps the stream's history: 89-byte
// JSON events still shrink 4-6x (docs/compression.md). Streams that
// send Cache-Control: no-transform are left alone. A route that
// wants its events uncompressed leaves text/event-stream out of Types.
//
// Hijack (a WebSocket upgrade) bypasses compression; Unwrap gives
// http.ResponseController the wrapped writer.
//
// # Memory
//
// A stateful encoder holds 1-3.5 MiB (its window and match tables), and
// a streamed response holds its encoder until it ends. Encoders are
// pooled per Compressor, and at most MaxEncoders are in use at once (an
// EncoderLimit shared by every Compressor of the process, across routes
// and reloads);
// past the cap a response gets stateless gzip (no history kept between
// writes, a few KiB) when the client takes gzip, or goes out uncompressed
// (always for streams: stateless gzip does not shrink small events).
// So 10,000 open event streams cost at most MaxEncoders encoders, not
// 10,000.
//
// # BREACH
//
// Compressing a response that contains both a secret (a CSRF token, a
// session-bound value) and text an attacker can inject (a reflected query
// parameter) over TLS lets an attacker who can make the victim's browser
// send many requests, and can watch the encrypted lengths, guess the
// secret byte by byte: a guess that matches the secret compresses better
// (BREACH, 2013). TLS does not hide lengths. Compression cannot be made
// safe in general at this layer: the proxy does not know which bytes are
// secret. Django masks its CSRF token with a fresh random pad on every
// response (since 1.10), so the token never repeats in compressed output
// and the attack on it fails; other secrets a view renders next to
// reflected input are not protected that way. Routes that render such
// pages (account settings, pages showing API keys) should have
// compression turned off (`compress = false` on the route). Gatehouse never
// decompresses requests, so there is no decompression bomb on the way
// in; the precompressed files it serves are written by the operator.
package compress
