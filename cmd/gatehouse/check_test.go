package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkResult is one run of `gatehouse check`.
type checkResult struct {
	code           int
	stdout, stderr string
}

// runCheckCmd runs cmdCheck on the config at path and fails the test,
// rather than hanging it, when check has not returned within a generous
// bound (a correct check of these small configs takes milliseconds; one
// blocked on a FIFO never returns).
func runCheckCmd(t *testing.T, path string) checkResult {
	t.Helper()
	done := make(chan checkResult, 1)
	go func() {
		var out, errb bytes.Buffer
		code := cmdCheck([]string{"-config", path}, &out, &errb)
		done <- checkResult{code, out.String(), errb.String()}
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("gatehouse check %s still running after 10s: blocked on a file", path)
		return checkResult{}
	}
}

// writeConfig writes body as gatehouse.toml in dir (mode 0600) and
// returns its path.
func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "gatehouse.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// filesSite is a config with one tls = "files" site; state_dir is in dir.
func filesSite(dir, cert, key, extra string) string {
	return `state_dir = "` + filepath.Join(dir, "state") + `"
` + extra + `
[sites.a]
hosts = ["a.example"]
cert_file = "` + cert + `"
key_file = "` + key + `"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`
}

// fifo makes a named pipe; Cleanup opens it read-write once so that a
// reader stuck in open(2) (the defect) is released.
func fifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	})
	return path
}

func wantCheckError(t *testing.T, r checkResult, parts ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, p := range parts {
		if !strings.Contains(r.stderr, p) {
			t.Errorf("stderr %q\ndoes not contain %q", r.stderr, p)
		}
	}
}

// TestCheckFilesNotRegular: certificate, key and ACME root files that are
// FIFOs or devices make check fail at once, naming the key; they used to
// block it (and every reload) forever, or read /dev/zero without end.
func TestCheckFilesNotRegular(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular.pem")
	if err := os.WriteFile(regular, []byte("not checked this far"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("cert_file FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "fullchain.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, p, regular, "")))
		wantCheckError(t, r, "sites.a.cert_file: "+p+" is a named pipe (FIFO), not a regular file")
	})
	t.Run("key_file FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "privkey.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, p, "")))
		wantCheckError(t, r, "sites.a.key_file: "+p+" is a named pipe (FIFO)")
	})
	t.Run("ca_roots FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "roots.pem"))
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \""+p+"\"\n")))
		wantCheckError(t, r, "acme.ca_roots: "+p+" is a named pipe (FIFO)")
	})
	t.Run("ca_roots /dev/zero", func(t *testing.T) {
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \"/dev/zero\"\n")))
		wantCheckError(t, r, "acme.ca_roots: /dev/zero is a character device")
	})
	t.Run("ca_roots too large", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "roots.pem")
		if err := os.WriteFile(p, make([]byte, 4<<20+1), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCheckCmd(t, writeConfig(t, t.TempDir(), filesSite(dir, regular, regular, "[acme]\nca_roots = \""+p+"\"\n")))
		wantCheckError(t, r, "acme.ca_roots: "+p+" is larger than the limit of 4 MiB")
	})
	t.Run("config FIFO", func(t *testing.T) {
		p := fifo(t, filepath.Join(t.TempDir(), "gatehouse.toml"))
		wantCheckError(t, runCheckCmd(t, p), p+" is a named pipe (FIFO)")
	})
	t.Run("error page FIFO", func(t *testing.T) {
		d := t.TempDir()
		fifo(t, filepath.Join(d, "502.html"))
		body := strings.Replace(filesSite(dir, regular, regular, ""), "[[sites.a.routes]]", "error_pages = { 502 = \"502.html\" }\n[[sites.a.routes]]", 1)
		wantCheckError(t, runCheckCmd(t, writeConfig(t, d, body)), "sites.a.error_pages.502:", "502.html is a named pipe (FIFO)")
	})
}

// selfSignedPair writes a valid certificate for a.example and its key into
// dir, the key with mode keyMode, and returns their paths.
func selfSignedPair(t *testing.T, dir string, keyMode os.FileMode) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "a.example"},
		DNSNames:     []string{"a.example"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, keyMode); err != nil { // past the umask
		t.Fatal(err)
	}
	return cert, key
}

// unwritableDir returns an existing directory in which the current user
// cannot create a file: a 0500 directory, or for root (who ignores mode
// bits) a kernel directory that refuses new files.
func unwritableDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(d, 0o700) })
	for _, c := range []string{d, "/sys/kernel", "/proc/self"} {
		if f, err := os.CreateTemp(c, ".probe-*"); err == nil {
			f.Close()
			os.Remove(f.Name())
			continue
		}
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
	}
	t.Skip("no directory this user cannot write in")
	return ""
}

// TestCheckStateDir: check fails, naming state_dir and its line, when the
// state directory is a file, lies under a file, or is not writable; a
// missing one that can be created is fine and check does not create it.
// It used to say ok to all of these.
func TestCheckStateDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ro := unwritableDir(t)
	site := "\n[sites.a]\nhosts = [\"a.example\"]\ntls = \"off\"\n[[sites.a.routes]]\nupstream = \"app\"\n[upstreams.app]\nservers = [{ address = \"127.0.0.1:8000\" }]\n"
	for name, c := range map[string]struct{ dir, want string }{
		"regular file":  {file, file + " is not a directory"},
		"under a file":  {filepath.Join(file, "sub"), filepath.Join(file, "sub") + " cannot be created: " + file + " is not a directory"},
		"not writable":  {ro, fmt.Sprintf("%s is not writable by uid %d", ro, os.Geteuid())},
		"missing, fine": {filepath.Join(t.TempDir(), "a", "b"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCheckCmd(t, writeConfig(t, t.TempDir(), "# state\nstate_dir = \""+c.dir+"\"\n"+site))
			if c.want == "" {
				if r.code != 0 || r.stderr != "" {
					t.Errorf("exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
				}
				if _, err := os.Stat(c.dir); err == nil {
					t.Errorf("check created %s", c.dir)
				}
				return
			}
			wantCheckError(t, r, "gatehouse.toml:2: state_dir: "+c.want, "1 problem(s); configuration is not valid")
		})
	}
}

