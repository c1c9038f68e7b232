package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// conn is one LDAP connection to one server.
type conn struct {
	l      *ldap.Conn
	srv    int // index in Client.servers
	used   time.Time
	pooled bool // came from the idle list (may be stale)
	// delivered is set once results reached the caller: no retry then.
	delivered bool
}

// dial connects to the servers in order, starting with the last one that
// worked, and returns the first connection that is up (TLS done, and bound as
// the service account when bind is true). When every server fails it
// returns ErrUnavailable wrapping each server's error. A refused service
// bind is not a reason to fail over and is returned as is.
func (c *Client) dial(ctx context.Context, bind bool) (*conn, error) {
	c.mu.Lock()
	start := c.preferred
	c.mu.Unlock()
	var errs []error
	for i := range c.servers {
		idx := (start + i) % len(c.servers)
		cn, err := c.dialOne(ctx, idx, bind)
		if err == nil {
			if idx != start {
				c.log.Warn("failed over to another server", "server", c.servers[idx].url)
				c.mu.Lock()
				c.preferred = idx
				c.mu.Unlock()
			}
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("directory: connect: %w", context.Cause(ctx))
		}
		var be *bindError
		if errors.As(err, &be) {
			return nil, be.err
		}
		c.log.Debug("server unavailable", "server", c.servers[idx].url, "err", err)
		errs = append(errs, fmt.Errorf("%s: %w", c.servers[idx].url, err))
	}
	return nil, fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// bindError marks a service bind refused by a reachable server.
type bindError struct{ err error }

func (e *bindError) Error() string { return e.err.Error() }

func (c *Client) dialOne(ctx context.Context, idx int, bind bool) (*conn, error) {
	s := c.servers[idx]
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	dialFn := c.cfg.DialContext
	if dialFn == nil {
		d := &net.Dialer{}
		dialFn = d.DialContext
	}
	nc, err := dialFn(ctx, "tcp", s.address)
	if err != nil {
		return nil, err
	}
	tc := c.tls.Clone()
	if tc.ServerName == "" {
		tc.ServerName = s.host
	}
	isTLS := s.scheme == "ldaps"
	if isTLS {
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tlsConn
	}
	l := ldap.NewConn(nc, isTLS)
	l.Start()
	l.SetTimeout(c.cfg.Timeout)
	// go-ldap takes no ctx: closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	if !isTLS && !c.cfg.Plaintext {
		if err := l.StartTLS(tc); err != nil {
			l.Close()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			return nil, fmt.Errorf("starttls: %w", err)
		}
	}
	if bind {
		if _, err := l.SimpleBind(ldap.NewSimpleBindRequest(c.cfg.BindDN, c.cfg.BindPassword, nil)); err != nil {
			l.Close()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if ldap.IsErrorWithCode(err, ldap.ErrorNetwork) {
				return nil, err
			}
			return nil, &bindError{fmt.Errorf("%w: %w", ErrServiceBind, err)}
		}
	}
	return &conn{l: l, srv: idx}, nil
}

// pool keeps up to size connections; idle ones are closed after idleTimeout.
type pool struct {
	c    *Client
	bind bool // connections are bound as the service account
	sem  chan struct{}

	mu     sync.Mutex
	idle   []*conn
	timer  *time.Timer
	closed bool
}

func newPool(c *Client, size int, bind bool) *pool {
	return &pool{c: c, bind: bind, sem: make(chan struct{}, size)}
}

func (p *pool) get(ctx context.Context) (*conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("directory: waiting for a connection: %w", context.Cause(ctx))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, ErrClosed
	}
	for len(p.idle) > 0 {
		cn := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if cn.l.IsClosing() {
			continue
		}
		p.mu.Unlock()
		cn.pooled = true
		return cn, nil
	}
	p.mu.Unlock()
	cn, err := p.c.dial(ctx, p.bind)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return cn, nil
}

// put returns cn to the pool, or closes it when it is not healthy.
func (p *pool) put(cn *conn, healthy bool) {
	defer func() { <-p.sem }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !healthy || p.closed || cn.l.IsClosing() {
		cn.l.Close()
		return
	}
	cn.used = time.Now()
	cn.pooled = false
	cn.delivered = false
	p.idle = append(p.idle, cn)
	if p.timer == nil {
		p.timer = time.AfterFunc(p.c.cfg.IdleTimeout, p.reap)
	}
}

// reap closes connections idle for IdleTimeout and re-arms for the rest.
func (p *pool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if p.closed {
		return
	}
	now := time.Now()
	keep := p.idle[:0]
	var next time.Duration
	for _, cn := range p.idle {
		age := now.Sub(cn.used)
		if age >= p.c.cfg.IdleTimeout {
			cn.l.Close()
			continue
		}
		keep = append(keep, cn)
		if left := p.c.cfg.IdleTimeout - age; next == 0 || left < next {
			next = left
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(keep) > 0 {
		p.timer = time.AfterFunc(next, p.reap)
	}
}

// idleCount is for tests.
func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	for _, cn := range p.idle {
		cn.l.Close()
	}
	p.idle = nil
}

// use runs fn on a pooled connection with the operation timeout and ctx
// honoured by closing the connection. A network failure on a connection
// that sat idle in the pool is retried once on a fresh one (the server may
// have dropped it); retry must be false for operations that already handed
// results to the caller.
func (c *Client) use(ctx context.Context, p *pool, fn func(ctx context.Context, cn *conn) error) error {
	for attempt := 0; ; attempt++ {
		cn, err := p.get(ctx)
		if err != nil {
			return err
		}
		err = c.guard(ctx, cn, fn)
		healthy := err == nil || !isConnBroken(err) && ctx.Err() == nil
		// Read cn's state before put: once back in the pool, another
		// goroutine may take it (and put resets it).
		stale := cn.pooled && !cn.delivered
		p.put(cn, healthy)
		if err != nil && stale && attempt == 0 && isConnBroken(err) && ctx.Err() == nil {
			continue
		}
		return err
	}
}

// guard closes cn when ctx ends while fn runs, and turns the resulting
// network error into ctx's error.
func (c *Client) guard(ctx context.Context, cn *conn, fn func(ctx context.Context, cn *conn) error) error {
	stop := context.AfterFunc(ctx, func() { cn.l.Close() })
	err := fn(ctx, cn)
	if !stop() {
		// ctx ended: the connection is closed.
		if err != nil {
			return fmt.Errorf("directory: %w (%w)", context.Cause(ctx), err)
		}
		return fmt.Errorf("directory: %w", context.Cause(ctx))
	}
	return err
}

func isConnBroken(err error) bool {
	return ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || errors.Is(err, net.ErrClosed)
}
