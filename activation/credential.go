package activation

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// CredentialPrefix starts every device credential.
const CredentialPrefix = "ldc1."

const (
	credentialMACContext = "liaison activation device credential v1\x00"
	maxCredentialLen     = 2048
)

// credentialClaims is what a device credential states: this device, with
// this public key, belongs to this user of this tenant since ActivatedAt.
type credentialClaims struct {
	Tenant      string
	DeviceID    string
	UserID      string
	PublicKey   ed25519.PublicKey
	ActivatedAt time.Time
}

// issueCredential computes the credential for d. It is a pure function of
// the key and the stored device, so a retried activation gets the very same
// credential and nothing secret has to be stored.
func issueCredential(key []byte, d Device) string {
	payload := appendClaims(nil, credentialClaims{d.Tenant, d.ID, d.UserID, d.PublicKey, d.ActivatedAt})
	mac := credentialMAC(key, payload)
	return CredentialPrefix + base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(mac)
}

func credentialMAC(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(credentialMACContext))
	m.Write(payload)
	return m.Sum(nil)
}

func appendClaims(b []byte, c credentialClaims) []byte {
	for _, s := range []string{c.Tenant, c.DeviceID, c.UserID} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = append(b, c.PublicKey...)
	return binary.BigEndian.AppendUint64(b, uint64(c.ActivatedAt.UnixNano()))
}

// verifyCredential checks the MAC and decodes the claims. Every failure is
// the one opaque ErrBadProof.
func verifyCredential(key []byte, s string) (credentialClaims, error) {
	bad := fmt.Errorf("%w: credential", ErrBadProof)
	if len(s) > maxCredentialLen || !strings.HasPrefix(s, CredentialPrefix) {
		return credentialClaims{}, bad
	}
	p64, m64, ok := strings.Cut(s[len(CredentialPrefix):], ".")
	if !ok {
		return credentialClaims{}, bad
	}
	payload, err1 := base64.RawURLEncoding.Strict().DecodeString(p64)
	mac, err2 := base64.RawURLEncoding.Strict().DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, credentialMAC(key, payload)) {
		return credentialClaims{}, bad
	}
	var c credentialClaims
	rest := payload
	var fields [3]string
	for i := range fields {
		if len(rest) < 2 {
			return credentialClaims{}, bad
		}
		n := int(binary.BigEndian.Uint16(rest))
		rest = rest[2:]
		if len(rest) < n {
			return credentialClaims{}, bad
		}
		fields[i], rest = string(rest[:n]), rest[n:]
	}
	if len(rest) != ed25519.PublicKeySize+8 {
		return credentialClaims{}, bad
	}
	c.Tenant, c.DeviceID, c.UserID = fields[0], fields[1], fields[2]
	c.PublicKey = ed25519.PublicKey(append([]byte(nil), rest[:ed25519.PublicKeySize]...))
	c.ActivatedAt = time.Unix(0, int64(binary.BigEndian.Uint64(rest[ed25519.PublicKeySize:])))
	return c, nil
}
