package tunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// frameInfo carries a connector's [ConnectorInfo] (SPEC.md, "INFO"):
// stream 0, connector to gateway only, sent IGNORABLE so a gateway that
// does not know it skips it.
const frameInfo frameType = 0xB

// MaxInfoSize is the largest encoded [ConnectorInfo] a connector may
// publish, in bytes.
const MaxInfoSize = 4096

// ConnectorInfo is what a connector says about itself to the gateway, so
// the cloud can show its health without probing anything: the connector
// reports what it saw while doing real work. It is published with
// [Connector.SetInfo], sent after each HELLO and on every change, sealed
// like every message; the gateway keeps the latest per session
// ([Session.Info], [Gateway.ConnectorInfo]) and reports changes to
// GatewayConfig.OnInfo.
//
// Every field is the connector's own claim: an authenticated connector,
// but not verified further. Treat it as display data.
type ConnectorInfo struct {
	Version string `json:"version,omitempty"` // the connector's version
	OS      string `json:"os,omitempty"`      // e.g. "linux/amd64"
	Host    string `json:"host,omitempty"`    // its host name
	// Services describes what the connector serves, by name (for example
	// "directory" and "keys").
	Services map[string]ServiceInfo `json:"services,omitempty"`
}

// ServiceInfo is one service of a [ConnectorInfo].
type ServiceInfo struct {
	// Configured reports whether the service is set up on the connector.
	Configured bool `json:"configured"`
	// Versions lists versions of what the service holds, such as the KEK
	// versions loaded.
	Versions []uint32 `json:"versions,omitempty"`
	// Last is the outcome of the service's last real operation; nil
	// before the first.
	Last *Outcome `json:"last,omitempty"`
}

// Outcome is the result of one real operation of a service.
type Outcome struct {
	Op string    `json:"op"` // the operation, e.g. "lookup"
	At time.Time `json:"at"` // when it finished
	// OK reports success: the service reached what it depends on and
	// answered (an answer such as "no such user" is a success).
	OK bool `json:"ok"`
	// Unavailable reports that the service could not use what it
	// depends on (a refused bind, an unreachable server).
	Unavailable bool `json:"unavailable,omitempty"`
	// Error is the failure's message; empty when OK.
	Error string `json:"error,omitempty"`
}

// InfoEvent reports that a session's connector published new info. Events
// are coalesced per session: a handler sees the latest info, not every
// intermediate one.
type InfoEvent struct {
	Tenant      string
	ConnectorID string
	NodeID      string
	Info        ConnectorInfo
	At          time.Time // when the gateway received it
}

// ErrInfoTooLarge is returned by [Connector.SetInfo] when the encoded info
// exceeds [MaxInfoSize].
var ErrInfoTooLarge = errors.New("tunnel: connector info exceeds MaxInfoSize")

// publishedInfo is the latest info a gateway session received.
type publishedInfo struct {
	info ConnectorInfo
	at   time.Time
}

// parseInfo decodes an INFO payload. Anything but one JSON object of at
// most MaxInfoSize bytes is a protocol error.
func parseInfo(p []byte) (ConnectorInfo, error) {
	var info ConnectorInfo
	if len(p) > MaxInfoSize {
		return info, protocolErrorf("info payload of %d bytes", len(p))
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if err := dec.Decode(&info); err != nil {
		return ConnectorInfo{}, protocolErrorf("bad info payload: %v", err)
	}
	if dec.More() {
		return ConnectorInfo{}, protocolErrorf("bad info payload: trailing data")
	}
	return info, nil
}

// handleInfo stores an INFO frame's info on a gateway session and posts
// one event unless one is already pending.
func (s *Session) handleInfo(p []byte) error {
	if !s.cfg.gateway {
		return protocolErrorf("info from gateway")
	}
	info, err := parseInfo(p)
	if err != nil {
		return err
	}
	s.info.Store(&publishedInfo{info: info, at: s.cfg.now()})
	if s.cfg.onInfo != nil && s.infoPending.CompareAndSwap(false, true) {
		s.cfg.onInfo(s)
	}
	return nil
}

// Info returns the latest info the session's connector published, the
// time the gateway received it, and false if it published none.
func (s *Session) Info() (ConnectorInfo, time.Time, bool) {
	p := s.info.Load()
	if p == nil {
		return ConnectorInfo{}, time.Time{}, false
	}
	return p.info, p.at, true
}

// postInfo queues an InfoEvent for s on the gateway's event goroutine; the
// event carries the info current when it runs.
func (g *Gateway) postInfo(s *Session) {
	f := g.cfg.OnInfo
	if f == nil {
		s.infoPending.Store(false)
		return
	}
	g.events.post(func() {
		s.infoPending.Store(false)
		info, at, ok := s.Info()
		if !ok {
			return
		}
		f(InfoEvent{Tenant: s.Tenant(), ConnectorID: s.ConnectorID(), NodeID: g.cfg.NodeID, Info: info, At: at})
	})
}

// ConnectorInfo returns the latest info published by a live session of
// the connector on this gateway (the most recently received when it has
// several), the time it arrived, and false when no live session here
// published any.
func (g *Gateway) ConnectorInfo(connectorID string) (ConnectorInfo, time.Time, bool) {
	var best *publishedInfo
	for _, s := range g.sessionsOf(connectorID) {
		if p := s.info.Load(); p != nil && (best == nil || p.at.After(best.at)) {
			best = p
		}
	}
	if best == nil {
		return ConnectorInfo{}, time.Time{}, false
	}
	return best.info, best.at, true
}

// infoPublisher is the connector's side: the latest encoded info and the
// live session it goes to.
type infoPublisher struct {
	mu      sync.Mutex
	payload []byte   // encoded info; nil before SetInfo
	sess    *Session // the newest live session, or nil
}

// SetInfo publishes info to the gateway: at once on the live session (if
// the encoded info changed), and after each later HELLO. It never blocks
// on the network; a session too congested to queue it gets it with its
// next change or on reconnect. It returns [ErrInfoTooLarge] when the
// encoding exceeds MaxInfoSize.
func (c *Connector) SetInfo(info ConnectorInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("tunnel: connector info: %w", err)
	}
	if len(b) > MaxInfoSize {
		return ErrInfoTooLarge
	}
	p := &c.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	if bytes.Equal(b, p.payload) {
		return nil
	}
	p.payload = b
	if p.sess != nil {
		p.sess.sendInfo(b)
	}
	return nil
}

// attachInfo makes s the session info goes to and sends it the current
// info; Run calls it for each new session.
func (c *Connector) attachInfo(s *Session) {
	p := &c.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sess = s
	if p.payload != nil {
		s.sendInfo(p.payload)
	}
}

// detachInfo forgets s once it ended.
func (c *Connector) detachInfo(s *Session) {
	p := &c.pub
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == s {
		p.sess = nil
	}
}

// sendInfo queues one INFO frame without blocking.
func (s *Session) sendInfo(payload []byte) {
	b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
	putHeader(b, frameInfo, flagIgnorable, 0)
	s.writeAsync(append(b, payload...), true)
}
