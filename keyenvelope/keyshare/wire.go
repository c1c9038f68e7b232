package keyshare

import (
	"crypto/ed25519"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Path is the route a connector serves a [Handler] at, below the root of
// its tunnel handler: the relay POSTs a [Sync] there and reads a [Reply].
const Path = "/keyshare/sync"

// Request is a connector's request for the keyring: its ID and the public
// keys the keyring is sealed to and its shares are signed with. The same
// shape lists the members a connector approved.
type Request struct {
	ConnectorID string `json:"connector_id"`
	SignKey     []byte `json:"sign_key"` // Ed25519 public key
	SealKey     []byte `json:"seal_key"` // X25519 public key
	Revoked     bool   `json:"revoked,omitempty"`
	// Fingerprint is informational (recomputed from the keys, never trusted).
	Fingerprint string `json:"fingerprint,omitempty"`
}

// Member is the request as a keyenvelope member.
func (r Request) Member() keyenvelope.Member {
	return keyenvelope.Member{ConnectorID: r.ConnectorID, SignKey: ed25519.PublicKey(r.SignKey), SealKey: r.SealKey, Revoked: r.Revoked}
}

// RequestOf is m as a Request, with its fingerprint.
func RequestOf(m keyenvelope.Member) Request {
	return Request{ConnectorID: m.ConnectorID, SignKey: m.SignKey, SealKey: m.SealKey, Revoked: m.Revoked, Fingerprint: m.Fingerprint()}
}

// Peer is a live connector of the tenant as the relay reports it: the
// keyring ID (hex) and KEK version numbers it last published, never key
// material.
type Peer struct {
	ConnectorID string   `json:"connector_id"`
	KeyringID   string   `json:"keyring_id,omitempty"`
	Versions    []uint32 `json:"versions,omitempty"`
	Primary     uint32   `json:"primary,omitempty"`
}

// Sync is the relay's POST to [Path]: the tenant's pending requests, the
// shares addressed to this connector, and the live (not revoked)
// connectors of the tenant.
type Sync struct {
	Requests []Request `json:"requests,omitempty"`
	Shares   [][]byte  `json:"shares,omitempty"`
	Peers    []Peer    `json:"peers,omitempty"`
}

// Reply is the connector's answer: its request while it waits for the
// keyring, else the keyring ID and versions it holds, and the shares it
// sealed for other connectors.
type Reply struct {
	Request   *Request `json:"request,omitempty"`
	KeyringID string   `json:"keyring_id,omitempty"`
	Versions  []uint32 `json:"versions,omitempty"`
	Primary   uint32   `json:"primary,omitempty"`
	Shares    [][]byte `json:"shares,omitempty"`
}
