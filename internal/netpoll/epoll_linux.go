package netpoll

import (
	"errors"
	"syscall"
)

// wakeID marks the Watcher's own pipe; watch ids start at 1.
const wakeID = 0

// poller is one epoll instance and a pipe that wakes its waiter.
type poller struct {
	epfd int
	pipe [2]int
	evs  []syscall.EpollEvent
}

func newPoller() (poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return poller{}, err
	}
	p := poller{epfd: epfd, evs: make([]syscall.EpollEvent, 256)}
	if err := syscall.Pipe2(p.pipe[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		_ = syscall.Close(epfd)
		return poller{}, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setID(&ev, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.pipe[0], &ev); err != nil {
		p.closeAll()
		return poller{}, err
	}
	return p, nil
}

// add watches fd once (EPOLLONESHOT) for input, the peer's half close, hang-up and error.
func (p *poller) add(fd int, id uint64) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setID(&ev, id)
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (p *poller) del(fd int) error {
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, &syscall.EpollEvent{})
}

// wait blocks until at least one watched descriptor (or the wake pipe) is ready and appends the ids of the
// ready watches. A wake returns with no ids.
func (p *poller) wait(ids []uint64) ([]uint64, error) {
	for {
		n, err := syscall.EpollWait(p.epfd, p.evs, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return ids, err
		}
		for i := range n {
			id := getID(&p.evs[i])
			if id == wakeID {
				var b [16]byte
				_, _ = syscall.Read(p.pipe[0], b[:])
				continue
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
}

func (p *poller) wake() { _, _ = syscall.Write(p.pipe[1], []byte{1}) }

func (p *poller) close() error {
	p.closeAll()
	return nil
}

func (p *poller) closeAll() {
	_ = syscall.Close(p.pipe[0])
	_ = syscall.Close(p.pipe[1])
	_ = syscall.Close(p.epfd)
}

// The 64 bits of epoll_data carry the watch id: Fd holds the low half, Pad the high half.
func setID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func getID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
