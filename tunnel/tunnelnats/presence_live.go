package tunnelnats

import (
	"slices"
	"strings"
)

// Connectors returns the IDs of tenant's connectors live on any node, in
// the cluster-wide view, sorted. A caller that must reach one connector in
// particular (a sealed credential check) picks among them.
func (p *Presence) Connectors(tenant string) []string {
	prefix := token('t', tenant) + "."
	var ids []string
	p.mu.Lock()
	for k, nodes := range p.view {
		if len(nodes) == 0 || !strings.HasPrefix(k, prefix) {
			continue
		}
		if id, ok := untoken('c', k[len(prefix):]); ok {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Connectors is Presence.Connectors; none before StartPresence.
func (n *Node) Connectors(tenant string) []string {
	p := n.presence.Load()
	if p == nil {
		return nil
	}
	return p.Connectors(tenant)
}

// LiveIDs returns the IDs of the connectors of every tenant live on any
// node, in the cluster-wide view: one pass over the view (Connectors per tenant would make
// a page of every tenant's connectors quadratic).
func (p *Presence) LiveIDs() map[string]bool {
	out := map[string]bool{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, nodes := range p.view {
		if len(nodes) == 0 {
			continue
		}
		if i := strings.IndexByte(k, '.'); i >= 0 {
			if id, ok := untoken('c', k[i+1:]); ok {
				out[id] = true
			}
		}
	}
	return out
}

// LiveIDs is Presence.LiveIDs; empty before StartPresence.
func (n *Node) LiveIDs() map[string]bool {
	p := n.presence.Load()
	if p == nil {
		return map[string]bool{}
	}
	return p.LiveIDs()
}
