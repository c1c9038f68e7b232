// Package httpguard hardens an internet-facing net/http server: timeouts
// and header limits every server needs ([Limits]), a cap on open
// connections ([LimitListener]), and protection of state-changing API
// requests against cross-site request forgery ([ProtectWrites]); a
// default deadline for outgoing requests ([Deadline]); a self-signed CA for
// a server that has no certificate ([LoadSelfSignedCA]).
//
// Use it for the endpoints of a cloud service that anyone can reach:
//
//	lim := httpguard.Limits{}                 // zero fields take the defaults
//	srv := &http.Server{Handler: mux}
//	lim.Apply(srv)                            // read, write, idle, header limits
//	srv.ServeTLS(lim.Listener(ln), "", "")    // at most MaxConns open at once
//
// A handler that must outlive the timeouts (a WebSocket after its upgrade, a
// long admin operation) clears or extends its own deadlines with
// [net/http.ResponseController] once it has authenticated the caller.
//
// It won't rate-limit requests, authenticate anyone, or tell one client
// from another: a connection cap shared by everybody can be filled by one
// attacker until the timeouts close its connections. Put a proxy with
// per-client limits in front when that matters.
package httpguard

import (
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of [Limits].
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 2 * time.Minute
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 4096
)

// Limits bounds what one client may hold of a server. Zero fields take the
// defaults above; a negative duration or count means no limit (for tests
// and trusted networks only).
type Limits struct {
	// ReadHeaderTimeout is the time allowed to read a request's headers
	// (slowloris); ReadTimeout the time to read the whole request, body
	// included (a slow body).
	ReadHeaderTimeout, ReadTimeout time.Duration
	// WriteTimeout ends a request whose response is not written within it
	// after the headers were read.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no new request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// MaxConns caps the connections open at once (including hijacked
	// ones, such as WebSockets, until they close); see [LimitListener].
	MaxConns int
}

func orDefault[T time.Duration | int](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// Apply sets srv's timeouts and header limit.
func (l Limits) Apply(srv *http.Server) {
	srv.ReadHeaderTimeout = orDefault(l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	srv.ReadTimeout = orDefault(l.ReadTimeout, DefaultReadTimeout)
	srv.WriteTimeout = orDefault(l.WriteTimeout, DefaultWriteTimeout)
	srv.IdleTimeout = orDefault(l.IdleTimeout, DefaultIdleTimeout)
	srv.MaxHeaderBytes = orDefault(l.MaxHeaderBytes, DefaultMaxHeaderBytes)
}

// Listener returns ln capped at MaxConns open connections, or ln itself
// when MaxConns is negative.
func (l Limits) Listener(ln net.Listener) net.Listener {
	n := orDefault(l.MaxConns, DefaultMaxConns)
	if n == 0 {
		return ln
	}
	return LimitListener(ln, n)
}

// LimitListener returns a listener that keeps at most n accepted connections
// open. A connection accepted beyond n is closed at once (the client sees
// the connection reset or closed, not a hang) and Accept waits for the next
// one. A connection's slot is freed when it is closed, by the server or
// through a hijacked conn. It panics if n < 1.
func LimitListener(ln net.Listener, n int) net.Listener {
	if n < 1 {
		panic("httpguard: LimitListener needs n >= 1")
	}
	return &limitListener{Listener: ln, max: int64(n)}
}

type limitListener struct {
	net.Listener
	max    int64
	active atomic.Int64
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			_ = c.Close()
			continue
		}
		return &limitConn{Conn: c, release: l.release}, nil
	}
}

func (l *limitListener) release() { l.active.Add(-1) }

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// ProtectWrites guards the state-changing requests (every method but GET,
// HEAD and OPTIONS) of an API that authenticates with a bearer token:
//
//   - a cross-origin browser request is refused with 403
//     ([net/http.CrossOriginProtection]: Sec-Fetch-Site, else Origin
//     against Host); requests from non-browser clients carry neither
//     header and pass;
//   - a request without "Authorization: Bearer ..." is refused with 401,
//     so credentials a browser caches and replays by itself (HTTP basic,
//     cookies) never authorize a change;
//   - a request with a body whose Content-Type is not application/json is
//     refused with 415: an HTML form or a "simple" cross-site request
//     cannot send one.
//
// It checks the scheme, not the token: h still authenticates it. Refusals
// are JSON {"error": "..."}. Safe methods pass untouched: they must not
// change state.
func ProtectWrites(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		if err := cop.Check(r); err != nil {
			refuse(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			refuse(w, http.StatusUnauthorized, "a bearer token is required (Authorization: Bearer <token>)")
			return
		}
		if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				refuse(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n")) // msg is a constant without quotes
}
