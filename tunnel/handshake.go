package tunnel

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math"
)

// sealOverhead is what sealing adds to a WebSocket message: the AES-GCM tag.
const sealOverhead = 16

// maxSealed is the number of messages one direction of a session seals
// before the session closes (the connector reconnects with fresh keys).
const maxSealed = 1 << 40

// errOpen is the one error for a message that does not open: flipped,
// injected, replayed, reordered or after a dropped message.
var errOpen = errors.New("tunnel: message authentication failed")

// sealer seals or opens one direction of a session's messages with
// AES-256-GCM and a 96-bit counter nonce. Only one goroutine uses a sealer
// at a time: the session's writer role or its read loop.
type sealer struct {
	aead  cipher.AEAD
	seq   uint64
	nonce [12]byte
	// plainFrom is the first message that passes unsealed: on a TLS-bound
	// session every message after the key confirmation (SPEC.md "Sealed
	// messages"); math.MaxUint64 otherwise
	plainFrom uint64
}

func newSealer(key []byte) *sealer {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("tunnel: sealer key: " + err.Error()) // keys are always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("tunnel: sealer: " + err.Error())
	}
	return &sealer{aead: aead, plainFrom: math.MaxUint64}
}

// newSessionSealers makes a session's two sealers. On a TLS-bound session
// each direction's messages pass unsealed from plainTx and plainRx on:
// the gateway's first message, the key confirmation, stays sealed.
func newSessionSealers(txKey, rxKey []byte, bound bool, plainTx, plainRx uint64) (tx, rx *sealer) {
	tx, rx = newSealer(txKey), newSealer(rxKey)
	if bound {
		tx.plainFrom, rx.plainFrom = plainTx, plainRx
	}
	return tx, rx
}

// plain reports whether the session's messages in this direction pass
// unsealed now. Only the sealer's user may call it.
func (s *sealer) plain() bool { return s.seq >= s.plainFrom }

// bound reports whether the sealer belongs to a TLS-bound session; set at
// construction, so safe to read from any goroutine.
func (s *sealer) bound() bool { return s.plainFrom != math.MaxUint64 }

func (s *sealer) next() ([]byte, error) {
	if s.seq >= maxSealed {
		return nil, errors.New("tunnel: session sealed its message limit; reconnecting renews keys")
	}
	binary.BigEndian.PutUint64(s.nonce[4:], s.seq)
	s.seq++
	return s.nonce[:], nil
}

// seal appends the sealed form of msg to dst.
func (s *sealer) seal(dst, msg []byte) ([]byte, error) {
	if s.plain() {
		return append(dst, msg...), nil
	}
	n, err := s.next()
	if err != nil {
		return nil, err
	}
	return s.aead.Seal(dst, n, msg, nil), nil
}

// open opens a sealed message in place and returns the plaintext, a prefix
// of buf.
func (s *sealer) open(buf []byte) ([]byte, error) {
	if s.plain() {
		return buf, nil
	}
	if len(buf) < sealOverhead {
		return nil, errOpen
	}
	n, err := s.next()
	if err != nil {
		return nil, err
	}
	out, err := s.aead.Open(buf[:0], n, buf, nil)
	if err != nil {
		return nil, errOpen
	}
	return out, nil
}

// TLS binding (SPEC.md "Sealed messages"): each side's HELLO carries a value
// exported from its own TLS 1.3 connection (RFC 8446 §7.5). Equal values
// mean one TLS connection runs from the connector to the gateway, with no
// party in between that terminates it, since a TLS-inspecting proxy runs
// two connections with different secrets and transcripts. Both HELLOs are
// signed (by the cloud key, by the enrolled key), so neither value can be
// rewritten on the way.
const (
	tlsBindLabel = "EXPORTER-liaison-tunnel-v2 tls binding"
	tlsBindSize  = 32
)

// tlsBinding returns the binding of a TLS 1.3 connection, nil for none
// (plain HTTP, TLS 1.2, or TLS ended before this process).
func tlsBinding(cs *tls.ConnectionState) []byte {
	if cs == nil || !cs.HandshakeComplete || cs.Version != tls.VersionTLS13 {
		return nil
	}
	b, err := cs.ExportKeyingMaterial(tlsBindLabel, nil, tlsBindSize)
	if err != nil {
		return nil
	}
	return b
}

