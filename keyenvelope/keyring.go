package keyenvelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// KEKSize is the size of a KEK version's secret in bytes.
const KEKSize = 32

// maxVersions caps the number of KEK versions a keyring may hold.
const maxVersions = 1024

// State is the lifecycle state of a KEK version.
type State uint8

// KEK version states. See "Rotation runbook" in the package docs.
const (
	// StateEnabled: usable for unwrap (if at or above the minimum
	// decryption version), and for wrap when primary.
	StateEnabled State = 1
	// StateDisabled: kept but refused for every operation; reversible.
	StateDisabled State = 2
	// StateDestroyed: the secret is erased; irreversible.
	StateDestroyed State = 3
)

func (s State) String() string {
	switch s {
	case StateEnabled:
		return "enabled"
	case StateDisabled:
		return "disabled"
	case StateDestroyed:
		return "destroyed"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Keyring management errors.
var (
	ErrNoSuchVersion = errors.New("keyenvelope: no such kek version")
	ErrKeyState      = errors.New("keyenvelope: operation not allowed in this kek version's state")
)

// VersionInfo describes one KEK version, without its secret.
type VersionInfo struct {
	Version uint32
	State   State
	Primary bool
}

type kekVersion struct {
	version uint32
	state   State
	key     [KEKSize]byte

	mu   sync.Mutex // guards hpke
	hpke map[Suite]hpke.PrivateKey
}

// Keyring holds the KEK versions of one connector installation (or of every
// connector of a tenant: they share the keyring). It is safe for concurrent
// use. Wrap uses the primary version; unwrap picks the version named in the
// envelope's header.
type Keyring struct {
	rand io.Reader

	mu         sync.RWMutex
	id         [16]byte
	primary    uint32
	minDecrypt uint32
	versions   []*kekVersion // sorted by version
}

// NewKeyring returns a keyring with a random ID and one enabled, primary KEK
// version 1. Randomness (for the keyring, its future versions, salts and
// ekeys) comes from rand, or crypto/rand when rand is nil. crypto/hpke draws
// its ephemeral keys from crypto/rand regardless.
func NewKeyring(rand io.Reader) (*Keyring, error) {
	k := &Keyring{rand: randOrDefault(nil), primary: 1, minDecrypt: 1}
	if rand != nil {
		k.rand = &lockedReader{r: rand}
	}
	if _, err := io.ReadFull(k.rand, k.id[:]); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	v := &kekVersion{version: 1, state: StateEnabled}
	if _, err := io.ReadFull(k.rand, v.key[:]); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	k.versions = []*kekVersion{v}
	return k, nil
}

// ID returns the keyring's KEK ID, written in every envelope header.
func (k *Keyring) ID() [16]byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.id
}

// Primary returns the primary KEK version.
func (k *Keyring) Primary() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.primary
}

// MinDecryptionVersion returns the lowest version unwrap accepts.
func (k *Keyring) MinDecryptionVersion() uint32 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.minDecrypt
}

// Versions lists every version, oldest first.
func (k *Keyring) Versions() []VersionInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]VersionInfo, len(k.versions))
	for i, v := range k.versions {
		out[i] = VersionInfo{Version: v.version, State: v.state, Primary: v.version == k.primary}
	}
	return out
}

