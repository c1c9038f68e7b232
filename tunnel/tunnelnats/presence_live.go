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
