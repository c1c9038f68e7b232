// Package alertstunnel feeds a tunnel gateway's presence to an alerts
// monitor: Not Connected is raised when a tenant has had no live connector
// for the grace period and resolved when one returns (package alerts), from
// the gateway's Connected and Disconnected events.
//
//	mon, _ := alerts.New(alerts.Config{Store: st, Notifier: n})
//	gw, _ := tunnel.NewGateway(tunnel.GatewayConfig{OnPresence: alertstunnel.OnPresence(mon, nil), ...})
//
// It keeps no presence of its own: which connectors are live is
// tunnel.Gateway.Live.
package alertstunnel

import "github.com/liaisonhq/liaison/tunnel"

// Monitor is what presence is fed to (*alerts.Monitor is one).
type Monitor interface {
	Connected(tenant, connector string)
	Disconnected(tenant, connector string)
}

// OnPresence returns a tunnel.GatewayConfig.OnPresence that feeds m and
// then calls next (when not nil) with the same event, in order.
func OnPresence(m Monitor, next func(tunnel.PresenceEvent)) func(tunnel.PresenceEvent) {
	return func(ev tunnel.PresenceEvent) {
		switch ev.Kind {
		case tunnel.Connected:
			m.Connected(ev.Tenant, ev.ConnectorID)
		case tunnel.Disconnected:
			m.Disconnected(ev.Tenant, ev.ConnectorID)
		}
		if next != nil {
			next(ev)
		}
	}
}
