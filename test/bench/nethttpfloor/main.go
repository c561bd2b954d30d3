// Command nethttpfloor is the floor of test/bench/static.sh: Go's net/http
// server serving a directory's files with nothing else, so the comparison
// can say how much of Gatehouse's cost per static file is net/http's
// server (and Go's runtime and crypto/tls) and how much is Gatehouse's
// own (routing, path checks, request IDs, send bounds, the HTTP/1 guard,
// the open-file cache's checks).
//
// It reads every regular file under -root into memory at start and
// answers GET and HEAD for /static/NAME with the headers the other
// servers send (Content-Type, Content-Length, Last-Modified, ETag,
// Cache-Control, X-Content-Type-Options), small files with one Write
// from memory, files over 32 KiB through http.ServeContent on the open
// file (sendfile over plaintext), as Gatehouse does. It has no timeouts
// beyond a header timeout, no limits and no logging: it is a measuring
// stick, not a server to deploy.
//
//	nethttpfloor -root DIR -http 127.0.0.1:PORT [-https 127.0.0.1:PORT -cert F -key F]
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sendfileAbove is the size above which a file is sent from its
// descriptor rather than from memory (Gatehouse's default).
const sendfileAbove = 32 << 10

type file struct {
	path   string
	data   []byte // nil above sendfileAbove
	mod    time.Time
	header http.Header // every header of a 200, values shared by all responses
}

func load(root string) (map[string]*file, error) {
	files := map[string]*file{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f := &file{path: p, mod: fi.ModTime()}
		if fi.Size() <= sendfileAbove {
			if f.data, err = os.ReadFile(p); err != nil {
				return err
			}
		}
		ctype := mime.TypeByExtension(filepath.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		f.header = http.Header{
			"Content-Type":           {ctype},
			"Last-Modified":          {fi.ModTime().UTC().Format(http.TimeFormat)},
			"Etag":                   {fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size())},
			"Cache-Control":          {"public, max-age=31536000, immutable"},
			"X-Content-Type-Options": {"nosniff"},
			"Accept-Ranges":          {"bytes"},
		}
		if f.data != nil {
			f.header["Content-Length"] = []string{strconv.Itoa(len(f.data))}
		}
		files["/static/"+filepath.ToSlash(rel)] = f
		return nil
	})
	return files, err
}

type handler map[string]*file

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h[r.URL.Path]
	if f == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	for k, v := range f.header {
		hdr[k] = v
	}
	if f.data == nil {
		fd, err := os.Open(f.path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer fd.Close()
		http.ServeContent(w, r, "", f.mod, fd)
		return
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(f.data)
	}
}

func main() {
	root := flag.String("root", "", "directory served under /static/")
	httpAddr := flag.String("http", "", "plaintext listen address")
	httpsAddr := flag.String("https", "", "TLS listen address (needs -cert and -key)")
	cert := flag.String("cert", "", "certificate (PEM)")
	key := flag.String("key", "", "private key (PEM)")
	flag.Parse()
	if *root == "" || *httpAddr == "" {
		log.Fatal("nethttpfloor: -root and -http are required")
	}
	files, err := load(*root)
	if err != nil {
		log.Fatalf("nethttpfloor: %v", err)
	}
	newServer := func(addr string) *http.Server {
		return &http.Server{
			Addr:              addr,
			Handler:           handler(files),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       75 * time.Second,
			// HTTP/1.1 only, as the other servers' TLS listeners in
			// static.sh.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		}
	}
	errc := make(chan error, 2)
	go func() { errc <- newServer(*httpAddr).ListenAndServe() }()
	if *httpsAddr != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatalf("nethttpfloor: %v", err)
		}
		s := newServer(*httpsAddr)
		s.TLSConfig = &tls.Config{
			Certificates:           []tls.Certificate{pair},
			MinVersion:             tls.VersionTLS12,
			CurvePreferences:       []tls.CurveID{tls.X25519},
			SessionTicketsDisabled: true,
		}
		go func() { errc <- s.ListenAndServeTLS("", "") }()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("nethttpfloor: %s", strings.TrimPrefix(err.Error(), "listen tcp "))
	}
}
