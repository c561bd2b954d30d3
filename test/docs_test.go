package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docFiles are the files users read: the README, docs/, examples/ and
// deploy/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(moduleRoot, "README.md")}
	for _, dir := range []string{"docs", "examples", "deploy"} {
		err := filepath.WalkDir(filepath.Join(moduleRoot, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".md") || strings.HasSuffix(p, ".toml") || strings.HasSuffix(p, ".service") ||
				strings.HasSuffix(p, ".container") || strings.HasSuffix(p, ".network")) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// outsideRefs are ways a document could cite a file outside the
// repository: the shared workspace, the reference setup's own document.
var outsideRefs = regexp.MustCompile(`/work/|\.\./shared|networking-and-tls\.md`)

// mdLink is a markdown link's target.
var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsCiteOnlyTheRepository: no document cites a path outside the
// repository, and every relative link in a markdown file names a file or
// directory of the repository that exists.
func TestDocsCiteOnlyTheRepository(t *testing.T) {
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(moduleRoot, f)
		for i, line := range strings.Split(string(b), "\n") {
			if m := outsideRefs.FindString(line); m != "" {
				t.Errorf("%s:%d cites %q, outside the repository: %s", rel, i+1, m, strings.TrimSpace(line))
			}
			if !strings.HasSuffix(f, ".md") {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				target, _, _ = strings.Cut(target, "#")
				p := filepath.Clean(filepath.Join(filepath.Dir(f), target))
				if r, err := filepath.Rel(moduleRoot, p); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s:%d links to %s, outside the repository", rel, i+1, m[1])
				} else if _, err := os.Stat(p); err != nil {
					t.Errorf("%s:%d links to %s, which does not exist", rel, i+1, m[1])
				}
			}
		}
	}
}

// TestUnitDocumentationExists: the systemd unit's Documentation= names
// the project's home, whose address is the module path (nothing installs
// a local copy of the docs, so a file: URL would point nowhere).
func TestUnitDocumentationExists(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join(moduleRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(mod), "\n")
	home := "https://" + strings.TrimSpace(strings.TrimPrefix(first, "module"))
	docs := deployUnitDirectives(t)["Documentation"]
	if len(docs) == 0 {
		t.Fatal("the unit has no Documentation=")
	}
	for _, d := range docs {
		for _, u := range strings.Fields(d) {
			if u != home && !strings.HasPrefix(u, home+"/") && !strings.HasPrefix(u, home+"#") {
				t.Errorf("Documentation=%s: want the project's home %s (or a page under it)", u, home)
			}
		}
	}
}
