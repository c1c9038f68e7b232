package alertstunnel_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/alerts/alertstunnel"
	"github.com/liaisonhq/liaison/tunnel"
)

var _ alertstunnel.Monitor = (*alerts.Monitor)(nil)

type rec struct{ got []string }

func (r *rec) Connected(t, c string)    { r.got = append(r.got, "+"+t+"/"+c) }
func (r *rec) Disconnected(t, c string) { r.got = append(r.got, "-"+t+"/"+c) }

func TestOnPresence(t *testing.T) {
	m := &rec{}
	var next []tunnel.PresenceKind
	f := alertstunnel.OnPresence(m, func(ev tunnel.PresenceEvent) { next = append(next, ev.Kind) })
	f(tunnel.PresenceEvent{Kind: tunnel.Connected, Tenant: "acme", ConnectorID: "c1"})
	f(tunnel.PresenceEvent{Kind: tunnel.Disconnected, Tenant: "acme", ConnectorID: "c1"})
	assert.Equal(t, []string{"+acme/c1", "-acme/c1"}, m.got)
	assert.Equal(t, []tunnel.PresenceKind{tunnel.Connected, tunnel.Disconnected}, next)
	alertstunnel.OnPresence(m, nil)(tunnel.PresenceEvent{Kind: tunnel.Connected, Tenant: "b", ConnectorID: "c2"})
	assert.Equal(t, "+b/c2", m.got[2])
}
