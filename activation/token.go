package activation

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// TokenPrefix starts every mass-deployment token, so that secret scanners
// and people can recognise one.
const TokenPrefix = "lmd_"

const (
	tokenIDSize     = 16 // public selector: looks the record up
	tokenSecretSize = 32 // verifier: 256 bits, only its SHA-256 is stored
	tokenCRCSize    = 4  // catches typos before any store lookup
	tokenRawSize    = tokenIDSize + tokenSecretSize + tokenCRCSize
	// TokenLen is the exact length of a token's text form.
	TokenLen = len(TokenPrefix) + (tokenRawSize*8+5)/6
)

// ParsedToken is the result of [ParseToken]: the public ID that selects the
// stored record, and the secret that must match its hash.
type ParsedToken struct {
	// ID is the token's public identifier (32 hex digits). It is not secret:
	// admins see it in listings and revoke by it.
	ID     string
	secret [tokenSecretSize]byte
}

// ParseToken parses the text form of a mass-deployment token strictly: the
// exact prefix, the exact length, unpadded base64url in canonical form and a
// valid checksum. It returns an error wrapping [ErrTokenMalformed] for
// anything else and never looks at a store.
func ParseToken(s string) (ParsedToken, error) {
	if len(s) != TokenLen || s[:len(TokenPrefix)] != TokenPrefix {
		return ParsedToken{}, fmt.Errorf("%w: bad prefix or length", ErrTokenMalformed)
	}
	var raw [tokenRawSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(s[len(TokenPrefix):]))
	if err != nil || n != tokenRawSize {
		return ParsedToken{}, fmt.Errorf("%w: bad encoding", ErrTokenMalformed)
	}
	body := raw[:tokenIDSize+tokenSecretSize]
	want := crc32.Checksum(body, crcTable())
	got := uint32(raw[tokenRawSize-4])<<24 | uint32(raw[tokenRawSize-3])<<16 | uint32(raw[tokenRawSize-2])<<8 | uint32(raw[tokenRawSize-1])
	if want != got {
		return ParsedToken{}, fmt.Errorf("%w: bad checksum", ErrTokenMalformed)
	}
	var p ParsedToken
	p.ID = hex.EncodeToString(raw[:tokenIDSize])
	copy(p.secret[:], raw[tokenIDSize:])
	return p, nil
}

// crcTable is Castagnoli, a checksum against typos, not a security
// measure. MakeTable caches it.
func crcTable() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) }

// newToken draws a fresh token from rand and returns its text form, its ID
// and the hash to store.
func newToken(rand io.Reader) (text, id string, hash [32]byte, err error) {
	var raw [tokenRawSize]byte
	if _, err := io.ReadFull(rand, raw[:tokenIDSize+tokenSecretSize]); err != nil {
		return "", "", hash, fmt.Errorf("activation: read random: %w", err)
	}
	c := crc32.Checksum(raw[:tokenIDSize+tokenSecretSize], crcTable())
	raw[tokenRawSize-4], raw[tokenRawSize-3], raw[tokenRawSize-2], raw[tokenRawSize-1] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	text = TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	id = hex.EncodeToString(raw[:tokenIDSize])
	hash = sha256.Sum256(raw[tokenIDSize : tokenIDSize+tokenSecretSize])
	return text, id, hash, nil
}

// matches reports, in constant time, whether the token's secret hashes to
// the stored hash.
func (p ParsedToken) matches(stored []byte) bool {
	h := sha256.Sum256(p.secret[:])
	return subtle.ConstantTimeCompare(h[:], stored) == 1
}

// TokenRecord is what a [TokenStore] keeps about a token: never the token
// itself, only the SHA-256 of its secret part.
type TokenRecord struct {
	ID        string // public identifier, as in [ParsedToken.ID]
	Tenant    string
	MappingID string // opaque to this package; passed to the [Directory]
	Hash      []byte // SHA-256 of the secret part
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while not revoked
}

// checkToken classifies a token against its stored record for a tenant.
// Unknown ID and wrong secret are the same error, so an attacker who guesses
// IDs learns nothing.
func checkToken(p ParsedToken, rec TokenRecord, found bool, tenant string, now time.Time) error {
	if !found || !p.matches(rec.Hash) {
		return ErrTokenUnknown
	}
	switch {
	case rec.Tenant != tenant:
		return ErrTokenWrongTenant
	case !rec.RevokedAt.IsZero() && !now.Before(rec.RevokedAt):
		return ErrTokenRevoked
	case !now.Before(rec.ExpiresAt):
		return ErrTokenExpired
	}
	return nil
}
