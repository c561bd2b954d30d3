// Package accesslog writes Gatehouse's access logs: nginx's "combined"
// format or one JSON object per line, to stdout, stderr or files that are
// opened once per path ([Logs.Open]), shared across configuration reloads
// and reopened together after log rotation ([Logs.Reopen]). Values that
// come from the client are escaped, so no request can forge a line.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// Logs owns the access log files of the process. Files are opened once
// per path and shared by every configuration generation, so a reload does
// not reopen them, and Reopen (SIGUSR1, after logrotate moved them) swaps
// every file for a fresh one. Its methods are safe for concurrent use.
type Logs struct {
	mu    sync.Mutex
	files map[string]*logFile
	// Stdout is where "stdout" logs (the default) go, Stderr where
	// "stderr" logs go; tests replace them.
	Stdout, Stderr io.Writer
}

// New returns an empty set of access logs writing "stdout" logs to
// os.Stdout and "stderr" logs to os.Stderr.
func New() *Logs {
	return &Logs{files: map[string]*logFile{}, Stdout: os.Stdout, Stderr: os.Stderr}
}

type logFile struct {
	mu   sync.Mutex
	path string
	w    io.Writer
	f    *os.File // nil for stdout and stderr
}

func (l *logFile) write(b []byte) {
	l.mu.Lock()
	_, _ = l.w.Write(b)
	l.mu.Unlock()
}

// Log is one site's log: a file and a format. Write is safe for
// concurrent use.
type Log struct {
	file     *logFile
	combined bool
}

// Open returns the log at path ("stdout", "stderr" or a file, opened for
// appending and created if missing) in format ("combined": nginx's
// combined format; anything else: one JSON object per line). A path
// already open is shared, whatever its format.
func (a *Logs) Open(path, format string) (*Log, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lf := a.files[path]
	if lf == nil {
		lf = &logFile{path: path}
		switch path {
		case "stdout":
			lf.w = a.Stdout
		case "stderr":
			lf.w = a.Stderr
		default:
			f, err := openLogFile(path)
			if err != nil {
				return nil, err
			}
			lf.f, lf.w = f, f
		}
		a.files[path] = lf
	}
	return &Log{file: lf, combined: format == "combined"}, nil
}

// openLogFile opens an access log for appending. It opens non-blocking: a
// FIFO with no reader would otherwise block the open, and with it the
// reload that asked for it, forever (opening it non-blocking fails at once
// with ENXIO instead). A regular file is unaffected; a FIFO or terminal
// that has a reader is written through Go's poller.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK, 0o640)
	if errors.Is(err, syscall.ENXIO) {
		return nil, fmt.Errorf("%s: a FIFO that no process reads: %w", path, err)
	}
	return f, err
}

// Reopen reopens every file log (for logrotate). Errors are collected; a
// log that cannot be reopened keeps writing to its old file.
func (a *Logs) Reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var firstErr error
	for _, lf := range a.files {
		if lf.f == nil {
			continue
		}
		f, err := openLogFile(lf.path)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("reopen access log %s: %w", lf.path, err)
			}
			continue
		}
		lf.mu.Lock()
		old := lf.f
		lf.f, lf.w = f, f
		lf.mu.Unlock()
		_ = old.Close()
	}
	return firstErr
}

// Close closes every file log.
func (a *Logs) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, lf := range a.files {
		if lf.f != nil {
			_ = lf.f.Close()
		}
	}
	a.files = map[string]*logFile{}
}

// Entry is what one access log line says.
type Entry struct {
	Start     time.Time     // when the request arrived
	Duration  time.Duration // how long it took to answer
	Client    string        // the client's address (after trusted proxies)
	Method    string
	Host      string // the Host header as sent
	URI       string // the request target as sent
	Proto     string // "HTTP/1.1", "HTTP/2.0", ...
	Status    int
	Bytes     int64  // response body bytes sent
	Referer   string // "" when absent
	UserAgent string // "" when absent
	Upstream  string // backend address, "" when none was reached
	Site      string
	Route     string // the route's path prefix, "" when none matched
	TLS       bool
	RequestID string // "" when request IDs are off

	// A WebSocket tunnel's line, written when it closes: Duration is its
	// lifetime, Bytes what the backend sent the client, WSBytesIn what
	// the client sent the backend (frame headers included). JSON lines
	// carry the three fields below only when WS is set.
	WS        bool
	WSBytesIn int64
	WSCode    uint16 // close code (1006 when no Close frame was seen)
	WSCause   string // who or what ended it (wstunnel's Cause)
}

var logBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Write writes e as one line.
func (l *Log) Write(e *Entry) {
	bp := logBufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if l.combined {
		b = appendCombined(b, e)
	} else {
		b = appendJSON(b, e)
	}
	l.file.write(b)
	*bp = b
	logBufPool.Put(bp)
}

// appendCombined writes nginx's "combined" format.
func appendCombined(b []byte, e *Entry) []byte {
	b = append(b, e.Client...)
	b = append(b, " - - ["...)
	b = e.Start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, e.Method)
	b = append(b, ' ')
	b = appendEscaped(b, e.URI)
	b = append(b, ' ')
	b = append(b, e.Proto...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " \""...)
	if e.Referer == "" {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, e.Referer)
	}
	b = append(b, "\" \""...)
	if e.UserAgent == "" {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, e.UserAgent)
	}
	b = append(b, "\"\n"...)
	return b
}

// appendEscaped escapes quotes, backslashes and control bytes as nginx
// does (\xHH), so a request cannot forge log lines.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '"' || c == '\\' || c < 0x20 || c >= 0x7f {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

func appendJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"time":"`...)
	b = e.Start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.Host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, e.URI)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, e.Site)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.Route)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, e.Upstream)
	b = append(b, `,"tls":`...)
	b = strconv.AppendBool(b, e.TLS)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, e.Referer)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, e.UserAgent)
	if e.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, e.RequestID)
	}
	if e.WS {
		b = append(b, `,"ws_bytes_in":`...)
		b = strconv.AppendInt(b, e.WSBytesIn, 10)
		b = append(b, `,"ws_close_code":`...)
		b = strconv.AppendUint(b, uint64(e.WSCode), 10)
		b = append(b, `,"ws_close_cause":`...)
		b = appendJSONString(b, e.WSCause)
	}
	b = append(b, "}\n"...)
	return b
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