// tlsBound reports whether a session runs over one end-to-end TLS
// connection: both HELLOs carry featureTLSBound (features is what both
// carry) and the peer's signed binding equals this side's own.
func tlsBound(features uint64, mine, peers []byte) bool {
	return features&featureTLSBound != 0 && len(mine) == tlsBindSize && subtle.ConstantTimeCompare(mine, peers) == 1
}

// Handshake labels (SPEC.md "Handshake").
const (
	labelGatewayHello   = "liaison-tunnel-v2 gateway hello\x00"
	labelConnectorHello = "liaison-tunnel-v2 connector hello\x00"
	labelTranscript     = "liaison-tunnel-v2 transcript\x00"
	labelGatewayToConn  = "liaison-tunnel-v2 gateway to connector"
	labelConnToGateway  = "liaison-tunnel-v2 connector to gateway"
)

// gatewaySigned is what the gateway signs: its HELLO (up to the signature)
// bound to the connect token of this very connection.
func gatewaySigned(token string, signedPart []byte) []byte {
	th := sha256.Sum256([]byte(token))
	m := make([]byte, 0, len(labelGatewayHello)+32+len(signedPart))
	m = append(m, labelGatewayHello...)
	m = append(m, th[:]...)
	return append(m, signedPart...)
}

// connectorSigned is what the connector signs: the token, the gateway's
// whole HELLO and its own HELLO up to the signature.
func connectorSigned(token string, gatewayHello, signedPart []byte) []byte {
	th := sha256.Sum256([]byte(token))
	gh := sha256.Sum256(gatewayHello)
	m := make([]byte, 0, len(labelConnectorHello)+64+len(signedPart))
	m = append(m, labelConnectorHello...)
	m = append(m, th[:]...)
	m = append(m, gh[:]...)
	return append(m, signedPart...)
}

// sessionKeys derives the two directional keys from the ephemeral X25519
// exchange, salted with the transcript hash of both HELLOs and the token.
func sessionKeys(priv *ecdh.PrivateKey, peerShare []byte, token string, gatewayHello, connectorHello []byte) (g2c, c2g []byte, err error) {
	peer, err := ecdh.X25519().NewPublicKey(peerShare)
	if err != nil {
		return nil, nil, errors.New("bad key share")
	}
	shared, err := priv.ECDH(peer)
	if err != nil {
		return nil, nil, errors.New("bad key share")
	}
	h := sha256.New()
	h.Write([]byte(labelTranscript))
	th := sha256.Sum256([]byte(token))
	h.Write(th[:])
	gh := sha256.Sum256(gatewayHello)
	h.Write(gh[:])
	ch := sha256.Sum256(connectorHello)
	h.Write(ch[:])
	salt := h.Sum(nil)
	if g2c, err = hkdf.Key(sha256.New, shared, salt, labelGatewayToConn, 32); err != nil {
		return nil, nil, err
	}
	if c2g, err = hkdf.Key(sha256.New, shared, salt, labelConnToGateway, 32); err != nil {
		return nil, nil, err
	}
	return g2c, c2g, nil
}

// gatewayHelloPayload builds the gateway's signed HELLO payload.
func gatewayHelloPayload(params hello, share []byte, id *GatewayIdentity, token string) []byte {
	params.keyShare = share
	p := params.appendTo(make([]byte, 0, 256))
	sig := ed25519.Sign(id.signing, gatewaySigned(token, p))
	return appendHelloSig(p, sig)
}

// connectorHelloPayload builds the connector's signed HELLO payload.
func connectorHelloPayload(key crypto.Signer, r io.Reader, share []byte, features uint64, binding []byte, token string, gatewayHello []byte) ([]byte, error) {
	mine := hello{major: ProtocolMajor, minor: ProtocolMinor, features: features, keyShare: share, tlsBind: binding}
	p := mine.appendTo(make([]byte, 0, 160))
	sig, err := key.Sign(r, connectorSigned(token, gatewayHello, p), crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	return appendHelloSig(p, sig), nil
}
