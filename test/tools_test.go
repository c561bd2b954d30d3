package test

import (
	"os"
	"os/exec"
	"testing"
)

// requireTool returns the path of an external program, or skips the test
// when it is not installed. With GATEHOUSE_REQUIRE_TOOLS=1 (CI images that
// are meant to have every tool) a missing tool fails the test instead.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not installed (Debian package " + debianPackage + ")"
	if os.Getenv("GATEHOUSE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s, and GATEHOUSE_REQUIRE_TOOLS=1", msg)
	}
	t.Skip(msg)
	return ""
}
