package keyenvelope

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"regexp"
	"slices"
	"testing"
)

// shareNode is one connector in the share tests: its identity, its keyring
// (nil until it joined) and its member list.
type shareNode struct {
	id      ShareIdentity
	keyring *Keyring
	members []Member
}

func newShareNode(t testing.TB, tenant, connectorID string) *shareNode {
	t.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := &shareNode{id: ShareIdentity{Tenant: tenant, ConnectorID: connectorID, SignKey: sk, SealKey: xk}}
	n.members = []Member{n.id.Member()}
	return n
}

// trusts: a signer is trusted when it is a non-revoked member here, or its
// fingerprint is the one a person typed (extra).
func (n *shareNode) trusts(extra string) func(Member) bool {
	return func(s Member) bool {
		if extra != "" && s.MatchFingerprint(extra) {
			return true
		}
		for _, m := range n.members {
			if !m.Revoked && m.MatchFingerprint(s.Fingerprint()) && m.ConnectorID == s.ConnectorID {
				return true
			}
		}
		return false
	}
}

// approve: a person typed fp on n; n adds the requester and seals to it.
func (n *shareNode) approve(t *testing.T, req Member, fp string) []byte {
	t.Helper()
	if !req.MatchFingerprint(fp) {
		t.Fatalf("fingerprint %s does not match request of %s", fp, req.ConnectorID)
	}
	n.members = MergeMembers(n.members, []Member{req})
	b, err := SealKeyring(n.keyring, n.id, req, n.members)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *shareNode) receive(share []byte, approverFP string) error {
	o, err := OpenKeyringShare(share, n.id, n.trusts(approverFP))
	if err != nil {
		return err
	}
	if n.keyring == nil {
		n.keyring = o.Keyring
	} else if _, err := n.keyring.Merge(o.Keyring); err != nil {
		return err
	}
	n.members = MergeMembers(n.members, o.Members)
	return nil
}

func threeNodes(t *testing.T) (c1, c2, c3 *shareNode) {
	t.Helper()
	c1 = newShareNode(t, "acme", "conn-1")
	c2 = newShareNode(t, "acme", "conn-2")
	c3 = newShareNode(t, "acme", "conn-3")
	k, err := NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	c1.keyring = k
	// c2 and c3 join through c1: the person reads c1's fingerprint on c1 and
	// types it on the joiners, and reads each joiner's on it and types it on c1.
	for _, j := range []*shareNode{c2, c3} {
		share := c1.approve(t, j.id.Member(), j.id.Member().Fingerprint())
		if err := j.receive(share, c1.id.Member().Fingerprint()); err != nil {
			t.Fatalf("%s join: %v", j.id.ConnectorID, err)
		}
	}
	// c2 learns of c3 with the next share (here: c1 re-seals to c2).
	share, err := SealKeyring(c1.keyring, c1.id, c2.id.Member(), c1.members)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.receive(share, ""); err != nil {
		t.Fatal(err)
	}
	return c1, c2, c3
}

func TestShareThreeConnectorsReleaseAcross(t *testing.T) {
	c1, c2, c3 := threeNodes(t)
	nodes := []*shareNode{c1, c2, c3}
	for _, w := range nodes {
		wrapped, id, err := w.keyring.GenerateWrapped(ctxA)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range nodes {
			e, err := u.keyring.Unwrap(ctxA, wrapped)
			if err != nil {
				t.Fatalf("%s cannot unwrap what %s wrapped: %v", u.id.ConnectorID, w.id.ConnectorID, err)
			}
			if e.ID != id {
				t.Fatal("ekey ID differs")
			}
		}
	}
	if len(c2.members) != 3 {
		t.Fatalf("c2 knows %d members, want 3", len(c2.members))
	}
}

