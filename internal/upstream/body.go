package upstream

import (
	"io"
	"time"
)

// BodyGuard guards a client's request body on its way to a backend: it
// enforces a size limit (for bodies without a declared length), an idle
// deadline between reads (nginx's client_body_timeout) and a total
// deadline (which nginx lacks), both through the inbound request's
// SetReadDeadline; it counts what was read, so a retry knows whether the
// body is untouched; and it can read a small body in full first (Buffer)
// so that a retry sends it again (Rewind). It is a Rewinder.
type BodyGuard struct {
	// Src is the client's body.
	Src io.Reader
	// Deadline sets the read deadline of the client's connection (an
	// *http.ResponseController); nil: none.
	Deadline interface{ SetReadDeadline(time.Time) error }
	// Now is the clock.
	Now func() time.Time
	// Limit is the most bytes passed on; one more is an error
	// (*BodyError with Limit).
	Limit int64
	// Gap bounds each read, Total the whole body.
	Gap   time.Duration
	Total time.Time

	n      int64
	replay bool // the body was read into buf and is served from there
	buf    []byte
	off    int
}

// Buffer reads the whole body, of declared length n, now, so it can be
// sent again on a retry.
func (b *BodyGuard) Buffer(n int64) error {
	buf := make([]byte, 0, n)
	for {
		if len(buf) == cap(buf) {
			// Read one more byte to see EOF (or a body longer than
			// declared, which net/http reports as an error).
			var one [1]byte
			n, err := b.Read(one[:])
			if n > 0 {
				return &BodyError{Err: io.ErrUnexpectedEOF}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			continue
		}
		n, err := b.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	b.replay, b.buf = true, buf
	return nil
}

// Kept reports whether the body was read in full by Buffer.
func (b *BodyGuard) Kept() bool { return b.replay }

// Untouched reports whether a retry may send the body: nothing of it has
// been read from the client yet, or it was kept.
func (b *BodyGuard) Untouched() bool { return b.n == 0 || b.replay }

// Rewind starts a kept body over for the next try.
func (b *BodyGuard) Rewind() { b.off = 0 }

func (b *BodyGuard) Read(p []byte) (int, error) {
	if b.replay {
		if b.off >= len(b.buf) {
			return 0, io.EOF
		}
		n := copy(p, b.buf[b.off:])
		b.off += n
		return n, nil
	}
	if b.n > b.Limit {
		return 0, &BodyError{Limit: true}
	}
	d := b.Now().Add(b.Gap)
	if b.Total.Before(d) {
		d = b.Total
	}
	b.setDeadline(d)
	if rem := b.Limit - b.n + 1; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.Src.Read(p)
	b.n += int64(n)
	if b.n > b.Limit {
		// Forward nothing past the limit.
		return n - int(b.n-b.Limit), &BodyError{Limit: true}
	}
	if err == io.EOF {
		// Clear the deadline: the server's background read that watches
		// for the client going away must not time out while the backend
		// thinks.
		b.setDeadline(time.Time{})
	} else if err != nil {
		return n, &BodyError{Err: err}
	}
	return n, err
}

func (b *BodyGuard) setDeadline(t time.Time) {
	if b.Deadline != nil {
		_ = b.Deadline.SetReadDeadline(t)
	}
}
