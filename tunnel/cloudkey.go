package tunnel

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// GatewayIdentity is the cloud's long-term key pair: an Ed25519 key that
// signs every session handshake and enrollment answer, and an X25519 key
// enrollment tokens are sealed to. Both are derived from one 32-byte seed,
// so an embedder persists a single secret (0600, never in logs) and every
// gateway node of one cloud shares it. Connectors pin the public half
// ([CloudKey]) when they enroll: a restart with the same seed changes no
// key a connector pinned; a new seed makes every enrolled connector refuse
// the gateway with [ErrCloudKeyMismatch] until it is re-enrolled.
type GatewayIdentity struct {
	seed    [SeedSize]byte
	signing ed25519.PrivateKey
	sealing *ecdh.PrivateKey
	public  CloudKey
}

// SeedSize is the length of a GatewayIdentity seed.
const SeedSize = 32

// CloudKeySize is the length of a [CloudKey].
const CloudKeySize = ed25519.PublicKeySize + 32

const (
	keyShareSize  = 32
	signatureSize = ed25519.SignatureSize
)

// NewGatewayIdentity derives the identity from a 32-byte secret seed.
func NewGatewayIdentity(seed []byte) (*GatewayIdentity, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("tunnel: gateway identity seed must be %d bytes, got %d", SeedSize, len(seed))
	}
	edSeed, err := hkdf.Key(sha256.New, seed, nil, "liaison cloud identity v1 ed25519", ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("tunnel: gateway identity: %w", err)
	}
	xSeed, err := hkdf.Key(sha256.New, seed, nil, "liaison cloud identity v1 x25519", 32)
	if err != nil {
		return nil, fmt.Errorf("tunnel: gateway identity: %w", err)
	}
	sealing, err := ecdh.X25519().NewPrivateKey(xSeed)
	if err != nil {
		return nil, fmt.Errorf("tunnel: gateway identity: %w", err)
	}
	id := &GatewayIdentity{signing: ed25519.NewKeyFromSeed(edSeed), sealing: sealing}
	copy(id.seed[:], seed)
	id.public = make(CloudKey, 0, CloudKeySize)
	id.public = append(id.public, id.signing.Public().(ed25519.PublicKey)...)
	id.public = append(id.public, sealing.PublicKey().Bytes()...)
	return id, nil
}

// GenerateGatewayIdentity makes a new identity from r (nil: crypto/rand).
// Persist its [GatewayIdentity.Seed] and load it with NewGatewayIdentity.
func GenerateGatewayIdentity(r io.Reader) (*GatewayIdentity, error) {
	if r == nil {
		r = rand.Reader
	}
	var seed [SeedSize]byte
	if _, err := io.ReadFull(r, seed[:]); err != nil {
		return nil, fmt.Errorf("tunnel: generate gateway identity: %w", err)
	}
	return NewGatewayIdentity(seed[:])
}

// Seed returns a copy of the secret seed, to persist.
func (id *GatewayIdentity) Seed() []byte { return append([]byte(nil), id.seed[:]...) }

// Public returns the public half connectors pin.
func (id *GatewayIdentity) Public() CloudKey { return append(CloudKey(nil), id.public...) }

// Fingerprint is Public().Fingerprint().
func (id *GatewayIdentity) Fingerprint() string { return id.public.Fingerprint() }

// CloudKey is the public half of a [GatewayIdentity]: the Ed25519 public
// key (32 bytes) followed by the X25519 public key (32 bytes). A connector
// pins it at enrollment and keeps it in its [Identity].
type CloudKey []byte

// Fingerprint returns the human-comparable form of the key,
// "SHA256:" and the unpadded base64 of its SHA-256 (as OpenSSH prints host
// keys). Enrollment tokens carry the same hash.
func (k CloudKey) Fingerprint() string {
	h := k.hash()
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

func (k CloudKey) hash() [32]byte {
	h := sha256.New()
	h.Write([]byte("liaison cloud key v1\x00"))
	h.Write(k)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// check validates the key's length and its X25519 half.
func (k CloudKey) check() error {
	if len(k) != CloudKeySize {
		return fmt.Errorf("tunnel: cloud key must be %d bytes, got %d", CloudKeySize, len(k))
	}
	if _, err := ecdh.X25519().NewPublicKey(k[32:]); err != nil {
		return errors.New("tunnel: cloud key: bad X25519 key")
	}
	return nil
}

func (k CloudKey) signing() ed25519.PublicKey { return ed25519.PublicKey(k[:32]) }

func (k CloudKey) sealing() (*ecdh.PublicKey, error) { return ecdh.X25519().NewPublicKey(k[32:]) }

// SignStatement signs data with the identity's Ed25519 key for one named
// purpose, so a connector can check, with the key it pinned at enrollment,
// something the cloud hands it over an untrusted path (for example the
// public key that signs job tickets). Signatures for one purpose never
// verify for another, nor as a handshake or enrollment signature.
func (id *GatewayIdentity) SignStatement(purpose string, data []byte) []byte {
	return ed25519.Sign(id.signing, statement(purpose, data))
}

// VerifyStatement reports whether sig is the cloud's [GatewayIdentity.SignStatement]
// of data for purpose.
func (k CloudKey) VerifyStatement(purpose string, data, sig []byte) bool {
	if len(k) != CloudKeySize {
		return false
	}
	return ed25519.Verify(k.signing(), statement(purpose, data), sig)
}

func statement(purpose string, data []byte) []byte {
	m := append([]byte("liaison cloud statement v1\x00"), binary.AppendUvarint(nil, uint64(len(purpose)))...)
	m = append(m, purpose...)
	return append(m, data...)
}