func (k *Keyring) lookup(version uint32) *kekVersion {
	i, ok := slices.BinarySearchFunc(k.versions, version, func(v *kekVersion, t uint32) int {
		switch {
		case v.version < t:
			return -1
		case v.version > t:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return k.versions[i]
}

// AddVersion creates a new enabled KEK version, not primary, and returns its
// number. Distribute the keyring to every connector before promoting it.
func (k *Keyring) AddVersion() (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.versions) >= maxVersions {
		return 0, fmt.Errorf("keyenvelope: keyring already holds %d versions", maxVersions)
	}
	last := k.versions[len(k.versions)-1].version
	if last == ^uint32(0) {
		return 0, errors.New("keyenvelope: kek version numbers exhausted")
	}
	v := &kekVersion{version: last + 1, state: StateEnabled}
	if _, err := io.ReadFull(k.rand, v.key[:]); err != nil {
		return 0, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	k.versions = append(k.versions, v)
	return v.version, nil
}

// Promote makes an enabled version at or above the minimum decryption
// version the primary: new wraps and Rewrap use it from now on.
func (k *Keyring) Promote(version uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.lookup(version)
	if v == nil {
		return ErrNoSuchVersion
	}
	if v.state != StateEnabled || version < k.minDecrypt {
		return ErrKeyState
	}
	k.primary = version
	return nil
}

// Disable refuses a non-primary enabled version for every operation, keeping
// its secret so that [Keyring.Enable] can undo it.
func (k *Keyring) Disable(version uint32) error {
	return k.transition(version, StateEnabled, StateDisabled)
}

// Enable re-enables a disabled version.
func (k *Keyring) Enable(version uint32) error {
	return k.transition(version, StateDisabled, StateEnabled)
}

// Destroy erases the secret of a disabled, non-primary version. Envelopes
// still under it become undecryptable forever.
func (k *Keyring) Destroy(version uint32) error {
	return k.transition(version, StateDisabled, StateDestroyed)
}

func (k *Keyring) transition(version uint32, from, to State) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.lookup(version)
	if v == nil {
		return ErrNoSuchVersion
	}
	if v.state != from || version == k.primary {
		return ErrKeyState
	}
	v.state = to
	if to == StateDestroyed {
		clear(v.key[:])
		v.mu.Lock()
		v.hpke = nil
		v.mu.Unlock()
	}
	return nil
}

// SetMinDecryptionVersion makes unwrap refuse every version below min.
// min must exist and not be above the primary.
func (k *Keyring) SetMinDecryptionVersion(min uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lookup(min) == nil {
		return ErrNoSuchVersion
	}
	if min > k.primary {
		return ErrKeyState
	}
	k.minDecrypt = min
	return nil
}

// Wrap wraps e under the primary KEK version, bound to c, and returns the
// envelope in binary form (KindWrap).
func (k *Keyring) Wrap(c Context, e *Ekey) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.wrapLocked(c, e)
}

func (k *Keyring) wrapLocked(c Context, e *Ekey) ([]byte, error) {
	v := k.lookup(k.primary)
	h := Header{Version: formatVersion, Kind: KindWrap, Suite: SuiteWrap, KeyID: k.id, KeyVersion: v.version}
	out := make([]byte, 0, headerSize+16+saltSize+commitSize+ekeyCTSize)
	out = h.append(out)
	out = append(out, e.ID[:]...)
	out = out[:len(out)+saltSize]
	salt := out[len(out)-saltSize:]
	if _, err := io.ReadFull(k.rand, salt); err != nil {
		return nil, fmt.Errorf("keyenvelope: read randomness: %w", err)
	}
	aead, commit := deriveWrap(v.key[:], salt, out[:headerSize])
	out = append(out, commit[:]...)
	aad := appendAAD(append(make([]byte, 0, 128), out[:headerSize]...), c, e.ID)
	return aead.Seal(out, zeroNonce[:], e.Key[:], aad), nil
}

var zeroNonce [12]byte

// deriveWrap derives the AES-256-GCM key and the key commitment of one wrap:
// HKDF-SHA256(ikm = secret, salt = salt, info = label || 0 || header), 64
// bytes, split in two.
func deriveWrap(secret, salt, header []byte) (cipher.AEAD, [commitSize]byte) {
	okm, err := hkdf.Key(sha256.New, secret, salt, labelWrap+"\x00"+string(header), 64)
	if err != nil {
		panic("keyenvelope: hkdf: " + err.Error()) // cannot happen for 64 bytes
	}
	defer clear(okm)
	var commit [commitSize]byte
	copy(commit[:], okm[32:])
	return newGCM(okm[:32]), commit
}

func newGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic("keyenvelope: aes: " + err.Error()) // key is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("keyenvelope: gcm: " + err.Error())
	}
	return aead
}