func TestShareRotationReachesEveryMember(t *testing.T) {
	c1, c2, c3 := threeNodes(t)
	// Rotation on c2 (which did not approve c3): c3 trusts c2 because c1's
	// share listed c2 as a member.
	v, err := c2.keyring.AddVersion()
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []*shareNode{c1, c3} {
		s, err := SealKeyring(c2.keyring, c2.id, to.id.Member(), c2.members)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseShareHeader(s)
		if err != nil || !slices.Contains(h.Versions, v) || h.To != to.id.ConnectorID {
			t.Fatalf("header %+v, %v", h, err)
		}
		if err := to.receive(s, ""); err != nil {
			t.Fatalf("%s: %v", to.id.ConnectorID, err)
		}
	}
	if err := c1.keyring.Promote(v); err != nil {
		t.Fatal(err)
	}
	wrapped, _, err := c1.keyring.GenerateWrapped(ctxA)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*shareNode{c2, c3} {
		if _, err := n.keyring.Unwrap(ctxA, wrapped); err != nil {
			t.Fatalf("%s cannot unwrap under version %d: %v", n.id.ConnectorID, v, err)
		}
	}
}

func TestShareCloudGetsNothing(t *testing.T) {
	c1, c2, _ := threeNodes(t)
	cloud := newShareNode(t, "acme", "cloud-own")
	// 1. The cloud's own connector asks; nobody approves it, but it takes
	// every share it relays: none opens with its key.
	for _, to := range []*shareNode{c2} {
		s, err := SealKeyring(c1.keyring, c1.id, to.id.Member(), c1.members)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyringShare(s, cloud.id, func(Member) bool { return true }); !errors.Is(err, ErrShare) {
			t.Fatalf("cloud opened a share for %s: %v", to.id.ConnectorID, err)
		}
		// Re-addressed to the cloud's connector ID: the signature breaks.
		h, _ := ParseShareHeader(s)
		forged := bytes.Replace(s, []byte("\x06conn-2"), []byte("\x06cloud1"), 1)
		if bytes.Equal(forged, s) || h.To != "conn-2" {
			t.Fatal("test did not re-address the share")
		}
		if _, err := OpenKeyringShare(forged, cloud.id, func(Member) bool { return true }); !errors.Is(err, ErrShare) {
			t.Fatalf("re-addressed share: %v", err)
		}
	}
	// 2. The cloud substitutes a keyring of its own, signed by its own key,
	// sealed to a joining connector: refused, the signer was not approved.
	evil, err := NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	cloud.keyring = evil
	c4 := newShareNode(t, "acme", "conn-4")
	s, err := SealKeyring(evil, cloud.id, c4.id.Member(), []Member{cloud.id.Member(), c4.id.Member()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c4.receive(s, c1.id.Member().Fingerprint()); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("substituted keyring: %v", err)
	}
	if c4.keyring != nil {
		t.Fatal("c4 installed the cloud's keyring")
	}
	// 3. Same to an existing member: refused too, and merging another
	// keyring (different KEK ID) is refused even from a trusted signer.
	if err := c2.receive(s, ""); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("c2 accepted the cloud's keyring: %v", err)
	}
	if _, err := c2.keyring.Merge(evil); !errors.Is(err, ErrShare) {
		t.Fatalf("merge of another keyring: %v", err)
	}
}

