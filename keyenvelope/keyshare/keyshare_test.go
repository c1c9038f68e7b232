package keyshare_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// node is one connector of tenant "acme": its identity, its state file and
// its keyring (nil while joining), behind a Handler.
type node struct {
	id    keyenvelope.ShareIdentity
	state string
	mu    sync.Mutex
	kr    *keyenvelope.Keyring
	h     *keyshare.Handler
}

func newNode(t testing.TB, name string, withKeyring bool) *node {
	t.Helper()
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	n := &node{
		id:    keyenvelope.ShareIdentity{Tenant: "acme", ConnectorID: name, SignKey: sk, SealKey: xk},
		state: filepath.Join(t.TempDir(), "share.json"),
	}
	if withKeyring {
		n.kr, err = keyenvelope.NewKeyring(nil)
		require.NoError(t, err)
	}
	n.h, err = keyshare.New(keyshare.Config{
		StateFile: n.state,
		Identity:  func() (keyenvelope.ShareIdentity, error) { return n.id, nil },
		Keyring:   n.keyring,
		Install: func(kr *keyenvelope.Keyring) error {
			n.mu.Lock()
			defer n.mu.Unlock()
			n.kr = kr
			return nil
		},
	})
	require.NoError(t, err)
	return n
}

func (n *node) keyring() *keyenvelope.Keyring {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kr
}

func (n *node) fingerprint() string { return n.id.Member().Fingerprint() }

// relay is the vendor's side, reduced to what it forwards: requests of
// connectors without a keyring, shares to their recipients, and the peers
// with what each published. It reads no secret: it only routes.
type relay struct {
	nodes    []*node
	requests map[string]keyshare.Request
	outbox   map[string][][]byte
	peers    map[string]keyshare.Peer
}

func newRelay(nodes ...*node) *relay {
	return &relay{nodes: nodes, requests: map[string]keyshare.Request{}, outbox: map[string][][]byte{}, peers: map[string]keyshare.Peer{}}
}

func (r *relay) round(t *testing.T) {
	t.Helper()
	for _, n := range r.nodes {
		in := keyshare.Sync{Shares: r.outbox[n.id.ConnectorID]}
		delete(r.outbox, n.id.ConnectorID)
		for id, req := range r.requests {
			if id != n.id.ConnectorID {
				in.Requests = append(in.Requests, req)
			}
		}
		for _, m := range r.nodes {
			p := r.peers[m.id.ConnectorID]
			p.ConnectorID = m.id.ConnectorID
			in.Peers = append(in.Peers, p)
		}
		body, err := json.Marshal(in)
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		n.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, keyshare.Path, bytes.NewReader(body)))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var out keyshare.Reply
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		r.peers[n.id.ConnectorID] = keyshare.Peer{ConnectorID: n.id.ConnectorID, KeyringID: out.KeyringID, Versions: out.Versions, Primary: out.Primary}
		if out.Request != nil {
			r.requests[n.id.ConnectorID] = *out.Request
		} else {
			delete(r.requests, n.id.ConnectorID)
		}
		for _, b := range out.Shares {
			h, err := keyenvelope.ParseShareHeader(b)
			require.NoError(t, err)
			r.outbox[h.To] = append(r.outbox[h.To], b)
		}
	}
}

