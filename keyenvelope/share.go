package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Keyring sharing errors. Every failure to open a share returns exactly
// ErrShare, except a signer the caller does not trust, which returns
// ErrUntrustedSigner so that the caller can tell the person what to approve.
var (
	ErrShare           = errors.New("keyenvelope: keyring share refused")
	ErrUntrustedSigner = errors.New("keyenvelope: keyring share signed by a connector not approved here")
	ErrShareMember     = errors.New("keyenvelope: invalid keyring share member")
)

// labels of the keyring share (see "Keyring sharing" in the package docs).
const (
	labelShare       = "liaison/keyenvelope/v1 keyring-share"
	labelShareSig    = "liaison/keyenvelope/v1 keyring-share-signature"
	labelFingerprint = "liaison/keyenvelope/v1 connector-fingerprint"
	shareMagic       = "KSHR"
	maxShareSize     = 1 << 20
	maxShareID       = 255
)

// Member is a connector of a tenant as the keyring share knows it: its ID,
// its Ed25519 identity key (signs the shares it sends) and its X25519 key
// (shares sent to it are sealed to it). Members are public; their
// [Member.Fingerprint] is what a person compares on two connectors.
type Member struct {
	ConnectorID string
	SignKey     ed25519.PublicKey
	SealKey     []byte // X25519 public key, 32 bytes
	// Revoked marks a member removed on some connector: no share is sealed
	// to it or accepted from it, and merging never brings it back.
	Revoked bool
}

func (m Member) valid() bool {
	return m.ConnectorID != "" && len(m.ConnectorID) <= maxShareID && len(m.SignKey) == ed25519.PublicKeySize && len(m.SealKey) == 32
}

