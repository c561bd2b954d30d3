package staticfile_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-proxy/gatehouse/staticfile"
)

// A route serving Django's collected static files (nginx
// `location /static/ { alias /srv/app/static/; }`).
func Example() {
	root, _ := os.MkdirTemp("", "static")
	defer os.RemoveAll(root)
	// What collectstatic with ManifestStaticFilesStorage and a
	// compress step leave behind.
	os.WriteFile(filepath.Join(root, "app.3f2a1b9c4d5e.css"), []byte("body { color: teal }"), 0o644)
	os.WriteFile(filepath.Join(root, "app.3f2a1b9c4d5e.css.br"), []byte("(brotli bytes)"), 0o644)

	files, err := staticfile.New(staticfile.Options{Root: root})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer files.Close()
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", files))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, ae := range []string{"identity", "gzip, deflate, br, zstd"} {
		req, _ := http.NewRequest("GET", srv.URL+"/static/app.3f2a1b9c4d5e.css", nil)
		req.Header.Set("Accept-Encoding", ae)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%d %q Content-Encoding=%q\n", res.StatusCode, body, res.Header.Get("Content-Encoding"))
		fmt.Println(" ", res.Header.Get("Content-Type"), "|", res.Header.Get("Cache-Control"), "|", res.Header.Get("Vary"))
	}
	res, _ := http.Get(srv.URL + "/static/.env")
	res.Body.Close()
	fmt.Println(res.StatusCode)
	// Output:
	// 200 "body { color: teal }" Content-Encoding=""
	//   text/css; charset=utf-8 | public, max-age=31536000, immutable | Accept-Encoding
	// 200 "(brotli bytes)" Content-Encoding="br"
	//   text/css; charset=utf-8 | public, max-age=31536000, immutable | Accept-Encoding
	// 404
}

// The proxy's side of a protected download: the backend (a Django view
// that checked permissions) answers with X-Accel-Redirect, and the file
// comes from an internal Server that clients cannot reach directly.
func ExampleServer_ServeRedirect() {
	root, _ := os.MkdirTemp("", "protected")
	defer os.RemoveAll(root)
	os.WriteFile(filepath.Join(root, "report.pdf"), []byte("%PDF-1.7 ..."), 0o644)
	protected, err := staticfile.New(staticfile.Options{Root: root, Internal: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer protected.Close()

	// The backend's response, as the proxy's transport returns it.
	backend := http.Header{}
	backend.Set("Content-Type", "") // Django: HttpResponse(content_type="")
	backend.Set("Content-Disposition", `attachment; filename="report.pdf"`)
	backend.Set("X-Accel-Redirect", "/protected/report.pdf")
	backend.Set("X-Accel-Buffering", "no")

	// In the proxy's response path:
	target, ok, err := staticfile.RedirectTarget(backend)
	staticfile.StripAccelHeaders(backend)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/invoices/42/download", nil)
	if ok && err == nil && strings.HasPrefix(target, "/protected/") {
		protected.ServeRedirect(rec, req, strings.TrimPrefix(target, "/protected/"), backend)
	}
	fmt.Println(rec.Code, rec.Body.String())
	fmt.Println(rec.Header().Get("Content-Type"), "|", rec.Header().Get("Content-Disposition"), "|", rec.Header().Get("Cache-Control"))
	fmt.Printf("X-Accel-Redirect: %q\n", rec.Header().Get("X-Accel-Redirect"))

	// A client asking for the internal path itself gets 404.
	rec = httptest.NewRecorder()
	protected.ServeHTTP(rec, httptest.NewRequest("GET", "/report.pdf", nil))
	fmt.Println(rec.Code)
	// Output:
	// 200 %PDF-1.7 ...
	// application/pdf | attachment; filename="report.pdf" | private, no-cache
	// X-Accel-Redirect: ""
	// 404
}