// TestRunStateDirUnusable: the daemon refuses to start, with check's
// message, on a state_dir that is a regular file or not writable. It used
// to start with an unwritable one (certificates and bans then failed to
// save) and to report a file only as tlsedge's mkdir error.
func TestRunStateDirUnusable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ro := unwritableDir(t)
	for name, c := range map[string]struct{ dir, want string }{
		"regular file": {file, "state_dir: " + file + " is not a directory"},
		"not writable": {ro, fmt.Sprintf("state_dir: %s is not writable by uid %d", ro, os.Geteuid())},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir(), `state_dir = "`+c.dir+`"
[log]
format = "text"
[listeners.http]
address = "127.0.0.1:0"
[listeners.https]
address = ""
[listeners.admin]
address = "127.0.0.1:0"
[sites.a]
hosts = ["a.example"]
tls = "off"
[[sites.a.routes]]
upstream = "app"
[upstreams.app]
servers = [{ address = "127.0.0.1:8000" }]
`)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr syncBuf
			started := false
			code := serve(ctx, source{path: cfg}, &stderr, func(*daemon) { started = true; cancel() })
			if code != 1 || started {
				t.Errorf("serve: exit %d, started %v; want 1 and not started\n%s", code, started, stderr.String())
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("log %q\ndoes not contain %q", stderr.String(), c.want)
			}
		})
	}
}

// syncBuf is a bytes.Buffer the daemon's goroutines may log to while the
// test reads it.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCheckLoosePermissions: a config writable by others and a private
// key readable by its group or others are warnings (exit 0, counted on
// the ok line); 0600 files give none. check used to say nothing.
func TestCheckLoosePermissions(t *testing.T) {
	for name, c := range map[string]struct {
		cfgMode, keyMode os.FileMode
		want             []string
	}{
		"tight":            {0o600, 0o600, nil},
		"config 0666":      {0o666, 0o600, []string{"the config file is writable by its group and others (mode 0666)"}},
		"config 0620":      {0o620, 0o400, []string{"the config file is writable by its group (mode 0620)"}},
		"key 0644":         {0o644, 0o644, []string{"gatehouse.toml:6: sites.a.key_file:", "privkey.pem is open to its group and others (mode 0644)"}},
		"key 0640":         {0o640, 0o640, []string{"sites.a.key_file:", "is open to its group (mode 0640)"}},
		"config, key 0606": {0o606, 0o604, []string{"writable by others (mode 0606)", "open to others (mode 0604)"}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key := selfSignedPair(t, dir, c.keyMode)
			p := writeConfig(t, dir, filesSite(dir, cert, key, ""))
			if err := os.Chmod(p, c.cfgMode); err != nil {
				t.Fatal(err)
			}
			r := runCheckCmd(t, p)
			if r.code != 0 {
				t.Fatalf("exit %d, want 0 (warnings only)\nstderr: %s", r.code, r.stderr)
			}
			if len(c.want) == 0 {
				if r.stderr != "" || strings.Contains(r.stdout, "warning") {
					t.Errorf("tight permissions: stdout %q stderr %q, want no warning", r.stdout, r.stderr)
				}
				return
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q\ndoes not contain %q", r.stderr, w)
				}
			}
			if !strings.HasPrefix(r.stderr, "warning: ") || !strings.Contains(r.stdout, ": ok:") || !strings.Contains(r.stdout, "warning(s)") {
				t.Errorf("stdout %q stderr %q: want \"warning: \" lines and an ok line counting them", r.stdout, r.stderr)
			}
		})
	}
}

// TestCheckWritableFileRoot: a file route whose directory anyone may
// write to is a warning naming the route's line; a sticky directory
// (like /tmp) or a tight one is not.
func TestCheckWritableFileRoot(t *testing.T) {
	for name, c := range map[string]struct {
		mode os.FileMode
		warn bool
	}{"0777": {0o777, true}, "sticky 1777": {0o777 | os.ModeSticky, false}, "0755": {0o755, false}} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cert, key := selfSignedPair(t, dir, 0o600)
			static := filepath.Join(dir, "static")
			if err := os.Mkdir(static, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(static, c.mode); err != nil {
				t.Fatal(err)
			}
			body := strings.Replace(filesSite(dir, cert, key, ""), "[[sites.a.routes]]",
				"[[sites.a.routes]]\npath = \"/static/\"\nalias = \""+static+"\"\n\n[[sites.a.routes]]", 1)
			r := runCheckCmd(t, writeConfig(t, dir, body))
			if r.code != 0 {
				t.Fatalf("exit %d, want 0\nstderr: %s", r.code, r.stderr)
			}
			got := strings.Contains(r.stderr, "gatehouse.toml:7: sites.a.routes[0]: route /static/ serves "+static+", which anyone on the machine may write to")
			if got != c.warn {
				t.Errorf("warning %v, want %v; stderr %q", got, c.warn, r.stderr)
			}
		})
	}
}
