package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors returned by parsing and unwrapping.
var (
	// ErrUnwrap is the one error returned for every failure to unwrap, open
	// or release an ekey, and to open a KEK file: malformed or tampered
	// input, wrong context, wrong or unknown key, disabled or destroyed KEK
	// version, wrong passphrase. It never says which.
	ErrUnwrap = errors.New("keyenvelope: unwrap failed")

	// ErrMalformed is returned by the functions that only parse public
	// structure ([Inspect], [DecodeText], [ParsePublicKey]).
	ErrMalformed = errors.New("keyenvelope: malformed envelope")
)

// Kind says what an envelope holds. See the package docs for each layout.
type Kind uint8

// Envelope kinds.
const (
	KindWrap      Kind = 1 // an ekey wrapped under a symmetric KEK version
	KindSealed    Kind = 2 // an ekey sealed with HPKE to a keyring's public key
	KindRelease   Kind = 3 // an ekey sealed with HPKE to a backup worker, for one ticket
	KindPublicKey Kind = 4 // a keyring's public key, for the offline path
	kindKEKFile   Kind = 5 // a passphrase-protected keyring (KEK file)
	kindKeyring   Kind = 6 // a keyring in clear (escrow payload)
	kindTicket    Kind = 7 // a job ticket without a job purpose: parsed, never verified
	kindJobTicket Kind = 8 // a job ticket signed by the scheduler, naming its job purpose
)

