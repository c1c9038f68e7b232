package tunnel

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Forwarder reaches connector sessions held by other cloud nodes. A
// [Gateway] with a Forwarder (GatewayConfig.Forwarder) sends a request to
// its own sessions when its [Router] has one for the tenant, and to the
// Forwarder otherwise. tunnel/tunnelnats implements it on NATS.
type Forwarder interface {
	// Forward sends req to a live session of tenant (of connectorID when
	// not empty) on another node and returns its response, whose body
	// streams. It returns ErrNotConnected at once when no node has one.
	// It owns req.Body, as http.RoundTripper does.
	Forward(req *http.Request, tenant, connectorID string) (*http.Response, error)
}

// RoundTrip sends req on this session only, with no retry elsewhere: the
// building block for a [Router] or [Forwarder] implemented outside this
// package. A request on a session that ended fails with an error wrapping
// ErrSessionLost; use [Gateway.RoundTripper] for retries.
func (s *Session) RoundTrip(req *http.Request) (*http.Response, error) {
	return s.roundTrip(req)
}

// ReplayCache remembers connect-token nonces until their tokens expire, so
// a copied token cannot open a second session. The gateway keeps one in
// memory by default; nodes behind one load balancer must share one
// (GatewayConfig.ReplayCache; tunnel/tunnelnats has one on NATS), or a
// token replayed to another node would be accepted there.
type ReplayCache interface {
	// Add records nonce until expires. It returns false when nonce was
	// recorded before and has not expired: the token is a replay. An error
	// refuses the connect (fail closed).
	Add(ctx context.Context, nonce string, expires time.Time) (bool, error)
}

// memoryReplay is the default ReplayCache, for one node.
type memoryReplay struct {
	now    func() time.Time
	mu     sync.Mutex
	nonces map[string]time.Time // until when each nonce is kept
	prune  int                  // prune when the map reaches this size
}

func newMemoryReplay(now func() time.Time) *memoryReplay {
	return &memoryReplay{now: now, nonces: make(map[string]time.Time), prune: 1024}
}

func (m *memoryReplay) Add(_ context.Context, nonce string, expires time.Time) (bool, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, seen := m.nonces[nonce]; seen && !now.After(e) {
		return false, nil
	}
	if len(m.nonces) >= m.prune {
		// amortized: scan only when the map doubled since the last scan
		for n, e := range m.nonces {
			if now.After(e) {
				delete(m.nonces, n)
			}
		}
		m.prune = 2*len(m.nonces) + 1024
	}
	m.nonces[nonce] = expires
	return true, nil
}

// forward is the transport's fallback when no local session is live.
func (t *transport) forward(req *http.Request) (*http.Response, error) {
	return t.forwarder.Forward(req, t.tenant, t.connectorID)
}