// Fingerprint is the member's fingerprint in the form a person compares:
// the first 20 bytes of SHA-256(label || 0 || sign key || seal key) in
// base32, eight groups of four characters ("ABCD-EFGH-..."). It covers both
// keys, so a relay that swaps either changes it.
func (m Member) Fingerprint() string {
	sum := m.fingerprintHash()
	s := base32.StdEncoding.EncodeToString(sum[:20])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

func (m Member) fingerprintHash() [32]byte {
	return sha256.Sum256(labeled(labelFingerprint, m.SignKey, m.SealKey))
}

// MatchFingerprint reports whether fp (as typed by a person: case, spaces
// and dashes do not matter) is m's fingerprint, in constant time.
func (m Member) MatchFingerprint(fp string) bool {
	want := normFingerprint(m.Fingerprint())
	got := normFingerprint(fp)
	return len(got) == len(want) && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func normFingerprint(s string) string {
	s = strings.ToUpper(s)
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
}

// ShareIdentity is the connector's own side: its member entry and the
// private halves of its keys.
type ShareIdentity struct {
	Tenant  string
	SignKey ed25519.PrivateKey
	SealKey *ecdh.PrivateKey // X25519
	// ConnectorID is this connector's ID as the cloud assigned it.
	ConnectorID string
}

// Member returns the identity's public member entry.
func (id ShareIdentity) Member() Member {
	return Member{
		ConnectorID: id.ConnectorID,
		SignKey:     id.SignKey.Public().(ed25519.PublicKey),
		SealKey:     id.SealKey.PublicKey().Bytes(),
	}
}

func (id ShareIdentity) valid() bool {
	return id.Tenant != "" && len(id.Tenant) <= maxShareID && len(id.SignKey) == ed25519.PrivateKeySize &&
		id.SealKey != nil && id.SealKey.Curve() == ecdh.X25519() && id.ConnectorID != "" && len(id.ConnectorID) <= maxShareID
}

// ShareHeader is the public part of a keyring share: what the relay may
// read (routing, and which KEK versions the recipient will hold), never a
// secret. [ParseShareHeader] returns it without authenticating anything.
type ShareHeader struct {
	Tenant    string
	From      Member // the signer (Revoked is always false)
	To        string // recipient connector ID
	KeyringID [16]byte
	Primary   uint32
	Versions  []uint32 // every version in the keyring, ascending
}

// SealKeyring seals k (every version, states, primary and minimum
// decryption version) and the member list to the connector to, signed by
// from: HPKE (DHKEM X25519, HKDF-SHA256, AES-256-GCM) to to.SealKey, bound
// to the tenant, both connector IDs and keys, the keyring ID and its
// versions, then signed with from.SignKey. Only call it for a member a
// person approved ([Member.MatchFingerprint]) and that is not revoked.
func SealKeyring(k *Keyring, from ShareIdentity, to Member, members []Member) ([]byte, error) {
	if !from.valid() {
		return nil, fmt.Errorf("%w: sender identity incomplete", ErrShareMember)
	}
	if !to.valid() || to.Revoked {
		return nil, fmt.Errorf("%w: recipient %q", ErrShareMember, to.ConnectorID)
	}
	for _, m := range members {
		if !m.valid() {
			return nil, fmt.Errorf("%w: member %q", ErrShareMember, m.ConnectorID)
		}
	}
	if len(members) > maxVersions {
		return nil, fmt.Errorf("%w: more than %d members", ErrShareMember, maxVersions)
	}
	recip, err := ecdh.X25519().NewPublicKey(to.SealKey)
	if err != nil {
		return nil, fmt.Errorf("%w: recipient seal key: %w", ErrShareMember, err)
	}
	pub, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(recip.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%w: recipient seal key: %w", ErrShareMember, err)
	}
	self := from.Member()
	k.mu.RLock()
	h := ShareHeader{Tenant: from.Tenant, From: self, To: to.ConnectorID, KeyringID: k.id, Primary: k.primary}
	for _, v := range k.versions {
		h.Versions = append(h.Versions, v.version)
	}
	plain := binary.BigEndian.AppendUint32(nil, 0)
	plain = k.appendBody(plain)
	k.mu.RUnlock()
	defer clear(plain)
	binary.BigEndian.PutUint32(plain, uint32(len(plain)-4))
	plain = binary.BigEndian.AppendUint16(plain, uint16(len(members)))
	for _, m := range members {
		plain = appendMember(plain, m)
	}
	hdr := h.append(nil, to.fingerprintHash())
	ct, err := hpke.Seal(pub, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelShare, hdr), plain)
	if err != nil {
		return nil, fmt.Errorf("keyenvelope: seal keyring share: %w", err)
	}
	out := binary.BigEndian.AppendUint32(hdr, uint32(len(ct)))
	out = append(out, ct...)
	sig := ed25519.Sign(from.SignKey, labeled(labelShareSig, out))
	return append(out, sig...), nil
}

func appendShortString(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendMember(b []byte, m Member) []byte {
	b = appendShortString(b, m.ConnectorID)
	b = append(b, m.SignKey...)
	b = append(b, m.SealKey...)
	if m.Revoked {
		return append(b, 1)
	}
	return append(b, 0)
}

// append writes the share header: magic, tenant, sender ID, sender sign
// and seal keys, recipient ID, recipient fingerprint hash, keyring ID,
// primary, version count and versions.
func (h *ShareHeader) append(b []byte, toFP [32]byte) []byte {
	b = append(b, shareMagic...)
	b = append(b, formatVersion)
	b = appendShortString(b, h.Tenant)
	b = appendShortString(b, h.From.ConnectorID)
	b = append(b, h.From.SignKey...)
	b = append(b, h.From.SealKey...)
	b = appendShortString(b, h.To)
	b = append(b, toFP[:]...)
	b = append(b, h.KeyringID[:]...)
	b = binary.BigEndian.AppendUint32(b, h.Primary)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Versions)))
	for _, v := range h.Versions {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// share is a parsed, unauthenticated share.
type share struct {
	h      ShareHeader
	toFP   []byte
	header []byte // the header bytes
	ct     []byte
	signed []byte // everything before the signature
	sig    []byte
}

type reader struct {
	b  []byte
	ok bool
}

func (r *reader) take(n int) []byte {
	if !r.ok || n < 0 || len(r.b) < n {
		r.ok = false
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) short() string {
	n := r.take(1)
	if n == nil {
		return ""
	}
	s := r.take(int(n[0]))
	if len(s) == 0 {
		r.ok = false
	}
	return string(s)
}

func (r *reader) u32() uint32 {
	b := r.take(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u16() uint16 {
	b := r.take(2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func parseShare(b []byte) (*share, bool) {
	if len(b) > maxShareSize {
		return nil, false
	}
	r := &reader{b: b, ok: true}
	s := &share{}
	if string(r.take(len(shareMagic))) != shareMagic {
		return nil, false
	}
	if v := r.take(1); v == nil || v[0] != formatVersion {
		return nil, false
	}
	s.h.Tenant = r.short()
	s.h.From.ConnectorID = r.short()
	s.h.From.SignKey = ed25519.PublicKey(r.take(ed25519.PublicKeySize))
	s.h.From.SealKey = r.take(32)
	s.h.To = r.short()
	s.toFP = r.take(32)
	copy(s.h.KeyringID[:], r.take(16))
	s.h.Primary = r.u32()
	n := int(r.u16())
	if !r.ok || n == 0 || n > maxVersions {
		return nil, false
	}
	var last uint32
	for range n {
		v := r.u32()
		if v <= last {
			return nil, false
		}
		last = v
		s.h.Versions = append(s.h.Versions, v)
	}
	if !r.ok {
		return nil, false
	}
	s.header = b[:len(b)-len(r.b)]
	s.ct = r.take(int(r.u32()))
	if !r.ok || len(s.ct) < 32+tagSize {
		return nil, false
	}
	s.signed = b[:len(b)-len(r.b)]
	s.sig = r.take(ed25519.SignatureSize)
	if !r.ok || len(r.b) != 0 || !slices.Contains(s.h.Versions, s.h.Primary) {
		return nil, false
	}
	return s, true
}

// ParseShareHeader returns the public header of a share for routing and
// progress reports (which versions it carries). Nothing in it is
// authenticated: a relay uses it, a recipient uses [OpenKeyringShare].
// It returns [ErrMalformed].
func ParseShareHeader(b []byte) (ShareHeader, error) {
	s, ok := parseShare(b)
	if !ok {
		return ShareHeader{}, ErrMalformed
	}
	return s.h, nil
}

// OpenedShare is what [OpenKeyringShare] returns.
type OpenedShare struct {
	Header  ShareHeader
	Keyring *Keyring
	Members []Member
}

// OpenKeyringShare authenticates and opens a share sent to self. trusted
// decides whether the signer is a connector a person approved here (for a
// first join: the approver's fingerprint the person typed; later: a
// non-revoked member of the local member list); a signer it refuses returns
// [ErrUntrustedSigner] before any decryption. Everything else (malformed,
// bad signature, another tenant or recipient, a share sealed to other keys,
// a body that does not match the header) returns [ErrShare]. The caller
// merges the result into its own keyring ([Keyring.Merge]) and member list
// ([MergeMembers]).
func OpenKeyringShare(b []byte, self ShareIdentity, trusted func(signer Member) bool) (*OpenedShare, error) {
	if !self.valid() {
		return nil, fmt.Errorf("%w: own identity incomplete", ErrShareMember)
	}
	s, ok := parseShare(b)
	if !ok {
		return nil, ErrShare
	}
	if trusted == nil || !trusted(s.h.From) {
		return nil, fmt.Errorf("%w: %s (%s)", ErrUntrustedSigner, s.h.From.ConnectorID, s.h.From.Fingerprint())
	}
	if !ed25519.Verify(s.h.From.SignKey, labeled(labelShareSig, s.signed), s.sig) {
		return nil, ErrShare
	}
	me := self.Member()
	myFP := me.fingerprintHash()
	if s.h.Tenant != self.Tenant || s.h.To != self.ConnectorID || subtle.ConstantTimeCompare(s.toFP, myFP[:]) != 1 {
		return nil, ErrShare
	}
	priv, err := hpke.DHKEM(ecdh.X25519()).NewPrivateKey(self.SealKey.Bytes())
	if err != nil {
		return nil, ErrShare
	}
	plain, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelShare, s.header), s.ct)
	if err != nil {
		return nil, ErrShare
	}
	defer clear(plain)
	r := &reader{b: plain, ok: true}
	body := r.take(int(r.u32()))
	if !r.ok {
		return nil, ErrShare
	}
	k, ok := parseKeyringBody(s.h.KeyringID, body)
	if !ok || k.primary != s.h.Primary || len(k.versions) != len(s.h.Versions) {
		return nil, ErrShare
	}
	for i, v := range k.versions {
		if v.version != s.h.Versions[i] {
			return nil, ErrShare
		}
	}
	n := int(r.u16())
	if !r.ok || n > maxVersions {
		return nil, ErrShare
	}
	members := make([]Member, 0, n)
	for range n {
		m := Member{ConnectorID: r.short()}
		m.SignKey = bytes.Clone(r.take(ed25519.PublicKeySize))
		m.SealKey = bytes.Clone(r.take(32))
		rev := r.take(1)
		if !r.ok || rev[0] > 1 {
			return nil, ErrShare
		}
		m.Revoked = rev[0] == 1
		members = append(members, m)
	}
	if len(r.b) != 0 {
		return nil, ErrShare
	}
	return &OpenedShare{Header: s.h, Keyring: k, Members: members}, nil
}

// MergeMembers returns local with in merged: members are keyed by
// fingerprint; a member revoked on either side stays revoked; a new member
// is added. local is not modified.
func MergeMembers(local, in []Member) []Member {
	out := slices.Clone(local)
	for _, m := range in {
		if !m.valid() {
			continue
		}
		fp := m.fingerprintHash()
		i := slices.IndexFunc(out, func(o Member) bool { return o.fingerprintHash() == fp })
		if i < 0 {
			out = append(out, m)
			continue
		}
		if m.Revoked {
			out[i].Revoked = true
		}
	}
	return out
}

// Merge adds to k every version of other that k lacks (with its state and
// secret), adopts other's primary when it is higher and enabled in k, and
// raises k's minimum decryption version to other's when that is higher and
// not above k's primary. It never changes the state of a version k already
// has, so a replayed old share cannot re-enable or restore anything. Both
// keyrings must have the same ID ([ErrShare] otherwise). It returns the
// versions added.
func (k *Keyring) Merge(other *Keyring) ([]uint32, error) {
	if k == other {
		return nil, nil
	}
	other.mu.RLock()
	defer other.mu.RUnlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.id != other.id {
		return nil, fmt.Errorf("%w: another keyring (KEK ID differs)", ErrShare)
	}
	var added []uint32
	for _, v := range other.versions {
		if k.lookup(v.version) != nil {
			continue
		}
		if len(k.versions) >= maxVersions {
			return added, fmt.Errorf("keyenvelope: keyring already holds %d versions", maxVersions)
		}
		nv := &kekVersion{version: v.version, state: v.state, key: v.key}
		i, _ := slices.BinarySearchFunc(k.versions, v.version, func(x *kekVersion, t uint32) int {
			if x.version < t {
				return -1
			}
			return 1
		})
		k.versions = slices.Insert(k.versions, i, nv)
		added = append(added, v.version)
	}
	if other.primary > k.primary {
		if p := k.lookup(other.primary); p != nil && p.state == StateEnabled {
			k.primary = other.primary
		}
	}
	if other.minDecrypt > k.minDecrypt && other.minDecrypt <= k.primary && k.lookup(other.minDecrypt) != nil {
		k.minDecrypt = other.minDecrypt
	}
	return added, nil
}
