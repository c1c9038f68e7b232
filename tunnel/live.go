package tunnel

import (
	"slices"
	"strings"
	"time"
)

// LiveConnector is a connector with at least one live session on a
// [Gateway].
type LiveConnector struct {
	ConnectorID string
	Tenant      string
	// Sessions is the number of its live sessions on this gateway (two
	// while a reconnect or a drain overlaps the old session).
	Sessions int
	// ConnectedAt is when its oldest live session was registered.
	ConnectedAt time.Time
	// RemoteAddr is the network address its newest session came from, as
	// the HTTP server saw it (a proxy's address behind a proxy).
	RemoteAddr string
	// Sealed reports that its newest session seals every message because
	// something between the connector and this gateway ends TLS (an
	// inspecting proxy, a load balancer); false: one TLS 1.3 connection
	// runs from end to end and protects the session (SPEC.md "Sealed
	// messages").
	Sealed bool
}

// liveSession is what the gateway records of a session when it registers.
type liveSession struct {
	connectedAt time.Time
	remoteAddr  string
}

// Live returns the connectors of tenant ("" for every tenant) with a live
// session on this gateway, sorted by tenant and connector ID. A session
// counts from its registration (after its handshake, before its Connected
// presence event) until it ends. Callers need no presence map of their own.
func (g *Gateway) Live(tenant string) []LiveConnector {
	g.mu.Lock()
	byID := map[string]*LiveConnector{}
	newest := map[string]time.Time{}
	for s, ls := range g.sessions {
		if tenant != "" && s.Tenant() != tenant {
			continue
		}
		lc := byID[s.ConnectorID()]
		if lc == nil {
			lc = &LiveConnector{ConnectorID: s.ConnectorID(), Tenant: s.Tenant(), ConnectedAt: ls.connectedAt}
			byID[s.ConnectorID()] = lc
		}
		lc.Sessions++
		if ls.connectedAt.Before(lc.ConnectedAt) {
			lc.ConnectedAt = ls.connectedAt
		}
		if t, ok := newest[lc.ConnectorID]; !ok || !ls.connectedAt.Before(t) {
			newest[lc.ConnectorID] = ls.connectedAt
			lc.RemoteAddr = ls.remoteAddr
			lc.Sealed = !s.cfg.tx.bound()
		}
	}
	g.mu.Unlock()
	out := make([]LiveConnector, 0, len(byID))
	for _, lc := range byID {
		out = append(out, *lc)
	}
	slices.SortFunc(out, func(a, b LiveConnector) int {
		if c := strings.Compare(a.Tenant, b.Tenant); c != 0 {
			return c
		}
		return strings.Compare(a.ConnectorID, b.ConnectorID)
	})
	return out
}
