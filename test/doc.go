// Package test holds Gatehouse's end-to-end tests. They run the real
// gatehouse binary (built once by TestMain) or the proxy package's Edge
// behind an edgeserver.Server on loopback listeners, in front of real backend servers that record
// what they received, and assert what the backends saw and what clients got.
// deps_test.go also enforces the one-way import graph and package docs.
//
// Run with: go test -race ./test/
// Set GATEHOUSE_REQUIRE_TOOLS=1 to fail, not skip, when an external tool
// such as promtool is missing, and GATEHOUSE_E2E_RACE=1 to run the daemon
// itself race-instrumented (a reported data race fails the test).
package test
