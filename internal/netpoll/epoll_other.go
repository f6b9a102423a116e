//go:build !linux

package netpoll

// poller has no implementation off Linux: New returns ErrUnsupported and callers keep their fallback.
type poller struct{}

func newPoller() (poller, error)                   { return poller{}, ErrUnsupported }
func (poller) add(int, uint64) error               { return ErrUnsupported }
func (poller) del(int) error                       { return ErrUnsupported }
func (poller) wait(ids []uint64) ([]uint64, error) { return ids, ErrUnsupported }
func (poller) wake()                               {}
func (poller) close() error                        { return nil }
