package keyenvelope

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
)

// EkeySize is the size of an ekey in bytes.
const EkeySize = 32

// EkeyID identifies an ekey. It is random, public, and carried in clear
// (but authenticated) in every envelope that holds the ekey.
type EkeyID [16]byte

// String returns the ID in lowercase hex.
func (id EkeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseEkeyID parses the lowercase or uppercase hex form of an EkeyID.
func ParseEkeyID(s string) (EkeyID, error) {
	var id EkeyID
	if len(s) != 2*len(id) {
		return id, errors.New("keyenvelope: ekey id must be 32 hex digits")
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, errors.New("keyenvelope: ekey id must be 32 hex digits")
	}
	return id, nil
}

// Ekey is a per-user data key: 32 random bytes and a random ID. The caller
// uses Key with an AEAD of its choice to encrypt user data, and calls Zero
// when done with it.
type Ekey struct {
	ID  EkeyID
	Key [EkeySize]byte
}

// NewEkey returns a fresh ekey read from rand, or from crypto/rand when rand
// is nil.
func NewEkey(rand io.Reader) (*Ekey, error) {
	e := new(Ekey)
	if _, err := io.ReadFull(randOrDefault(rand), e.ID[:]); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	if _, err := io.ReadFull(randOrDefault(rand), e.Key[:]); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	return e, nil
}

// Zero overwrites the key bytes. See "Zeroing" in the package docs for what
// Go does and does not let this guarantee.
func (e *Ekey) Zero() {
	if e != nil {
		clear(e.Key[:])
	}
}

// Context is what an ekey is bound to. It is authenticated as associated data
// by every wrap and seal; unwrapping with a different context fails.
// Tenant and User must be non-empty; every field is at most 65535 bytes.
type Context struct {
	Tenant  string
	User    string
	Purpose string // for example "backup"; may be empty
}

// ErrInvalidContext is returned when a Context is empty or too long.
var ErrInvalidContext = errors.New("keyenvelope: invalid context")

func (c Context) validate() error {
	if c.Tenant == "" || c.User == "" {
		return fmt.Errorf("%w: tenant and user are required", ErrInvalidContext)
	}
	if len(c.Tenant) > maxField || len(c.User) > maxField || len(c.Purpose) > maxField {
		return fmt.Errorf("%w: field longer than %d bytes", ErrInvalidContext, maxField)
	}
	return nil
}

const maxField = 0xffff

// appendAAD appends the associated-data encoding of (c, id): each of tenant,
// user, ekey ID and purpose as a big-endian uint16 length then the bytes.
func appendAAD(b []byte, c Context, id EkeyID) []byte {
	b = appendField(b, []byte(c.Tenant))
	b = appendField(b, []byte(c.User))
	b = appendField(b, id[:])
	b = appendField(b, []byte(c.Purpose))
	return b
}

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
	return append(b, f...)
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// lockedReader serializes reads from a caller-supplied randomness source,
// which (unlike crypto/rand.Reader) need not be safe for concurrent use.
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