// TestJoinApproveShare: a new connector receives the keyring only after a
// person approved its fingerprint on the connector it named at Join, and
// later versions follow at the next rounds.
func TestJoinApproveShare(t *testing.T) {
	a, b := newNode(t, "conn-a", true), newNode(t, "conn-b", false)
	require.NoError(t, keyshare.Join(b.state, a.fingerprint()))
	joining, err := keyshare.Joining(b.state)
	require.NoError(t, err)
	assert.True(t, joining)
	r := newRelay(a, b)

	r.round(t)
	r.round(t)
	assert.Nil(t, b.keyring(), "nothing is shared before a person approves")
	reqs, err := keyshare.Requests(a.state)
	require.NoError(t, err)
	require.Len(t, reqs, 1)
	assert.Equal(t, "conn-b", reqs[0].ConnectorID)
	assert.Equal(t, b.fingerprint(), reqs[0].Fingerprint, "the fingerprint shown is the joining connector's own")

	_, err = keyshare.Approve(a.state, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
	assert.ErrorIs(t, err, keyshare.ErrNoRequest)
	m, err := keyshare.Approve(a.state, b.fingerprint())
	require.NoError(t, err)
	assert.Equal(t, "conn-b", m.ConnectorID)

	r.round(t) // a seals to b
	r.round(t) // b opens it
	require.NotNil(t, b.keyring())
	assert.Equal(t, a.keyring().ID(), b.keyring().ID())
	joining, err = keyshare.Joining(b.state)
	require.NoError(t, err)
	assert.False(t, joining, "the join ends when the keyring arrived")

	v, err := a.keyring().AddVersion()
	require.NoError(t, err)
	require.Error(t, keyshare.CheckPromote(a.state, "conn-a", v), "b does not hold the new version yet")
	r.round(t)
	r.round(t)
	r.round(t)
	assert.NoError(t, keyshare.CheckPromote(a.state, "conn-a", v))
	assert.Len(t, b.keyring().Versions(), 2)
}

// TestRelayCannotPlantKeyring: the relay enrolls a connector of its own with
// a keyring and seals it to a joining connector; the share is refused
// because its signer is not the approver named at Join.
func TestRelayCannotPlantKeyring(t *testing.T) {
	a, b, evil := newNode(t, "conn-a", true), newNode(t, "conn-b", false), newNode(t, "conn-evil", true)
	require.NoError(t, keyshare.Join(b.state, a.fingerprint()))
	share, err := keyenvelope.SealKeyring(evil.keyring(), evil.id, b.id.Member(), []keyenvelope.Member{evil.id.Member(), b.id.Member()})
	require.NoError(t, err)
	r := newRelay(a, b)
	r.outbox["conn-b"] = [][]byte{share}
	r.round(t)
	assert.Nil(t, b.keyring(), "a keyring not signed by the approver is refused")
	members, err := keyshare.Members(b.state)
	require.NoError(t, err)
	for _, m := range members {
		assert.NotEqual(t, "conn-evil", m.ConnectorID, "the refused share's members are not learnt")
	}
}

// TestRevokedNeverApprovedAgain: once revoked here, a member is never
// approved again even when it asks anew with the same keys.
func TestRevokedNeverApprovedAgain(t *testing.T) {
	a, b := newNode(t, "conn-a", true), newNode(t, "conn-b", false)
	r := newRelay(a, b)
	r.round(t)
	r.round(t)
	_, err := keyshare.Approve(a.state, b.fingerprint())
	require.NoError(t, err)
	_, err = keyshare.Revoke(a.state, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
	assert.ErrorIs(t, err, keyshare.ErrNoMember)
	got, err := keyshare.Revoke(a.state, b.fingerprint())
	require.NoError(t, err)
	assert.True(t, got.Revoked)
	r.round(t)
	assert.Empty(t, r.outbox["conn-b"], "nothing is sealed to a revoked member")
	assert.NotContains(t, r.requests, "", "sanity")
	// b keeps asking (it has no keyring): the request does not come back
	// as approvable.
	r.round(t)
	_, err = keyshare.Approve(a.state, b.fingerprint())
	require.Error(t, err)
}

// TestJoinRefusesNonFingerprint and TestStateFileMode: input checks and
// the state file's mode.
func TestJoinRefusesNonFingerprint(t *testing.T) {
	state := filepath.Join(t.TempDir(), "share.json")
	for _, bad := range []string{"", "abc", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHH1", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG"} {
		assert.Error(t, keyshare.Join(state, bad), bad)
	}
	_, err := os.Stat(state)
	assert.ErrorIs(t, err, os.ErrNotExist, "a refused join writes nothing")
	require.NoError(t, keyshare.Join(state, "aaaa-bbbb-cccc-dddd-eeee-ffff-gggg-hhhh"))
	fi, err := os.Stat(state)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

// TestNewRequires names what is missing.
func TestNewRequires(t *testing.T) {
	_, err := keyshare.New(keyshare.Config{})
	assert.ErrorContains(t, err, "StateFile")
	_, err = keyshare.New(keyshare.Config{StateFile: "x"})
	assert.ErrorContains(t, err, "Identity")
}

// TestCorruptStateFile: a state file that is not JSON is reported as such,
// typed, and never overwritten by an approval.
func TestCorruptStateFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "share.json")
	require.NoError(t, os.WriteFile(state, []byte("{not json"), 0o600))
	_, err := keyshare.Requests(state)
	var se *keyshare.StateFileError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "parse", se.Op)
	assert.Contains(t, err.Error(), "is corrupt")
	_, err = keyshare.Approve(state, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")
	require.ErrorAs(t, err, &se)
	b, err := os.ReadFile(state)
	require.NoError(t, err)
	assert.Equal(t, "{not json", string(b), "left as it was")
}
