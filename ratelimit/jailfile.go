package ratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The bans file (JailOptions.Path) is JSON, one ban per line so that a
// damaged line costs that ban only and a person can read and edit it:
//
//	{"version":1,"bans":[
//	{"key":"203.0.113.7/32","since":"2026-01-02T03:04:05Z","until":"2026-01-02T05:04:05Z","reason":"429"},
//	{"key":"2001:db8:aa::/48","since":"2026-01-02T03:10:00Z","until":"2026-01-09T03:10:00Z","reason":"admin"}
//	]}
//
// Any JSON layout with the same fields reads the same (earlier versions
// wrote it indented). It is written whole, to a temporary file in the same
// directory that is fsynced and renamed over the old one, with mode 0600.

// banFileVersion is the "version" of the bans file.
const banFileVersion = 1

// maxLoggedProblems bounds the lines Load logs for one file; the count of
// the rest is logged, and the copy of the file holds them all.
const maxLoggedProblems = 100

// markDirty notes that the file is behind and wakes Run.
func (j *Jail) markDirty() {
	if j.path == "" {
		return
	}
	j.dirty.Store(true)
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// persist has an operator's change saved: by Run when it is active, here
// otherwise. The order (dirty, then running; Run clears running, then
// checks dirty) makes sure one of the two writes it.
func (j *Jail) persist() error {
	if j.path == "" {
		return nil
	}
	j.markDirty()
	if j.running.Load() {
		return nil
	}
	return j.Save()
}

// Run sweeps every SweepInterval and writes the file when bans changed, at
// most once per SaveInterval, until ctx is done; then it writes any change
// not yet written and returns that error. Once Run has returned, Ban and
// Unban write the file themselves again. The caller owns the goroutine
// running it; run at most one Run at a time.
func (j *Jail) Run(ctx context.Context) error {
	j.running.Store(true)
	sweep := time.NewTicker(j.sweepEvery)
	defer sweep.Stop()
	later := time.NewTimer(time.Hour)
	later.Stop()
	defer later.Stop()
	var (
		last    time.Time        // end of the last write
		waiting <-chan time.Time // later.C while a write waits for SaveInterval
	)
	for {
		select {
		case <-ctx.Done():
			j.running.Store(false)
			if j.path == "" || !j.dirty.Load() {
				return nil
			}
			return j.Save()
		case <-sweep.C:
			j.SweepAt(j.now())
		case <-j.kick:
		case <-waiting:
			waiting = nil
		}
		if j.path == "" || !j.dirty.Load() || waiting != nil {
			continue
		}
		if wait := j.saveEvery - time.Since(last); !last.IsZero() && wait > 0 {
			later.Reset(wait)
			waiting = later.C
			continue
		}
		if err := j.Save(); err != nil {
			j.log.Error("saving bans", "err", err)
		}
		last = time.Now()
	}
}

// Save writes the bans in force to Path now (see the file layout above).
// With no Path it does nothing. It refuses to overwrite a file that Load
// found damaged until a copy of that file is kept.
func (j *Jail) Save() error {
	if j.path == "" {
		return nil
	}
	j.saveMu.Lock()
	defer j.saveMu.Unlock()
	if j.blocked != nil {
		return fmt.Errorf("ratelimit: save bans to %s: %w", j.path, j.blocked)
	}
	if j.keep != nil {
		if _, err := j.keepCopy(j.keep); err != nil {
			return fmt.Errorf("ratelimit: save bans to %s: not overwriting the damaged file before a copy is kept: %w", j.path, err)
		}
		j.keep = nil
	}
	j.dirty.Store(false) // changes after this point make it dirty again
	b, err := encodeBans(j.List(j.now()))
	if err == nil {
		err = j.writeFile(j.path, b)
	}
	if err != nil {
		j.dirty.Store(true)
		return fmt.Errorf("ratelimit: save bans to %s: %w", j.path, err)
	}
	return nil
}

func encodeBans(bans []Ban) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"version":` + strconv.Itoa(banFileVersion) + `,"bans":[` + "\n")
	for i, b := range bans {
		line, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		buf.Write(line)
		if i < len(bans)-1 {
			buf.WriteByte(',')
		}
		buf.WriteByte('\n')
	}
	buf.WriteString("]}\n")
	return buf.Bytes(), nil
}

// writeFileAtomic replaces the file at path with b atomically (a synced
// temporary file in the same directory, mode 0600, renamed over it; then
// the directory synced). It is internal/statefile.Write again: ratelimit
// imports no project package (test/deps_test.go).
func writeFileAtomic(path string, b []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: make the rename durable
		d.Close()
	}
	return nil
}

// Load adds the bans saved in Path that are still in force (bans that
// ended while the process was down are dropped); it replaces nothing. A
// missing file is not an error.
//
// A damaged file loads every entry that can be read: an entry with a bad
// key, time or field is skipped; after a syntax error (a hand edit, a cut)
// the lines that follow are read one ban per line, as Save writes them.
// Each bad entry is logged with its file:line. The file as read is then
// copied to Path.bad-<UTC time> before anything can overwrite it, and Load
// returns an error saying how many entries were skipped and where the copy
// is. A file that cannot be read at all is renamed to that name instead.
// A file of an unknown version loads nothing (and is copied likewise).
func (j *Jail) Load() error {
	if j.path == "" {
		return nil
	}
	b, err := os.ReadFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return j.moveAside(err)
	}
	bans, problems := parseBanFile(b)
	now := j.now()
	loaded, ended := 0, 0
	var dropped []Event
	j.banMu.Lock()
	for _, ban := range bans {
		if now.Before(ban.Until) {
			dropped = j.addLocked(ban, now, dropped)
			loaded++
		} else {
			ended++
		}
	}
	j.banMu.Unlock()
	for _, e := range dropped {
		j.emit(e)
	}
	if ended > 0 {
		j.dirty.Store(true) // rewrite without them at the next save
	}
	if len(problems) == 0 {
		return nil
	}
	for i, p := range problems {
		if i == maxLoggedProblems {
			j.log.Warn("bans file: more bad entries not logged", "file", j.path, "count", len(problems)-i)
			break
		}
		args := []any{"at", j.path + ":" + strconv.Itoa(p.line), "err", p.err}
		if p.entry > 0 {
			args = append(args, "entry", p.entry)
		}
		j.log.Warn("bans file: bad entry skipped", args...)
	}
	j.dirty.Store(true) // write the good bans back soon
	j.saveMu.Lock()
	kept, err := j.keepCopy(b)
	if err != nil {
		j.keep = b // Save retries before it overwrites the file
		kept = "nowhere yet (" + err.Error() + "); the file is not overwritten until it is"
	}
	j.saveMu.Unlock()
	first := problems[0]
	return fmt.Errorf("ratelimit: load bans from %s: %d bans loaded, %d problems (logged); the file as read is kept in %s; the first problem, line %d: %w",
		j.path, loaded, len(problems), kept, first.line, first.err)
}

// keepCopy writes b next to the bans file as Path.bad-<UTC time> and
// returns that name; saveMu must be held.
func (j *Jail) keepCopy(b []byte) (string, error) {
	name, err := j.asideName()
	if err != nil {
		return "", err
	}
	return name, writeFileAtomic(name, b)
}

// moveAside renames a bans file that could not be read (readErr) out of
// the way, so the next save cannot destroy what it may hold.
func (j *Jail) moveAside(readErr error) error {
	j.saveMu.Lock()
	defer j.saveMu.Unlock()
	name, err := j.asideName()
	if err == nil {
		err = os.Rename(j.path, name)
	}
	if err != nil {
		j.blocked = fmt.Errorf("%s could not be read (%v) nor moved aside (%v); not overwriting it", j.path, readErr, err)
		return fmt.Errorf("ratelimit: load bans: %w", j.blocked)
	}
	return fmt.Errorf("ratelimit: load bans from %s: no ban loaded, the file is moved to %s: %w", j.path, name, readErr)
}

// asideName is a free name Path.bad-<UTC time>[-N] for a damaged file.
func (j *Jail) asideName() (string, error) {
	base := j.path + ".bad-" + j.now().UTC().Format("20060102T150405Z")
	name := base
	for n := 2; ; n++ {
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil
		}
		if err != nil {
			return "", err
		}
		if n > 100 {
			return "", fmt.Errorf("%s-2 … %s-100 all exist", base, base)
		}
		name = base + "-" + strconv.Itoa(n)
	}
}

// banProblem is one thing wrong in a bans file.
type banProblem struct {
	line  int // 1-based line of the file
	entry int // 1-based position in "bans"; 0 when not about one entry
	err   error
}

// parseBanFile reads every ban it can from b (see Load) and lists what was
// wrong.
func parseBanFile(b []byte) ([]Ban, []banProblem) {
	var (
		bans     []Ban
		problems []banProblem
		version  *int
	)
	problem := func(off int64, entry int, err error) {
		line := 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n"))
		problems = append(problems, banProblem{line: line, entry: entry, err: err})
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	// resume is the offset from which the lines are read one ban per line
	// after a syntax error; -1 while the decoder is fine.
	resume := int64(-1)
	syntax := func(off int64, entry int, err error) {
		problem(off, entry, err)
		resume = off
	}
	func() {
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			syntax(0, 0, errors.New("not a JSON object"))
			return
		}
		for dec.More() {
			off := skipSpace(b, dec.InputOffset())
			tok, err := dec.Token()
			if err != nil {
				syntax(off, 0, err)
				return
			}
			var raw json.RawMessage
			switch tok {
			case "version":
				if err := dec.Decode(&raw); err != nil {
					syntax(off, 0, err)
					return
				}
				var v int
				if err := json.Unmarshal(raw, &v); err != nil {
					problem(off, 0, fmt.Errorf("version: %w", err))
					continue
				}
				version = &v
			case "bans":
				if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
					syntax(off, 0, errors.New(`"bans" is not a list`))
					return
				}
				for i := 1; dec.More(); i++ {
					start := skipSpace(b, dec.InputOffset())
					if err := dec.Decode(&raw); err != nil {
						syntax(start, i, err)
						return
					}
					ban, err := decodeBan(raw)
					if err != nil {
						problem(start, i, err)
						continue
					}
					bans = append(bans, ban)
				}
				if _, err := dec.Token(); err != nil { // ]
					syntax(skipSpace(b, dec.InputOffset()), 0, err)
					return
				}
			default:
				problem(off, 0, fmt.Errorf("unknown field %q", tok))
				if err := dec.Decode(&raw); err != nil {
					syntax(off, 0, err)
					return
				}
			}
		}
		if _, err := dec.Token(); err != nil { // }
			syntax(skipSpace(b, dec.InputOffset()), 0, err)
		}
	}()
	if resume >= 0 {
		bans = append(bans, scanBanLines(b, resume, problem)...)
	} else if version == nil {
		problem(0, 0, errors.New("no version"))
	}
	if version != nil && *version != banFileVersion {
		problem(0, 0, fmt.Errorf("unknown version %d: no ban loaded (written by a newer Gatehouse?)", *version))
		bans = nil
	}
	return bans, problems
}

// scanBanLines reads the lines of b from the one holding offset from, one
// ban per line as Save writes them. Lines that hold no object are passed
// over; an object that is not a valid ban is reported, except on the first
// line, whose syntax error is reported already.
func scanBanLines(b []byte, from int64, problem func(off int64, entry int, err error)) []Ban {
	var bans []Ban
	off := int64(bytes.LastIndexByte(b[:from], '\n') + 1)
	for first := true; off < int64(len(b)); first = false {
		line := b[off:]
		next := int64(len(b))
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], off+int64(i)+1
		}
		t := bytes.TrimSuffix(bytes.TrimSpace(line), []byte(","))
		if len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}' {
			if ban, err := decodeBan(t); err == nil {
				bans = append(bans, ban)
			} else if !first {
				problem(off, 0, err)
			}
		}
		off = next
	}
	return bans
}

// decodeBan reads one entry of "bans" strictly.
func decodeBan(raw []byte) (Ban, error) {
	var b Ban
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Ban{}, err
	}
	if dec.More() {
		return Ban{}, errors.New("more than one value")
	}
	switch {
	case !b.Key.IsValid():
		return Ban{}, errors.New("no key")
	case b.Until.IsZero():
		return Ban{}, errors.New("no until")
	}
	return b, nil
}

// skipSpace returns the offset of the first byte at or after off that is
// not JSON white space or a comma.
func skipSpace(b []byte, off int64) int64 {
	for off < int64(len(b)) {
		switch b[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
		default:
			return off
		}
	}
	return off
}
