package directoryhttp

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Passwords of credential checks can travel sealed to the connector's
// X25519 key with HPKE (RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20-Poly1305), so a TLS-inspecting proxy between the
// cloud and the connector sees only ciphertext. The sealed payload binds the
// login name and the time of sealing: the handler refuses a payload moved to
// another name or replayed after [SealMaxAge].

// SealMaxAge is how old (or how far in the future, for clock skew) a sealed
// password may be when the handler opens it.
const SealMaxAge = 2 * time.Minute

// sealInfo is the HPKE info string: it separates these ciphertexts from
// any other use of the connector's key.
const sealInfo = "liaison directoryhttp credential v1"

// errSealed is the one opaque reason a sealed password is refused.
var errSealed = fmt.Errorf("%w: sealed password refused", ErrBadRequest)

type sealedPayload struct {
	Name     string `json:"n"`
	Password string `json:"p"`
	Time     int64  `json:"t"` // Unix seconds at sealing
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

// sealPassword seals name and password to pub, stamped with now.
func sealPassword(pub *ecdh.PublicKey, name, password string, now time.Time) (string, error) {
	if pub == nil || pub.Curve() != ecdh.X25519() {
		return "", errors.New("directoryhttp: connector key must be an X25519 public key")
	}
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("directoryhttp: connector key: %w", err)
	}
	pt, err := json.Marshal(sealedPayload{Name: name, Password: password, Time: now.Unix()})
	if err != nil {
		return "", err
	}
	kdf, aead := suite()
	ct, err := hpke.Seal(pk, kdf, aead, []byte(sealInfo), pt)
	clear(pt)
	if err != nil {
		return "", fmt.Errorf("directoryhttp: seal: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(ct), nil
}

// openPassword opens a sealed password for name. Every failure (bad
// encoding, wrong key, tampering, another name, too old) is errSealed.
func openPassword(priv *ecdh.PrivateKey, sealed, name string, now time.Time) (string, error) {
	ct, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(ct) > 64<<10 {
		return "", errSealed
	}
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return "", errSealed
	}
	kdf, aead := suite()
	pt, err := hpke.Open(k, kdf, aead, []byte(sealInfo), ct)
	if err != nil {
		return "", errSealed
	}
	defer clear(pt)
	var p sealedPayload
	if err := json.Unmarshal(pt, &p); err != nil || p.Name != name {
		return "", errSealed
	}
	if age := now.Sub(time.Unix(p.Time, 0)); age > SealMaxAge || age < -SealMaxAge {
		return "", errSealed
	}
	return p.Password, nil
}

// HandlerOption configures [NewHandler].
type HandlerOption func(*handler)

// WithPrivateKey makes the handler require sealed passwords: a credential
// check must carry its password sealed to k's public key (see
// [WithConnectorKey]); a plain password is refused. k must be an X25519 key.
func WithPrivateKey(k *ecdh.PrivateKey) HandlerOption {
	return func(h *handler) { h.key = k }
}

// ClientOption configures [NewClient].
type ClientOption func(*Client)

// WithConnectorKey makes the client seal every credential-check password
// to the connector's X25519 public key.
func WithConnectorKey(pub *ecdh.PublicKey) ClientOption {
	return func(c *Client) { c.key = pub }
}
