package ddblocal

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy accepts connections on a host listener and pairs each with a
// connection made by dial (into java's network namespace), copying bytes
// both ways.
type proxy struct {
	ln     net.Listener
	dial   func(context.Context) (net.Conn, error)
	warnf  func(format string, args ...any)
	ctx    context.Context // cancelled by close to abort pending dials
	cancel context.CancelFunc

	// ready silences dial failures while Start is still polling a java that
	// has not bound its port yet.
	ready atomic.Bool

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newProxy(ln net.Listener, dial func(context.Context) (net.Conn, error), warnf func(string, ...any)) *proxy {
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{ln: ln, dial: dial, warnf: warnf, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p
}

func (p *proxy) startupDone() { p.ready.Store(true) }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Typically EMFILE; back off instead of spinning.
			p.warnf("proxy accept on %s: %v", p.ln.Addr(), err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers c so close can tear it down; false once closing.
func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *proxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	defer client.Close()

	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	upstream, err := p.dial(ctx)
	cancel()
	if err != nil {
		if p.ready.Load() && p.ctx.Err() == nil {
			p.warnf("proxy: connect to DynamoDB Local: %v", err)
		}
		return
	}
	if !p.track(upstream) {
		upstream.Close()
		return
	}
	defer p.untrack(upstream)
	defer upstream.Close()
	pipe(client, upstream)
}

// errNoHalfClose marks a copy whose destination cannot be half-closed, so
// the whole pair has to be closed to signal the end.
var errNoHalfClose = errors.New("half-close not supported")

// pipe copies a<->b. When one direction reaches EOF it half-closes the other
// side's write end so a peer still sending can finish; any error, or both
// directions ending, closes both.
func pipe(a, b net.Conn) {
	done := make(chan error, 2)
	copyHalf := func(dst, src net.Conn) {
		_, err := io.Copy(dst, src)
		if err == nil {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				err = cw.CloseWrite()
			} else {
				err = errNoHalfClose
			}
		}
		done <- err
	}
	go copyHalf(a, b)
	go copyHalf(b, a)
	if err := <-done; err != nil {
		a.Close()
		b.Close()
	}
	<-done
	a.Close()
	b.Close()
}

// close stops accepting, drops every open connection and waits for the
// handlers to finish.
func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.cancel()
	p.ln.Close()
	p.wg.Wait()
}