func (k Kind) String() string {
	switch k {
	case KindWrap:
		return "wrap"
	case KindSealed:
		return "sealed"
	case KindRelease:
		return "release"
	case KindPublicKey:
		return "public-key"
	case kindKEKFile:
		return "kek-file"
	case kindKeyring:
		return "keyring"
	case kindTicket:
		return "ticket-unpurposed"
	case kindJobTicket:
		return "ticket"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Suite names the algorithms of an envelope.
type Suite uint16

// Suites.
const (
	// SuiteWrap: HKDF-SHA256 → AES-256-GCM key + 32-byte key commitment.
	// Used by KindWrap and the KEK file (with Argon2id in front).
	SuiteWrap Suite = 0x0001
	// SuiteX25519: HPKE base mode, DHKEM(X25519, HKDF-SHA256) (0x0020),
	// HKDF-SHA256 (0x0001), AES-256-GCM (0x0002).
	SuiteX25519 Suite = 0x0010
	// SuiteXWing: HPKE base mode, ML-KEM-768+X25519 hybrid "X-Wing"
	// (0x647a), HKDF-SHA256 (0x0001), AES-256-GCM (0x0002).
	SuiteXWing Suite = 0x0011
)

func (s Suite) String() string {
	switch s {
	case SuiteWrap:
		return "hkdf-sha256+aes-256-gcm+commit"
	case SuiteX25519:
		return "hpke-x25519-hkdf-sha256-aes-256-gcm"
	case SuiteXWing:
		return "hpke-mlkem768x25519-hkdf-sha256-aes-256-gcm"
	}
	return fmt.Sprintf("suite(0x%04x)", uint16(s))
}

// hpkeSuite returns the HPKE KEM and the sizes of enc and public keys.
func (s Suite) hpkeKEM() (kem hpke.KEM, encSize, pkSize int, ok bool) {
	switch s {
	case SuiteX25519:
		return hpke.DHKEM(ecdh.X25519()), 32, 32, true
	case SuiteXWing:
		return hpke.MLKEM768X25519(), 1120, 1216, true
	}
	return nil, 0, 0, false
}

func suiteForKEM(id uint16) (Suite, bool) {
	switch id {
	case 0x0020:
		return SuiteX25519, true
	case 0x647a:
		return SuiteXWing, true
	}
	return 0, false
}

const (
	magic         = "KENV"
	formatVersion = 1
	prefixSize    = 8                   // magic, version, kind, suite
	headerSize    = prefixSize + 16 + 4 // + key ID + key version
	saltSize      = 32
	commitSize    = 32
	tagSize       = 16
	ekeyCTSize    = EkeySize + tagSize
	textPrefix    = "kenv1."
	maxTextLen    = 8192
)

// Header is the authenticated, public header of an envelope.
type Header struct {
	Version    uint8
	Kind       Kind
	Suite      Suite
	KeyID      [16]byte // KEK ID (keyring ID); for KindRelease, the ticket ID
	KeyVersion uint32   // KEK version; 0 for KindRelease
}

func (h Header) append(b []byte) []byte {
	b = append(b, magic...)
	b = append(b, h.Version, byte(h.Kind))
	b = binary.BigEndian.AppendUint16(b, uint16(h.Suite))
	b = append(b, h.KeyID[:]...)
	return binary.BigEndian.AppendUint32(b, h.KeyVersion)
}

// parsePrefix checks magic and version and returns kind and suite.
func parsePrefix(b []byte) (Kind, Suite, bool) {
	if len(b) < prefixSize || string(b[:4]) != magic || b[4] != formatVersion {
		return 0, 0, false
	}
	return Kind(b[5]), Suite(binary.BigEndian.Uint16(b[6:8])), true
}

// envelope is a parsed KindWrap, KindSealed, KindRelease or KindPublicKey
// object. Slices alias the input.
type envelope struct {
	h      Header
	raw    []byte // the header bytes, as received
	ekeyID EkeyID // KindWrap, KindSealed
	salt   []byte // KindWrap
	commit []byte // KindWrap
	enc    []byte // KindSealed, KindRelease
	ct     []byte // KindWrap, KindSealed, KindRelease
	pk     []byte // KindPublicKey
}

// parseEnvelope parses the binary form strictly: known version, kind and
// suite, exact length for that kind and suite, nothing trailing.
func parseEnvelope(b []byte) (envelope, bool) {
	kind, suite, ok := parsePrefix(b)
	if !ok || len(b) < headerSize {
		return envelope{}, false
	}
	e := envelope{raw: b[:headerSize]}
	e.h = Header{Version: b[4], Kind: kind, Suite: suite, KeyVersion: binary.BigEndian.Uint32(b[24:28])}
	copy(e.h.KeyID[:], b[8:24])
	rest := b[headerSize:]
	switch kind {
	case KindWrap:
		if suite != SuiteWrap || len(rest) != 16+saltSize+commitSize+ekeyCTSize || e.h.KeyVersion == 0 {
			return envelope{}, false
		}
		copy(e.ekeyID[:], rest[:16])
		e.salt = rest[16 : 16+saltSize]
		e.commit = rest[16+saltSize : 16+saltSize+commitSize]
		e.ct = rest[16+saltSize+commitSize:]
	case KindSealed:
		_, encSize, _, ok := suite.hpkeKEM()
		if !ok || len(rest) != 16+encSize+ekeyCTSize || e.h.KeyVersion == 0 {
			return envelope{}, false
		}
		copy(e.ekeyID[:], rest[:16])
		e.enc = rest[16 : 16+encSize]
		e.ct = rest[16+encSize:]
	case KindRelease:
		_, encSize, _, ok := suite.hpkeKEM()
		if !ok || len(rest) != encSize+ekeyCTSize || e.h.KeyVersion != 0 {
			return envelope{}, false
		}
		e.enc = rest[:encSize]
		e.ct = rest[encSize:]
	case KindPublicKey:
		_, _, pkSize, ok := suite.hpkeKEM()
		if !ok || len(rest) != pkSize || e.h.KeyVersion == 0 {
			return envelope{}, false
		}
		e.pk = rest
	default:
		return envelope{}, false
	}
	return e, true
}

// Inspect parses an envelope in binary form strictly and returns its public
// header, for example to find wrapped ekeys that are not yet under the
// primary KEK version. It does not authenticate anything: a header returned
// by Inspect is only a claim until an unwrap succeeds. It returns
// [ErrMalformed] for anything that is not a well-formed envelope.
func Inspect(b []byte) (Header, EkeyID, error) {
	e, ok := parseEnvelope(b)
	if !ok {
		return Header{}, EkeyID{}, ErrMalformed
	}
	return e.h, e.ekeyID, nil
}

var b64 = base64.RawURLEncoding.Strict()

// EncodeText returns the text form of a binary object: "kenv1." followed by
// unpadded base64url.
func EncodeText(b []byte) string {
	return textPrefix + b64.EncodeToString(b)
}

// DecodeText is the strict inverse of [EncodeText]: it refuses a missing or
// different prefix, padding, whitespace, characters outside the base64url
// alphabet and non-canonical encodings (non-zero trailing bits). It checks
// only the encoding, not the object; it returns [ErrMalformed].
func DecodeText(s string) ([]byte, error) {
	return decodeText([]byte(s), maxTextLen)
}

// decodeText works on bytes so that secret-bearing text (an escrow export)
// is never copied into an immutable string.
func decodeText(s []byte, max int) ([]byte, error) {
	body, ok := bytes.CutPrefix(s, []byte(textPrefix))
	if !ok || len(s) > max {
		return nil, ErrMalformed
	}
	out := make([]byte, b64.DecodedLen(len(body)))
	n, err := b64.Decode(out, body)
	if err != nil {
		clear(out)
		return nil, ErrMalformed
	}
	out = out[:n]
	// The decoder skips CR and LF; re-encoding catches them and any other
	// non-canonical form.
	again := make([]byte, b64.EncodedLen(n))
	b64.Encode(again, out)
	canonical := bytes.Equal(again, body)
	clear(again)
	if !canonical {
		clear(out)
		return nil, ErrMalformed
	}
	return out, nil
}

// labels for domain separation; each is followed by a zero byte.
const (
	labelWrap    = "liaison/keyenvelope/v1 wrap"
	labelSealed  = "liaison/keyenvelope/v1 sealed"
	labelRelease = "liaison/keyenvelope/v1 release"
	labelKEKFile = "liaison/keyenvelope/v1 kek-file"
	labelHPKEKey = "liaison/keyenvelope/v1 hpke-keypair"
	labelTicket  = "liaison/keyenvelope/v1 ticket"
)

func labeled(label string, parts ...[]byte) []byte {
	n := len(label) + 1
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(b, label...)
	b = append(b, 0)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