func TestShareRevokedGetsNoLaterVersion(t *testing.T) {
	c1, c2, c3 := threeNodes(t)
	// Revoke c3 on c1; the revocation travels with c1's next share to c2.
	for i := range c1.members {
		if c1.members[i].ConnectorID == "conn-3" {
			c1.members[i].Revoked = true
		}
	}
	v, err := c1.keyring.AddVersion()
	if err != nil {
		t.Fatal(err)
	}
	var revoked Member
	for _, m := range c1.members {
		if m.Revoked {
			revoked = m
		}
	}
	if _, err := SealKeyring(c1.keyring, c1.id, revoked, c1.members); !errors.Is(err, ErrShareMember) {
		t.Fatalf("sealed to a revoked member: %v", err)
	}
	s, err := SealKeyring(c1.keyring, c1.id, c2.id.Member(), c1.members)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.receive(s, ""); err != nil {
		t.Fatal(err)
	}
	for _, m := range c2.members {
		if m.ConnectorID == "conn-3" && !m.Revoked {
			t.Fatal("revocation did not reach c2")
		}
	}
	// c3 no longer counts as trusted on c2, and a later merge from c3's
	// stale list does not bring it back.
	if c2.trusts("")(c3.id.Member()) {
		t.Fatal("c2 still trusts revoked c3")
	}
	c2.members = MergeMembers(c2.members, c3.members)
	if c2.trusts("")(c3.id.Member()) {
		t.Fatal("merging c3's stale member list un-revoked it")
	}
	if c3.keyring.lookup(v) != nil {
		t.Fatal("c3 has the new version")
	}
	// A share c3 makes itself (a revoked connector trying to push) is refused.
	s3, err := SealKeyring(c3.keyring, c3.id, c2.id.Member(), c3.members)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.receive(s3, ""); !errors.Is(err, ErrUntrustedSigner) {
		t.Fatalf("share from revoked c3: %v", err)
	}
}

