package sendbound

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recorder is a client's writer that logs the deadlines set, the writes
// and the flushes in order, as "arm", "clear", "write N" and "flush".
type recorder struct {
	h    http.Header
	log  []string
	fail bool // writes fail
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Write(p []byte) (int, error) {
	r.log = append(r.log, "write "+strconv.Itoa(len(p)))
	if r.fail {
		return 0, os.ErrDeadlineExceeded
	}
	return len(p), nil
}
func (r *recorder) FlushError() error { r.log = append(r.log, "flush"); return nil }
func (r *recorder) SetWriteDeadline(d time.Time) error {
	if d.IsZero() {
		r.log = append(r.log, "clear")
	} else {
		r.log = append(r.log, "arm")
	}
	return nil
}

func clock() time.Time { return time.Unix(0, 0) }

// chunky is a source that returns its pieces one Read at a time, the last
// with io.EOF.
type chunky struct{ pieces []string }

func (c *chunky) Read(p []byte) (int, error) {
	if len(c.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.pieces[0])
	c.pieces = c.pieces[1:]
	if len(c.pieces) == 0 {
		return n, io.EOF
	}
	return n, nil
}

func join(log []string) string { return strings.Join(log, ", ") }

// TestCopyArmsEveryWrite: every write is armed first; between writes an
// HTTP/2 stream is disarmed (the wait for the source does not count), an
// HTTP/1 connection is not; the write that ends the body keeps its bound
// for End, which on HTTP/1 flushes and clears. On a connection that keeps
// the bound itself nothing is armed, cleared or flushed: net/http sends
// the tail when the handler returns.
func TestCopyArmsEveryWrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h2, conn bool
		want     string
	}{
		{"HTTP/1", false, false, "arm, write 3, arm, write 2, flush, clear"},
		{"HTTP/2", true, false, "arm, write 3, clear, arm, write 2"},
		{"HTTP/1 bounded by the connection", false, true, "write 3, write 2"},
	} {
		w := &recorder{h: http.Header{}}
		b := Bound{Send: time.Second, Now: clock, H2: tc.h2, Conn: tc.conn}
		n, armed, err := b.Copy(w, &chunky{[]string{"abc", "de"}}, make([]byte, 8), false, -1)
		if err != nil || n != 5 || !armed {
			t.Fatalf("%s: Copy = %d, %v, %v; want 5, armed, nil", tc.name, n, armed, err)
		}
		if err := b.End(http.NewResponseController(w), armed); err != nil {
			t.Fatalf("%s: End: %v", tc.name, err)
		}
		if got := join(w.log); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestCopyClientWrite: a failed write to the client is ErrClientWrite, a
// failed read the source's own error; an unbounded Bound sets nothing.
func TestCopyClientWrite(t *testing.T) {
	w := &recorder{h: http.Header{}, fail: true}
	_, _, err := Bound{}.Copy(w, strings.NewReader("abc"), make([]byte, 8), false, 3)
	if !errors.Is(err, ErrClientWrite) {
		t.Errorf("Copy to a failing client: %v, want ErrClientWrite", err)
	}
	if got := join(w.log); got != "write 3" {
		t.Errorf("unbounded copy: %s, want only the write", got)
	}
	boom := errors.New("backend broke off")
	_, _, err = Bound{}.Copy(&recorder{h: http.Header{}}, io.MultiReader(strings.NewReader("ab"), errReader{boom}), make([]byte, 8), false, -1)
	if err != boom {
		t.Errorf("Copy from a failing source: %v, want the source's error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// readFromRecorder is a recorder whose ReadFrom takes what it is given,
// logging each piece (as net/http's sendfile path would).
type readFromRecorder struct{ recorder }

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, src)
	r.log = append(r.log, "readfrom "+strconv.Itoa(int(n)))
	return n, err
}

// TestSendFileChunks: a file goes out in pieces of at most FileChunk, each
// armed first, and the LimitedReader is used up.
func TestSendFileChunks(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := 2*FileChunk + 100
	if _, err := f.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	w := &readFromRecorder{recorder{h: http.Header{}}}
	lr := &io.LimitedReader{R: f, N: int64(size)}
	var chunk io.LimitedReader
	n, armed, err := Bound{Send: time.Second, Now: clock}.SendFile(http.NewResponseController(w), w, lr, &chunk)
	if err != nil || n != int64(size) || !armed || lr.N != 0 {
		t.Fatalf("SendFile = %d, %v, %v (left %d); want %d, armed, nil, 0 left", n, armed, err, lr.N, size)
	}
	want := "arm, readfrom " + strconv.Itoa(FileChunk) + ", arm, readfrom " + strconv.Itoa(FileChunk) + ", arm, readfrom 100"
	if got := join(w.log); got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// TestCounter counts what reaches the writer underneath.
func TestCounter(t *testing.T) {
	c := &Counter{W: &recorder{h: http.Header{}}}
	_, _ = c.Write([]byte("abc"))
	_, _ = c.Write([]byte("de"))
	if c.N != 5 {
		t.Errorf("N = %d, want 5", c.N)
	}
	if c.Unwrap() != c.W {
		t.Error("Unwrap does not give the writer underneath")
	}
}
