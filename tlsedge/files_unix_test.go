//go:build unix

package tlsedge

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-proxy/gatehouse/internal/regularfile"
)

// TestPollFilesRefusesNonRegular: when a polled certificate path changes
// into something that is not a plain file of sensible size, the poll
// logs why and keeps serving the loaded certificate. A FIFO used to hang
// the poll in open(2) (os.ReadFile), holding the lock every certificate
// update takes; a link to /dev/zero would have been read without end.
func TestPollFilesRefusesNonRegular(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1, l1 := ca.issue(t, issueOpts{names: []string{"site.test"}})
	fp := writePair(t, dir, "site", c1, k1)
	log, logs := newLogBuffer(t)
	m, _ := newTestManagerWith(t, Options{Logger: log})
	if err := m.Update(Config{Files: []FilePair{fp}, Names: []string{"site.test"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(path string) error
		want string
	}{
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "a named pipe (FIFO), not a regular file"},
		// /dev/null rather than /dev/zero: a regression must fail the
		// test, not read without end.
		{"character device", func(p string) error { return os.Symlink("/dev/null", p) }, "a character device, not a regular file"},
		{"over the size limit", func(p string) error {
			// Sparse: the size is what counts, not the blocks.
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(regularfile.MaxPEMBytes + 1)
		}, "larger than the limit of 4 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := fp.CertFile + ".odd"
			if err := tc.make(tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, fp.CertFile); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { replaceFile(t, fp.CertFile, c1) })
			done := make(chan struct{})
			go func() { m.pollFiles(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				if tc.name == "FIFO" {
					// Let the stuck open return before the test ends.
					if w, err := os.OpenFile(fp.CertFile, os.O_WRONLY, 0); err == nil {
						w.Close()
					}
				}
				t.Fatalf("the poll did not return in 10 s with the certificate file replaced by a %s", tc.name)
			}
			if _, ok := logs.find("ERROR", "changed certificate files rejected", tc.want); !ok {
				t.Errorf("no error logged naming the file as %q", tc.want)
			}
			c, err := m.GetCertificate(&tlsHello{ServerName: "site.test"})
			if err != nil || c.Leaf.SerialNumber.Cmp(l1.SerialNumber) != 0 {
				t.Errorf("after the rejected change the served certificate is %v (err %v), want the loaded one", c, err)
			}
		})
	}
}
