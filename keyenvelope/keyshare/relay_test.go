package keyshare_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// relayPeer is a connector as the relay sees it: its enrolled identity and
// a scripted reply; it records what the relay sent it.
type relayPeer struct {
	id    keyenvelope.ShareIdentity
	mu    sync.Mutex
	reply keyshare.Reply
	code  int
	got   []keyshare.Sync
}

func (p *relayPeer) RoundTrip(r *http.Request) (*http.Response, error) {
	var in keyshare.Sync
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, in)
	b, _ := json.Marshal(p.reply)
	code := p.code
	if code == 0 {
		code = http.StatusOK
	}
	p.reply = keyshare.Reply{}
	return &http.Response{StatusCode: code, Body: io.NopCloser(bytes.NewReader(b)), Header: http.Header{}}, nil
}

func (p *relayPeer) last() keyshare.Sync {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[len(p.got)-1]
}

// all is every share the relay delivered to p.
func (p *relayPeer) all() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for _, in := range p.got {
		out = append(out, in.Shares...)
	}
	return out
}

func newRelayPeer(t *testing.T, tenant, id string) *relayPeer {
	t.Helper()
	_, sign, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	seal, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &relayPeer{id: keyenvelope.ShareIdentity{Tenant: tenant, ConnectorID: id, SignKey: sign, SealKey: seal}}
}

// seal is a real share of a fresh keyring from from to to.
func seal(t *testing.T, from keyenvelope.ShareIdentity, to keyenvelope.Member) []byte {
	t.Helper()
	k, err := keyenvelope.NewKeyring(rand.Reader)
	require.NoError(t, err)
	b, err := keyenvelope.SealKeyring(k, from, to, []keyenvelope.Member{from.Member(), to})
	require.NoError(t, err)
	return b
}

type relayEnv struct {
	peers map[string]*relayPeer
	live  []string
	relay *keyshare.Relay
}

func newRelayEnv(t *testing.T, ids ...string) *relayEnv {
	e := &relayEnv{peers: map[string]*relayPeer{}, live: ids}
	for _, id := range ids {
		e.peers[id] = newRelayPeer(t, "acme", id)
	}
	var err error
	e.relay, err = keyshare.NewRelay(keyshare.RelayConfig{
		Connectors: func(_ context.Context, tenant string) ([]keyshare.Enrolled, error) {
			var out []keyshare.Enrolled
			for _, id := range e.live {
				if tenant == "acme" {
					out = append(out, keyshare.Enrolled{ConnectorID: id, SignKey: e.peers[id].id.SignKey.Public().(ed25519.PublicKey)})
				}
			}
			return out, nil
		},
		Via: func(tenant, id string) http.RoundTripper { return e.peers[id] },
	})
	require.NoError(t, err)
	return e
}

func TestRelayDeliversSharesToTheirRecipientOnly(t *testing.T) {
	e := newRelayEnv(t, "c1", "c2", "c3")
	c1, c2 := e.peers["c1"], e.peers["c2"]
	share := seal(t, c1.id, c2.id.Member())
	c1.reply = keyshare.Reply{KeyringID: "k", Versions: []uint32{1}, Primary: 1, Shares: [][]byte{share}}
	for range 3 {
		require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	}
	assert.Equal(t, [][]byte{share}, c2.all(), "delivered once, to its recipient")
	assert.Empty(t, e.peers["c3"].all())
	assert.Empty(t, c1.all())
	peers := e.relay.Peers("acme")
	require.Len(t, peers, 3)
	assert.Equal(t, "c1", peers[0].ConnectorID)
}

// TestRelayRefusesForgedSharesAndRequests tries what a connector (or
// whoever holds a tunnel session) could answer to get a share or a
// request relayed in another's name.
func TestRelayRefusesForgedSharesAndRequests(t *testing.T) {
	e := newRelayEnv(t, "c1", "c2", "c3")
	c1, c2, c3 := e.peers["c1"], e.peers["c2"], e.peers["c3"]
	other := newRelayPeer(t, "globex", "c1") // same ID, another tenant's share
	stranger := newRelayPeer(t, "acme", "c9")
	forged := c1.id
	_, forged.SignKey, _ = ed25519.GenerateKey(rand.Reader) // c1's ID, not its enrolled key
	c1.reply = keyshare.Reply{
		Shares: [][]byte{
			seal(t, c2.id, c3.id.Member()),       // sent by c1, signed as c2
			seal(t, other.id, c2.id.Member()),    // another tenant
			seal(t, forged, c2.id.Member()),      // not c1's enrolled key
			seal(t, c1.id, stranger.id.Member()), // recipient not live
			seal(t, c1.id, c1.id.Member()),       // to itself
			[]byte("not a share"),
		},
		// a request carrying someone else's key
		Request: &keyshare.Request{ConnectorID: "c1", SignKey: c2.id.SignKey.Public().(ed25519.PublicKey), SealKey: make([]byte, 32)},
	}
	c3.reply = keyshare.Reply{Request: &keyshare.Request{ConnectorID: "c2", // names another connector
		SignKey: c3.id.SignKey.Public().(ed25519.PublicKey), SealKey: c3.id.SealKey.PublicKey().Bytes()}}
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	for _, id := range []string{"c1", "c2", "c3"} {
		assert.Empty(t, e.peers[id].all(), id)
	}
	for _, p := range []*relayPeer{c1, c2, c3} {
		for _, in := range p.got {
			for _, q := range in.Requests {
				assert.Equal(t, "c3", q.ConnectorID, "only c3's request, under its own ID")
				assert.Equal(t, c3.id.SignKey.Public(), ed25519.PublicKey(q.SignKey))
			}
		}
	}
	assert.NotEmpty(t, c2.last().Requests, "c3's request is relayed")
}

func TestRelayCapsAndForgets(t *testing.T) {
	e := newRelayEnv(t, "c1", "c2")
	c1, c2 := e.peers["c1"], e.peers["c2"]
	var many [][]byte
	one := seal(t, c1.id, c2.id.Member())
	for range keyshare.MaxOutbox + 5 {
		many = append(many, one)
	}
	c2.code = http.StatusNotFound // no key sharing yet: skipped, not an error
	c1.reply = keyshare.Reply{Shares: many}
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	c2.code = 0
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	assert.Equal(t, keyshare.MaxOutbox, len(c2.last().Shares), "at most MaxOutbox shares wait for one connector")

	// c2 goes away after c1 sealed to it: its queue is dropped.
	before := len(c2.all())
	e.live = []string{"c1"}
	c1.reply = keyshare.Reply{Shares: [][]byte{one}} // c2 is not live: refused at once
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	e.live = []string{"c1", "c2"}
	require.NoError(t, e.relay.Sync(context.Background(), "acme"))
	assert.Equal(t, before, len(c2.all()), "nothing relayed to a connector that was away")
	assert.Len(t, e.relay.Peers("acme"), 2)
	assert.Empty(t, e.relay.Peers("globex"))
}
