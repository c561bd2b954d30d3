package tomlstruct

import (
	"strconv"
	"strings"
)

// Lines maps the key paths of a TOML document to the line they are
// defined on, so validation errors can name a line. Paths look like
// "sites.main.routes[0].upstream", with the index of every array element
// (Decoder names keys the same way).
type Lines map[string]int

// ScanLines finds the line of every key path of src. It is a small
// scanner, not a TOML parser: src should be a document the TOML library
// has accepted, so it only needs to follow tables, arrays of tables, dotted
// keys, inline tables and arrays, and skip strings. On any other input it
// returns what it found, without panicking or looping.
func ScanLines(src string) Lines {
	s := &lineScanner{src: src, line: 1, out: Lines{}, arrays: map[string]int{}}
	s.document()
	return s.out
}

// Line is the line key is defined on, or that of the nearest enclosing
// key that has one (0 when none has).
func (l Lines) Line(key string) int {
	line := l[key]
	for k := key; line == 0 && k != ""; {
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
		line = l[k]
	}
	return line
}

// Has reports whether key is defined in the document.
func (l Lines) Has(key string) bool {
	_, ok := l[key]
	return ok
}

type lineScanner struct {
	src    string
	pos    int
	line   int
	out    Lines
	arrays map[string]int // array-of-tables path -> count seen
}

func (s *lineScanner) record(path string) {
	if _, ok := s.out[path]; !ok {
		s.out[path] = s.line
	}
}

func (s *lineScanner) peek() byte {
	if s.pos < len(s.src) {
		return s.src[s.pos]
	}
	return 0
}

func (s *lineScanner) advance() {
	if s.pos < len(s.src) {
		if s.src[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

// skipSpace skips blanks, comments and (when nl) newlines.
func (s *lineScanner) skipSpace(nl bool) {
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case c == '\n' && nl:
			s.advance()
		case c == '#':
			for s.pos < len(s.src) && s.src[s.pos] != '\n' {
				s.advance()
			}
		default:
			return
		}
	}
}

func (s *lineScanner) document() {
	prefix := ""
	for {
		s.skipSpace(true)
		if s.pos >= len(s.src) {
			return
		}
		if s.peek() == '[' {
			s.advance()
			array := s.peek() == '['
			if array {
				s.advance()
			}
			name := s.keyPath()
			for s.pos < len(s.src) && s.peek() != '\n' {
				s.advance()
			}
			if array {
				n := s.arrays[name]
				s.arrays[name] = n + 1
				prefix = name + "[" + strconv.Itoa(n) + "]"
			} else {
				prefix = name
			}
			s.record(prefix)
			continue
		}
		before := s.pos
		s.keyValue(prefix)
		if s.pos == before { // not a key: skip the line rather than loop
			for s.pos < len(s.src) && s.peek() != '\n' {
				s.advance()
			}
		}
	}
}

// keyPath reads a (dotted, possibly quoted) key and returns it joined by
// dots, resolving array-of-table indexes for headers already seen.
func (s *lineScanner) keyPath() string {
	var parts []string
	for {
		s.skipSpace(false)
		var part string
		switch c := s.peek(); c {
		case '"', '\'':
			part = s.stringLit()
		default:
			start := s.pos
			for s.pos < len(s.src) {
				c := s.src[s.pos]
				if c == '.' || c == '=' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
					break
				}
				s.advance()
			}
			part = s.src[start:s.pos]
		}
		parts = append(parts, part)
		s.skipSpace(false)
		if s.peek() != '.' {
			break
		}
		s.advance()
	}
	// Inside [a.b] where a is an array of tables, a refers to its last
	// element.
	for i := 1; i < len(parts); i++ {
		head := strings.Join(parts[:i], ".")
		if n, ok := s.arrays[head]; ok && n > 0 {
			parts[i-1] += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return strings.Join(parts, ".")
}

func (s *lineScanner) keyValue(prefix string) {
	start := s.pos
	key := s.keyPath()
	s.skipSpace(false)
	if s.peek() != '=' || s.pos == start {
		return
	}
	s.advance()
	path := key
	if prefix != "" {
		path = prefix + "." + key
	}
	s.record(path)
	s.value(path)
}

func (s *lineScanner) value(path string) {
	s.skipSpace(false)
	switch s.peek() {
	case '"', '\'':
		s.stringLit()
	case '{':
		s.advance()
		for {
			s.skipSpace(true)
			switch s.peek() {
			case '}':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			case 0:
				return
			}
			before := s.pos
			s.keyValue(path)
			if s.pos == before {
				s.advance()
			}
		}
	case '[':
		s.advance()
		for i := 0; ; {
			s.skipSpace(true)
			switch s.peek() {
			case ']':
				s.advance()
				return
			case ',':
				s.advance()
				i++
				continue
			case 0:
				return
			}
			before := s.pos
			s.value(path + "[" + strconv.Itoa(i) + "]")
			if s.pos == before {
				s.advance()
			}
		}
	default:
		for s.pos < len(s.src) {
			c := s.src[s.pos]
			if c == ',' || c == ']' || c == '}' || c == '\n' || c == '#' {
				return
			}
			s.advance()
		}
	}
}

// stringLit skips a basic, literal or multi-line string and returns its
// raw contents (escapes are not decoded: keys with escapes are rare).
func (s *lineScanner) stringLit() string {
	q := s.peek()
	triple := strings.HasPrefix(s.src[s.pos:], string([]byte{q, q, q}))
	if triple {
		s.advance()
		s.advance()
		s.advance()
	} else {
		s.advance()
	}
	start := s.pos
	for s.pos < len(s.src) {
		c := s.src[s.pos]
		if c == '\\' && q == '"' {
			s.advance()
			s.advance()
			continue
		}
		if c == q {
			if !triple {
				v := s.src[start:s.pos]
				s.advance()
				return v
			}
			if strings.HasPrefix(s.src[s.pos:], string([]byte{q, q, q})) {
				v := s.src[start:s.pos]
				s.advance()
				s.advance()
				s.advance()
				return v
			}
		}
		if c == '\n' && !triple {
			return s.src[start:s.pos]
		}
		s.advance()
	}
	return s.src[start:]
}
