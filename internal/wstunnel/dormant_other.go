//go:build !linux

package wstunnel

// dormancy is Linux-only (an epoll set); elsewhere every pipe keeps its
// goroutine, parked in Go's poller while idle, and newDormancy returns nil.
type dormancy struct{}

func newDormancy() *dormancy { return nil }

func (d *dormancy) run()            {}
func (d *dormancy) park(*pipe) bool { return false }
func (d *dormancy) forget(*pipe)    {}
func (d *dormancy) close()          {}
func (d *dormancy) usable() bool    { return false }
