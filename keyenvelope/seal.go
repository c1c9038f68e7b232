package keyenvelope

import (
	"crypto/hpke"
	"fmt"
)

// PublicKey is a keyring's HPKE public key for one KEK version and suite,
// the target of the offline path ([SealToKeyring]). Its binary form is a
// KindPublicKey envelope; its text form starts with "kenv1.".
type PublicKey struct {
	KeyringID [16]byte
	Version   uint32
	Suite     Suite
	key       hpke.PublicKey
}

// PublicKey returns the public key of the primary version for suite
// ([SuiteX25519] or [SuiteXWing]). Both are derived from the KEK version's
// secret, so the KEK file stores nothing more.
func (k *Keyring) PublicKey(s Suite) (*PublicKey, error) {
	if _, _, _, ok := s.hpkeKEM(); !ok {
		return nil, fmt.Errorf("keyenvelope: %v is not a public-key suite", s)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	v := k.lookup(k.primary)
	priv, err := v.hpkeKey(k.id, s)
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: derive key pair: %w", err)
	}
	return &PublicKey{KeyringID: k.id, Version: v.version, Suite: s, key: priv.PublicKey()}, nil
}

func (p *PublicKey) header() Header {
	return Header{Version: formatVersion, Kind: KindPublicKey, Suite: p.Suite, KeyID: p.KeyringID, KeyVersion: p.Version}
}

// Bytes returns the binary form.
func (p *PublicKey) Bytes() []byte {
	return append(p.header().append(nil), p.key.Bytes()...)
}

// String returns the text form.
func (p *PublicKey) String() string { return EncodeText(p.Bytes()) }

// ParsePublicKey parses the binary form of a [PublicKey] strictly. It
// returns [ErrMalformed].
func ParsePublicKey(b []byte) (*PublicKey, error) {
	env, ok := parseEnvelope(b)
	if !ok || env.h.Kind != KindPublicKey {
		return nil, ErrMalformed
	}
	kem, _, _, _ := env.h.Suite.hpkeKEM()
	pk, err := kem.NewPublicKey(env.pk)
	if err != nil {
		return nil, ErrMalformed
	}
	return &PublicKey{KeyringID: env.h.KeyID, Version: env.h.KeyVersion, Suite: env.h.Suite, key: pk}, nil
}

// SealToKeyring seals e to a keyring's public key, bound to c, and returns
// a KindSealed envelope that [Keyring.Unwrap] and [Keyring.Rewrap] accept.
//
// This is the offline path for new users: whoever calls it (the cloud, when
// no connector is reachable) saw the ekey once. Rewrap the result as soon as
// a connector is back, and prefer [Keyring.GenerateWrapped] whenever one is
// reachable.
func SealToKeyring(pub *PublicKey, c Context, e *Ekey) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	h := Header{Version: formatVersion, Kind: KindSealed, Suite: pub.Suite, KeyID: pub.KeyringID, KeyVersion: pub.Version}
	raw := h.append(nil)
	enc, s, err := hpke.NewSender(pub.key, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelSealed, raw, e.ID[:]))
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: hpke: %w", err)
	}
	aad := appendAAD(append(make([]byte, 0, 128), raw...), c, e.ID)
	ct, err := s.Seal(aad, e.Key[:])
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: hpke: %w", err)
	}
	out := make([]byte, 0, len(raw)+16+len(enc)+len(ct))
	out = append(out, raw...)
	out = append(out, e.ID[:]...)
	out = append(out, enc...)
	return append(out, ct...), nil
}
