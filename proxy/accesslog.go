package proxy

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

// AccessLogs owns the access log files of the process. Files are opened
// once per path and shared by every Runtime generation, so a reload does
// not reopen them, and Reopen (SIGUSR1, after logrotate moved them) swaps
// every file for a fresh one.
type AccessLogs struct {
	mu    sync.Mutex
	files map[string]*logFile
	// Stdout is where "stdout" logs (the default) go, Stderr where
	// "stderr" logs go; tests replace them.
	Stdout, Stderr io.Writer
}

// NewAccessLogs returns an empty set of access logs writing "stdout" logs
// to os.Stdout and "stderr" logs to os.Stderr.
func NewAccessLogs() *AccessLogs {
	return &AccessLogs{files: map[string]*logFile{}, Stdout: os.Stdout, Stderr: os.Stderr}
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

// accessLog is one site's log: a file and a format.
type accessLog struct {
	file     *logFile
	combined bool
}

func (a *AccessLogs) open(path, format string) (*accessLog, error) {
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
	return &accessLog{file: lf, combined: format == "combined"}, nil
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
func (a *AccessLogs) Reopen() error {
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
func (a *AccessLogs) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, lf := range a.files {
		if lf.f != nil {
			_ = lf.f.Close()
		}
	}
	a.files = map[string]*logFile{}
}

// logEntry is what one access log line says.
type logEntry struct {
	start     time.Time
	duration  time.Duration
	client    string
	method    string
	host      string
	uri       string
	proto     string
	status    int
	bytes     int64
	referer   string
	userAgent string
	upstream  string // backend address, "" when none was reached
	site      string
	route     string
	tls       bool
	requestID string // "" when request IDs are off

	// A WebSocket tunnel's line, written when it closes: duration is its
	// lifetime, bytes what the backend sent the client, wsBytesIn what
	// the client sent the backend (frame headers included).
	ws        bool
	wsBytesIn int64
	wsCode    uint16 // close code (1006 when no Close frame was seen)
	wsCause   string // who or what ended it (wstunnel's Cause)
}

var logBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (l *accessLog) write(e *logEntry) {
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
func appendCombined(b []byte, e *logEntry) []byte {
	b = append(b, e.client...)
	b = append(b, " - - ["...)
	b = e.start.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, e.method)
	b = append(b, ' ')
	b = appendEscaped(b, e.uri)
	b = append(b, ' ')
	b = append(b, e.proto...)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, " \""...)
	if e.referer == "" {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, e.referer)
	}
	b = append(b, "\" \""...)
	if e.userAgent == "" {
		b = append(b, '-')
	} else {
		b = appendEscaped(b, e.userAgent)
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

func appendJSON(b []byte, e *logEntry) []byte {
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.host)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, e.uri)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.duration.Microseconds())/1000, 'f', 3, 64)
	b = append(b, `,"site":`...)
	b = appendJSONString(b, e.site)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, e.route)
	b = append(b, `,"upstream":`...)
	b = appendJSONString(b, e.upstream)
	b = append(b, `,"tls":`...)
	b = strconv.AppendBool(b, e.tls)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, e.referer)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, e.userAgent)
	if e.requestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, e.requestID)
	}
	if e.ws {
		b = append(b, `,"ws_bytes_in":`...)
		b = strconv.AppendInt(b, e.wsBytesIn, 10)
		b = append(b, `,"ws_close_code":`...)
		b = strconv.AppendUint(b, uint64(e.wsCode), 10)
		b = append(b, `,"ws_close_cause":`...)
		b = appendJSONString(b, e.wsCause)
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
