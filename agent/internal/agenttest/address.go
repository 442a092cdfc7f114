package agenttest

import (
	"net"
	"sync"
)

// heldAddress keeps the API's loopback address bound for the whole test, while the API itself
// comes and goes. Giving the port up while the API is away would let the source port of any
// outgoing connection on the machine take it, and the API could not come back. While no server
// serves, a connection is closed as soon as it is made: a host sees a control plane that is
// down.
type heldAddress struct {
	ln net.Listener

	mu      sync.Mutex
	serving *serving
}

// serving is one server's view of a heldAddress: a listener that ends when the server closes
// it, without giving the address up.
type serving struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func holdAddress(ln net.Listener) *heldAddress {
	a := &heldAddress{ln: ln}
	go a.accept()
	return a
}

// accept hands each connection to the current server, or closes it when there is none.
func (a *heldAddress) accept() {
	for {
		c, err := a.ln.Accept()
		if err != nil {
			return // the test ended
		}
		a.mu.Lock()
		s := a.serving
		a.mu.Unlock()
		if s == nil {
			_ = c.Close()
			continue
		}
		select {
		case s.conns <- c:
		case <-s.done:
			_ = c.Close()
		}
	}
}

// listener is a new server's listener on the address.
func (a *heldAddress) listener() net.Listener {
	s := &serving{conns: make(chan net.Conn), done: make(chan struct{}), addr: a.ln.Addr()}
	a.mu.Lock()
	a.serving = s
	a.mu.Unlock()
	return s
}

// release gives the address up when the test ends.
func (a *heldAddress) release() { _ = a.ln.Close() }

func (s *serving) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *serving) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *serving) Addr() net.Addr { return s.addr }