func TestShareTamperedByteRefused(t *testing.T) {
	c1, c2, _ := threeNodes(t)
	s, err := SealKeyring(c1.keyring, c1.id, c2.id.Member(), c1.members)
	if err != nil {
		t.Fatal(err)
	}
	fp := c1.id.Member().Fingerprint()
	for i := range s {
		b := bytes.Clone(s)
		b[i] ^= 0x01
		_, err := OpenKeyringShare(b, c2.id, func(m Member) bool { return m.MatchFingerprint(fp) })
		if err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for _, n := range []int{0, 1, len(s) / 2, len(s) - 1} {
		if _, err := OpenKeyringShare(s[:n], c2.id, func(Member) bool { return true }); !errors.Is(err, ErrShare) {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := OpenKeyringShare(append(bytes.Clone(s), 0), c2.id, func(Member) bool { return true }); !errors.Is(err, ErrShare) {
		t.Fatalf("trailing byte: %v", err)
	}
	if _, err := OpenKeyringShare(s, c2.id, func(m Member) bool { return m.MatchFingerprint(fp) }); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringMerge(t *testing.T) {
	a, err := NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := cloneKeyring(t, a)
	// b: versions 2 and 3, 3 primary, minimum 2.
	for range 2 {
		if _, err := b.AddVersion(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Promote(3); err != nil {
		t.Fatal(err)
	}
	if err := b.SetMinDecryptionVersion(2); err != nil {
		t.Fatal(err)
	}
	c := cloneKeyring(t, a) // a second copy of version 1 only
	added, err := a.Merge(b)
	if err != nil || !slices.Equal(added, []uint32{2, 3}) {
		t.Fatalf("added %v, %v", added, err)
	}
	if a.Primary() != 3 || a.MinDecryptionVersion() != 2 {
		t.Fatalf("primary %d, min %d; want 3, 2", a.Primary(), a.MinDecryptionVersion())
	}
	w, err := b.Wrap(ctxA, mustEkey(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Unwrap(ctxA, w); err != nil {
		t.Fatalf("merged keyring cannot unwrap under version 3: %v", err)
	}
	// c gets 2 and 3, goes back to 2 and disables 3 locally; merging b
	// (primary 3) again neither re-enables 3 nor makes it the primary.
	if _, err := c.Merge(cloneKeyring(t, a)); err != nil {
		t.Fatal(err)
	}
	if err := c.Promote(2); err != nil {
		t.Fatal(err)
	}
	if err := c.Disable(3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Merge(b); err != nil {
		t.Fatal(err)
	}
	if c.Primary() != 2 {
		t.Fatalf("merge promoted version 3, disabled here: primary %d", c.Primary())
	}
	if c.Versions()[2].State != StateDisabled {
		t.Fatal("merge re-enabled version 3")
	}
}

// cloneKeyring copies k through a share, as another connector gets it.
func cloneKeyring(t *testing.T, k *Keyring) *Keyring {
	t.Helper()
	from := newShareNode(t, "acme", "from")
	to := newShareNode(t, "acme", "to")
	s, err := SealKeyring(k, from.id, to.id.Member(), nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := OpenKeyringShare(s, to.id, func(Member) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	return o.Keyring
}

func mustEkey(t *testing.T) *Ekey {
	t.Helper()
	e, err := NewEkey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestShareReplayDoesNotRollBack(t *testing.T) {
	c1, c2, _ := threeNodes(t)
	old, err := SealKeyring(c1.keyring, c1.id, c2.id.Member(), c1.members)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := c2.keyring.AddVersion()
	if err := c2.keyring.Promote(v); err != nil {
		t.Fatal(err)
	}
	if err := c2.keyring.Disable(1); err != nil {
		t.Fatal(err)
	}
	if err := c2.receive(old, ""); err != nil {
		t.Fatal(err)
	}
	if c2.keyring.Primary() != v || c2.keyring.Versions()[0].State != StateDisabled {
		t.Fatalf("replayed share changed the keyring: %+v", c2.keyring.Versions())
	}
}

func TestShareFingerprint(t *testing.T) {
	n := newShareNode(t, "acme", "c")
	m := n.id.Member()
	fp := m.Fingerprint()
	if !regexp.MustCompile(`^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$`).MatchString(fp) {
		t.Fatalf("fingerprint %q not in groups of four", fp)
	}
	for _, typed := range []string{fp, " " + fp + " ", regexp.MustCompile("-").ReplaceAllString(fp, " "), string(bytes.ToLower([]byte(fp)))} {
		if !m.MatchFingerprint(typed) {
			t.Errorf("%q does not match", typed)
		}
	}
	other := newShareNode(t, "acme", "c").id.Member()
	for _, swapped := range []Member{
		{ConnectorID: "c", SignKey: m.SignKey, SealKey: other.SealKey},
		{ConnectorID: "c", SignKey: other.SignKey, SealKey: m.SealKey},
	} {
		if swapped.MatchFingerprint(fp) || swapped.Fingerprint() == fp {
			t.Error("fingerprint does not cover both keys")
		}
	}
	if m.MatchFingerprint(fp[:len(fp)-5]) || m.MatchFingerprint("") {
		t.Error("prefix of a fingerprint matched")
	}
}

// FuzzKeyringShare: the share parser and OpenKeyringShare never panic,
// accept nothing but what SealKeyring made for this recipient, and
// ParseShareHeader fails only with ErrMalformed.
func FuzzKeyringShare(f *testing.F) {
	c1 := newShareNode(f, "acme", "conn-1")
	c2 := newShareNode(f, "acme", "conn-2")
	k, err := NewKeyring(nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := k.AddVersion(); err != nil {
		f.Fatal(err)
	}
	good, err := SealKeyring(k, c1.id, c2.id.Member(), []Member{c1.id.Member(), c2.id.Member()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte("KSHR\x01"))
	f.Add(good[:len(good)-64])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseShareHeader(b)
		if err != nil && err != ErrMalformed {
			t.Fatalf("ParseShareHeader: %v", err)
		}
		if err == nil && (len(h.Versions) == 0 || !slices.Contains(h.Versions, h.Primary)) {
			t.Fatalf("header accepted without its primary: %+v", h)
		}
		o, err := OpenKeyringShare(b, c2.id, func(Member) bool { return true })
		if err == nil && !bytes.Equal(b, good) {
			t.Fatalf("accepted a share SealKeyring did not make: %x", b)
		}
		if err == nil && o.Keyring.ID() != k.ID() {
			t.Fatal("opened keyring has another ID")
		}
	})
}