// Unwrap opens a KindWrap or KindSealed envelope bound to c and returns the
// ekey. Every failure returns [ErrUnwrap]. The caller owns the result and
// should Zero it.
func (k *Keyring) Unwrap(c Context, wrapped []byte) (*Ekey, error) {
	if c.validate() != nil {
		return nil, ErrUnwrap
	}
	env, ok := parseEnvelope(wrapped)
	if !ok {
		return nil, ErrUnwrap
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.unwrapLocked(c, &env)
}

func (k *Keyring) unwrapLocked(c Context, env *envelope) (*Ekey, error) {
	if env.h.KeyID != k.id || env.h.KeyVersion < k.minDecrypt {
		return nil, ErrUnwrap
	}
	v := k.lookup(env.h.KeyVersion)
	if v == nil || v.state != StateEnabled {
		return nil, ErrUnwrap
	}
	aad := appendAAD(append(make([]byte, 0, 128), env.raw...), c, env.ekeyID)
	e := &Ekey{ID: env.ekeyID}
	switch env.h.Kind {
	case KindWrap:
		aead, commit := deriveWrap(v.key[:], env.salt, env.raw)
		if subtle.ConstantTimeCompare(commit[:], env.commit) != 1 {
			return nil, ErrUnwrap
		}
		// Decrypt straight into the Ekey: no intermediate plaintext copy.
		// On failure crypto/cipher clears what it wrote.
		if _, err := aead.Open(e.Key[:0], zeroNonce[:], env.ct, aad); err != nil {
			return nil, ErrUnwrap
		}
		return e, nil
	case KindSealed:
		priv, err := v.hpkeKey(k.id, env.h.Suite)
		if err != nil {
			return nil, ErrUnwrap
		}
		r, err := hpke.NewRecipient(env.enc, priv, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelSealed, env.raw, env.ekeyID[:]))
		if err != nil {
			return nil, ErrUnwrap
		}
		pt, err := r.Open(aad, env.ct)
		if err != nil {
			return nil, ErrUnwrap
		}
		copy(e.Key[:], pt)
		clear(pt)
		return e, nil
	}
	return nil, ErrUnwrap
}

// GenerateWrapped makes a new ekey, wraps it under the primary version bound
// to c, and returns only the wrapped form and the ekey's ID: the caller never
// sees the ekey (the KMS GenerateDataKeyWithoutPlaintext pattern).
func (k *Keyring) GenerateWrapped(c Context) ([]byte, EkeyID, error) {
	if err := c.validate(); err != nil {
		return nil, EkeyID{}, err
	}
	e, err := NewEkey(k.rand)
	if err != nil {
		return nil, EkeyID{}, err
	}
	defer e.Zero()
	w, err := k.Wrap(c, e)
	return w, e.ID, err
}

// Rewrap unwraps a KindWrap or KindSealed envelope bound to c and wraps the
// same ekey (same ID) under the primary version, never returning the ekey.
// It fails with [ErrUnwrap] when the input does not unwrap. Backup data
// encrypted under the ekey is untouched.
func (k *Keyring) Rewrap(c Context, wrapped []byte) ([]byte, error) {
	if c.validate() != nil {
		return nil, ErrUnwrap
	}
	env, ok := parseEnvelope(wrapped)
	if !ok {
		return nil, ErrUnwrap
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	e, err := k.unwrapLocked(c, &env)
	if err != nil {
		return nil, err
	}
	defer e.Zero()
	return k.wrapLocked(c, e)
}

// hpkeKey derives (once) the HPKE key pair of this version for suite:
// DeriveKeyPair(HKDF-SHA256(ikm = secret, salt = "", info = label || 0 ||
// suite || keyring ID || version, 32 bytes)).
func (v *kekVersion) hpkeKey(keyringID [16]byte, s Suite) (hpke.PrivateKey, error) {
	kem, _, _, ok := s.hpkeKEM()
	if !ok {
		return nil, ErrUnwrap
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if p := v.hpke[s]; p != nil {
		return p, nil
	}
	var info []byte
	info = binary.BigEndian.AppendUint16(info, uint16(s))
	info = append(info, keyringID[:]...)
	info = binary.BigEndian.AppendUint32(info, v.version)
	ikm, err := hkdf.Key(sha256.New, v.key[:], nil, string(labeled(labelHPKEKey, info)), 32)
	if err != nil {
		return nil, err
	}
	defer clear(ikm)
	p, err := kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, err
	}
	if v.hpke == nil {
		v.hpke = make(map[Suite]hpke.PrivateKey)
	}
	v.hpke[s] = p
	return p, nil
}
