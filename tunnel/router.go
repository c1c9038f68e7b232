package tunnel

import "sync"

// Router chooses the live session of this process that serves a tenant's
// next request. A [Gateway] adds and removes its sessions; several gateways
// in one process may share one router. [MemoryRouter] is the default.
// Sessions of other processes are not a Router's business: a [Forwarder]
// reaches them (tunnel/tunnelnats wraps a MemoryRouter to learn which
// tenants this node serves and implements both).
type Router interface {
	// Add makes a session eligible for its tenant.
	Add(s *Session)
	// Remove forgets a session.
	Remove(s *Session)
	// Pick returns a live session of tenant (and of connectorID, when not
	// empty), other than avoid. It returns ErrNotConnected at once when
	// there is none. It never returns a session of another tenant.
	Pick(tenant, connectorID string, avoid *Session) (*Session, error)
}

// MemoryRouter routes to the least busy session of a tenant, preferring
// sessions that are not draining.
type MemoryRouter struct {
	mu      sync.RWMutex
	tenants map[string][]*Session
}

var _ Router = (*MemoryRouter)(nil)

// NewMemoryRouter returns an empty router.
func NewMemoryRouter() *MemoryRouter {
	return &MemoryRouter{tenants: make(map[string][]*Session)}
}

// Add implements [Router].
func (r *MemoryRouter) Add(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tenants[s.Tenant()] = append(r.tenants[s.Tenant()], s)
}

// Remove implements [Router].
func (r *MemoryRouter) Remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.tenants[s.Tenant()]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.tenants, s.Tenant())
	} else {
		r.tenants[s.Tenant()] = list
	}
}

// Pick implements [Router].
func (r *MemoryRouter) Pick(tenant, connectorID string, avoid *Session) (*Session, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var best *Session
	bestDrain := true
	bestLoad := 0
	for _, s := range r.tenants[tenant] {
		if s == avoid || s.Tenant() != tenant || connectorID != "" && s.ConnectorID() != connectorID {
			continue
		}
		select {
		case <-s.done:
			continue
		default:
		}
		drain := s.Draining()
		load := s.InFlight()
		if best == nil || bestDrain && !drain || drain == bestDrain && load < bestLoad {
			best, bestDrain, bestLoad = s, drain, load
		}
	}
	if best == nil {
		return nil, ErrNotConnected
	}
	return best, nil
}
