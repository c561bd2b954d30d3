// Package staticfile serves files from a directory: Django's collected
// static files and uploaded media (nginx `location /static/ { alias ...; }`),
// and the protected files a backend hands over with X-Accel-Redirect
// (nginx `internal` locations).
//
// It imports only the standard library; the proxy builds one [Server] per
// file route from [Options] and calls it.
//
// # Calls the proxy makes
//
// A client's request on a file route: [Server.Serve] with the request path
// minus the route prefix (or ServeHTTP behind [http.StripPrefix]).
//
// A backend response: [RedirectTarget] reads X-Accel-Redirect; the proxy
// finds the internal route whose prefix the target starts with (502 and a
// log line when there is none, when the header is malformed, or when the
// upstream may not use it), drains and closes the backend body, and calls
// [Server.ServeRedirect] with the client's request, the target minus the
// prefix, and the backend's header, from which Content-Type,
// Content-Disposition, Content-Language, Cache-Control, Expires and
// Set-Cookie are kept. [StripAccelHeaders] removes every X-Accel-* and
// X-Sendfile header from every backend response (after X-Accel-Buffering
// has been read), so none reaches a client; [IsAccelHeader] tells the
// header rules which names are reserved. A route with Options.Internal
// answers clients' own requests with 404.
//
// The header values the server sets are slices shared between
// responses: code after it (header rules, compression) may replace or
// delete a header, or Add to it, but must not modify a value's elements in
// place.
//
// [Options.ErrorPage] writes every status the server produces itself (404,
// 405, 500, 503), so a 404 is the site's error page, or a hand-over to an
// upstream (nginx try_files ... @backend) if the proxy chooses so.
//
// # What is served
//
// Names are slash-separated and relative to the root. The package does not
// rely on the caller's normalisation: a name with an empty, "." or ".."
// segment, a NUL byte or a backslash is 404, as is any segment starting
// with a dot (.git, .env, .htpasswd) unless Options.AllowDotFiles. The
// root is opened with [os.OpenRoot]: relative symbolic links are followed
// while they stay inside the root; links that lead out of it, and all
// absolute links, are refused (404). So `collectstatic --link` trees,
// whose absolute links point into the apps' source directories, must be
// collected as copies. Only regular files are sent:
// files are opened with O_NONBLOCK, so a FIFO cannot block the request,
// and anything that is not a regular file (FIFO, socket, device) is 404.
// A directory is 404 (there are no listings) unless Options.Index names a
// file that exists in it; then "dir/" serves it and "dir" is redirected
// (301) to "./dir/". GET and HEAD only (405 otherwise).
//
// # Headers
//
// Conditional and Range requests, and files sent from a descriptor, are
// answered by [http.ServeContent], which answers Range (206, 416),
// If-Range, If-None-Match and If-Modified-Since (304), If-Match and
// If-Unmodified-Since (412) and HEAD. A plain GET or HEAD (none of those
// header fields) of a small file the open-file cache holds in memory is
// answered directly, with the same status, headers and body that
// ServeContent would give, but with header values computed once per
// cache entry and the content in one Write: no allocation, no system
// call but the response's write. Each response carries:
//
//   - Content-Type from a built-in table of the web's types (text types
//     in UTF-8), then [mime.TypeByExtension], then
//     application/octet-stream; never sniffed from the content.
//   - X-Content-Type-Options: nosniff.
//   - ETag: strong, "<mtime in ns, hex>-<size, hex>", with "-br", "-zstd"
//     or "-gzip" appended for a precompressed variant; no inode, so that
//     two machines serving the same deploy agree.
//   - Last-Modified.
//   - Cache-Control: Options.ImmutableCacheControl (one year, immutable)
//     when the name carries a content hash ([IsHashed]: Django's
//     ManifestStaticFilesStorage, webpack), else Options.CacheControl
//     (a minute by default; private, no-cache on internal routes). A
//     backend's Cache-Control on an X-Accel-Redirect replaces it.
//   - Vary: Accept-Encoding when the file has a precompressed sibling.
//
// # Precompressed siblings
//
// Beside name, name.br, name.zst and name.gz (as written by whitenoise,
// django-compressor or a compress step) are sent, with Content-Encoding
// and the original's Content-Type, to clients whose Accept-Encoding
// accepts them: q-values count, q=0 excludes, x-gzip is gzip, "*" and
// "identity" follow RFC 9110, ties go to br, then zstd, then gzip. A
// sibling older than its file is ignored (it was written for an older
// version). A Range request always gets the file itself, never a variant:
// RFC 9110 lets a range apply to the encoded bytes, but a client that
// resumes with a different Accept-Encoding would stitch together bytes
// of two encodings; the variants' ETags differ from the file's, so an
// If-Range from a variant response correctly yields the whole file.
//
// # Open-file cache
//
// Like nginx's open_file_cache, a bounded LRU (Options.CacheEntries)
// keeps, per name, the file's metadata, the response headers computed
// once, the state of its siblings and either its content (files up to
// SmallFileBytes, within Options.MemoryBytes) or up to two open
// descriptors. An entry is trusted for Options.CacheValid (1 s), then
// checked with stat(2): a new size, modification time or inode (a deploy
// renaming a new file into place) rebuilds it, so a change is served,
// with a new ETag, from the first request after CacheValid on (requests
// that arrive while that one's stat is under way still get the entry as
// it was, as in nginx). Entries unused for
// Options.CacheInactive are dropped. A removed file is served from the
// cache until the next check, as in nginx.
//
// A descriptor is lent to one request at a time, never shared, because
// ServeContent and sendfile(2) move the file offset; requests beyond the
// idle ones open their own. Retiring an entry closes only the idle
// descriptors; a lent one is closed when its request gives it back, so no
// request ever reads a closed descriptor. A descriptor opened for an
// entry must still be the file the entry describes (same inode, size and
// time), else the entry is dropped and the name looked up afresh, so
// metadata and bytes always belong together.
//
// # Copying
//
// Small files are written from memory with one write. Larger ones reach
// net/http's response.ReadFrom as the *os.File itself, which over
// plaintext HTTP/1 hands it to the TCP conn's ReadFrom and so to
// sendfile(2) (after the first 512 bytes, which net/http writes itself).
// That needs every net.Conn wrapper between net/http and the *net.TCPConn
// to pass ReadFrom on. Over TLS (and HTTP/2) the bytes are read into
// user space and written through the TLS record layer, which must encrypt
// them; kernel TLS is not used.
//
// # Reloads
//
// [Servers] shares one Server among every configuration generation that
// asks for the same options on the same directory, so a reload keeps the
// warm open-file cache, and closes a server when its last user gives it
// back; a directory replaced under the same path gets a new server.
package staticfile
