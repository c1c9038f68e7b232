package tunnelnats

// NumRoutes reports the server's routes to peers, for tests that wait for
// a cluster to form.
func (s *Server) NumRoutes() int { return s.ns.NumRoutes() }

// Kill stops the server at once, as a crash would.
func (s *Server) Kill() { s.ns.Shutdown() }

var ParseRequest = parseRequest

// InFlight counts the forwarded requests this router takes part in.
func (r *Router) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.streams)
}

// Nodes counts the nodes this presence sees holding a connector.
func (p *Presence) Nodes(tenant, connectorID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.view[presenceKey(tenant, connectorID)])
}

var (
	ParseResponse = parseResponse
	ParseError    = parseError
	ParseU32      = parseU32
)
