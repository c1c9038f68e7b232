package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
	agent "github.com/liaisonhq/liaison/tunnel/connector"
)

var lowArgon2 = keyenvelope.Argon2Params{Time: 2, MemoryKiB: 19 << 10, Threads: 1}

// shareConn is a real tunnel/connector agent (key-only) of the share tests, with
// its KEK file, passphrase file and share file on disk.
type shareConn struct {
	id    string
	cfg   agent.Config
	agent *agent.Agent
	pass  []byte
}

type shareEnv struct {
	*env
	sched ed25519.PrivateKey // signs the release tickets the connectors accept
}

func newShareEnv(t *testing.T) *shareEnv {
	_, sched, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	// A slower ping than newEnv's default: a loaded test machine must not
	// lose sessions while connectors derive Argon2id keys.
	return &shareEnv{env: newEnv(t, func(c *cloudapp.Config) {
		c.KeyShareInterval = -1
		c.PingInterval = 5 * time.Second
	}), sched: sched}
}

// newConn enrolls a connector; with keyring it gets a KEK file holding it
// (the tenant's first connector, "keys init"), else it joins, trusting
// approverFP ("keys join").
func (e *shareEnv) newConn(keyring *keyenvelope.Keyring, approverFP string) *shareConn {
	t := e.t
	dir := t.TempDir()
	tok, err := e.srv.IssueEnrollmentToken(context.Background(), "acme", time.Minute)
	require.NoError(t, err)
	cloud := agent.Cloud{URL: e.srv.URL(), CAPEM: e.srv.CAPEM(), IdentityFile: filepath.Join(dir, "identity.json"),
		BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	id, err := agent.Enroll(context.Background(), cloud, tok)
	require.NoError(t, err)
	c := &shareConn{id: id.ConnectorID, pass: []byte("correct horse battery staple")}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pass"), c.pass, 0o600))
	c.cfg = agent.Config{
		Cloud: cloud,
		Keys: &agent.Keys{KEKFile: filepath.Join(dir, "kek.kenv"), PassphraseFile: filepath.Join(dir, "pass"),
			SchedulerKey: e.sched.Public().(ed25519.PublicKey), Argon2: lowArgon2},
		Policy: agent.Policy{Allow: []agent.Operation{agent.OpKeys}},
		Audit:  agent.Audit{Disabled: true},
	}
	if keyring != nil {
		require.NoError(t, keyring.WriteKEKFile(c.cfg.Keys.KEKFile, c.pass, lowArgon2))
	} else {
		require.NoError(t, agent.JoinShare(c.cfg, approverFP))
	}
	c.agent, err = agent.New(c.cfg)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.agent.Run(context.Background()) }()
	t.Cleanup(func() { _ = c.agent.Close(); <-done })
	e.waitLive(c.id)
	return c
}

func (e *shareEnv) waitLive(id string) {
	require.Eventually(e.t, func() bool {
		cs, err := e.srv.Connectors(context.Background(), "acme")
		require.NoError(e.t, err)
		for _, ci := range cs {
			if ci.ID == id && ci.Sessions > 0 {
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
}

// round runs a key-share round. A round that fails to reach a connector
// (a session lost on a loaded machine) is run again, as the next periodic
// round would: rounds are idempotent.
func (e *shareEnv) round() {
	e.t.Helper()
	var err error
	for range 5 {
		if err = e.srv.SyncKeyShares(context.Background(), "acme"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(e.t, err)
}

func (c *shareConn) fingerprint(t *testing.T) string {
	fp, err := agent.ShareFingerprint(c.cfg)
	require.NoError(t, err)
	return fp
}

// editKEKFile is what "connector keys rotate/promote" do: open the file,
// change the keyring, write it back.
func (c *shareConn) editKEKFile(t *testing.T, fn func(*keyenvelope.Keyring)) {
	k, err := keyenvelope.ReadKEKFile(c.cfg.Keys.KEKFile, c.pass)
	require.NoError(t, err)
	fn(k)
	require.NoError(t, k.WriteKEKFile(c.cfg.Keys.KEKFile, c.pass, lowArgon2))
}

var shareCtx = keyenvelope.Context{Tenant: "acme", User: "alice@acme.example", Purpose: "backup"}

func (e *shareEnv) keys(c *shareConn) *keyhttp.Client {
	kc, err := keyhttp.NewClient("http://connector/keys", cloudapp.TunnelVia(e.srv, "acme", c.id))
	require.NoError(e.t, err)
	return kc
}

// release asks c to release wrapped to a fresh worker key and opens it.
func (e *shareEnv) release(c *shareConn, wrapped []byte, id keyenvelope.EkeyID) (*keyenvelope.Ekey, error) {
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(e.t, err)
	now := time.Now()
	ticket, err := keyenvelope.IssueTicket(e.sched, &keyenvelope.Ticket{JobID: "job-1", Tenant: "acme", User: shareCtx.User,
		Purpose: shareCtx.Purpose, JobPurpose: keyenvelope.JobBackup, EkeyID: id, IssuedAt: now, Expires: now.Add(time.Minute),
		WorkerKey: worker.PublicKey()})
	require.NoError(e.t, err)
	rel, err := e.keys(c).Release(context.Background(), ticket, wrapped)
	if err != nil {
		return nil, err
	}
	return keyenvelope.OpenRelease(worker, ticket, rel)
}

// threeConnectors: c1 has the keyring; c2 and c3 join it after a person
// compared fingerprints on both sides.
func threeConnectors(t *testing.T) (*shareEnv, []*shareConn) {
	e := newShareEnv(t)
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	c1 := e.newConn(kr, "")
	fp1 := c1.fingerprint(t)
	c2 := e.newConn(nil, fp1)
	c3 := e.newConn(nil, fp1)
	require.Nil(t, c2.agent.Keyring(), "a joining connector starts without a keyring")

	e.round() // requests reach the cloud
	e.round() // and c1
	reqs, err := agent.ShareRequests(c1.cfg)
	require.NoError(t, err)
	require.Len(t, reqs, 2)
	for _, c := range []*shareConn{c2, c3} {
		fp := c.fingerprint(t) // shown on the new connector
		var seen bool
		for _, r := range reqs {
			seen = seen || (r.ConnectorID == c.id && r.Fingerprint == fp)
		}
		require.True(t, seen, "c1 lists %s with the fingerprint it shows", c.id)
		_, err := agent.ApproveShare(c1.cfg, strings.ToLower(fp)) // typed by a person
		require.NoError(t, err)
	}
	for range 3 {
		e.round()
	}
	for _, c := range []*shareConn{c2, c3} {
		require.NotNil(t, c.agent.Keyring(), "%s received the keyring", c.id)
		require.Equal(t, kr.ID(), c.agent.Keyring().ID())
		onDisk, err := keyenvelope.ReadKEKFile(c.cfg.Keys.KEKFile, c.pass)
		require.NoError(t, err, "the received keyring is written to the KEK file")
		require.Equal(t, kr.ID(), onDisk.ID())
	}
	return e, []*shareConn{c1, c2, c3}
}

func TestKeyShareThreeConnectorsApproveShareRelease(t *testing.T) {
	e, cs := threeConnectors(t)
	ctx := context.Background()
	for _, w := range cs {
		wrapped, id, err := e.keys(w).GenerateWrapped(ctx, shareCtx)
		require.NoError(t, err)
		var first *keyenvelope.Ekey
		for _, r := range cs {
			ek, err := e.release(r, wrapped, id)
			require.NoError(t, err, "%s releases what %s wrapped", r.id, w.id)
			require.Equal(t, id, ek.ID)
			if first == nil {
				first = ek
			}
			require.Equal(t, first.Key, ek.Key, "every connector releases the same ekey")
		}
	}
}

func TestKeyShareRotateAndPromote(t *testing.T) {
	e, cs := threeConnectors(t)
	c1, c2, c3 := cs[0], cs[1], cs[2]
	// keys rotate on c2, which did not approve anyone.
	var v uint32
	c2.editKEKFile(t, func(k *keyenvelope.Keyring) {
		var err error
		v, err = k.AddVersion()
		require.NoError(t, err)
	})
	require.EqualValues(t, 2, v)
	e.round() // c2 picks the new version up from its file and seals it to c1 and c3
	err := agent.CheckPromote(c2.cfg, v)
	require.ErrorIs(t, err, agent.ErrVersionMissing, "promotion must wait")
	require.Contains(t, err.Error(), c1.id)
	require.Contains(t, err.Error(), c3.id)
	for i := 0; agent.CheckPromote(c2.cfg, v) != nil; i++ {
		require.Less(t, i, 5, "version %d never reached every connector", v)
		e.round()
	}
	var api struct{ Peers []keyshare.Peer }
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/key-share/rounds", nil, &api))
	require.Len(t, api.Peers, 3)
	for _, p := range api.Peers {
		require.Contains(t, p.Versions, v, "the cloud sees %s has version %d (numbers only)", p.ConnectorID, v)
	}
	c2.editKEKFile(t, func(k *keyenvelope.Keyring) { require.NoError(t, k.Promote(v)) })
	e.round()
	require.Equal(t, v, c2.agent.Keyring().Primary(), "the running agent picked the promotion up")
	for range 2 {
		e.round()
	}
	for _, c := range cs {
		require.Equal(t, v, c.agent.Keyring().Primary(), "%s adopted the promotion", c.id)
	}
	wrapped, id, err := e.keys(c2).GenerateWrapped(context.Background(), shareCtx)
	require.NoError(t, err)
	h, _, err := keyenvelope.Inspect(wrapped)
	require.NoError(t, err)
	require.Equal(t, v, h.KeyVersion)
	for _, r := range cs {
		_, err := e.release(r, wrapped, id)
		require.NoError(t, err, "%s releases under the new version", r.id)
	}
}

// cloudConn is a connector the cloud side enrolls itself, with keys of its
// own: it asks for the keyring and keeps every share it is sent.
type cloudConn struct {
	id   string
	seal *ecdh.PrivateKey
	sign ed25519.PrivateKey
	mu   sync.Mutex
	got  [][]byte
	// forge, when set, is answered as the connector's outgoing shares.
	forge [][]byte
	// reqSign, when set, replaces the sign key in its request.
	reqSign ed25519.PublicKey
}

func (e *shareEnv) cloudConnector() *cloudConn {
	c := e.enroll("acme") // the tenant's enrollment, done by the cloud side
	cc := &cloudConn{id: c.id, sign: c.key}
	var err error
	cc.seal, err = ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(e.t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+keyshare.Path, func(w http.ResponseWriter, r *http.Request) {
		var in keyshare.Sync
		_ = json.NewDecoder(r.Body).Decode(&in)
		cc.mu.Lock()
		cc.got = append(cc.got, in.Shares...)
		sign := cc.sign.Public().(ed25519.PublicKey)
		if cc.reqSign != nil {
			sign = cc.reqSign
		}
		out := keyshare.Reply{Shares: cc.forge,
			Request: &keyshare.Request{ConnectorID: cc.id, SignKey: sign, SealKey: cc.seal.PublicKey().Bytes()}}
		cc.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	})
	c.handler = mux
	e.start(c)
	return cc
}

func TestKeyShareCloudOwnConnectorGetsNothing(t *testing.T) {
	e, cs := threeConnectors(t)
	c1, c2 := cs[0], cs[1]
	cc := e.cloudConnector()
	self := keyenvelope.ShareIdentity{Tenant: "acme", ConnectorID: cc.id, SignKey: cc.sign, SealKey: cc.seal}

	// The cloud's connector asks; its request is visible on c1, nobody
	// approves it.
	e.round()
	e.round()
	reqs, err := agent.ShareRequests(c1.cfg)
	require.NoError(t, err)
	require.Len(t, reqs, 1)
	require.Equal(t, cc.id, reqs[0].ConnectorID)
	// A new version is made and spread: still nothing for the cloud.
	c1.editKEKFile(t, func(k *keyenvelope.Keyring) { _, err := k.AddVersion(); require.NoError(t, err) })
	for range 4 {
		e.round()
	}
	require.Len(t, c2.agent.Keyring().Versions(), 2)
	cc.mu.Lock()
	got := cc.got
	cc.mu.Unlock()
	require.Empty(t, got, "no share was sealed to the unapproved connector")

	// The cloud substitutes a keyring of its own, signed by its connector's
	// key and sealed to c2: c2 refuses it and keeps the tenant's keyring.
	evil, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	members, err := agent.ShareMembers(c2.cfg)
	require.NoError(t, err)
	var c2m keyenvelope.Member
	for _, m := range members {
		if m.ConnectorID == c2.id {
			c2m = keyenvelope.Member{ConnectorID: m.ConnectorID, SignKey: m.SignKey, SealKey: m.SealKey}
		}
	}
	forged, err := keyenvelope.SealKeyring(evil, self, c2m, []keyenvelope.Member{self.Member(), c2m})
	require.NoError(t, err)
	cc.mu.Lock()
	cc.forge = [][]byte{forged}
	cc.mu.Unlock()
	before := c2.agent.Keyring().ID()
	e.round()
	e.round()
	require.Equal(t, before, c2.agent.Keyring().ID())
	onDisk, err := keyenvelope.ReadKEKFile(c2.cfg.Keys.KEKFile, c2.pass)
	require.NoError(t, err)
	require.Equal(t, before, onDisk.ID())
	members, err = agent.ShareMembers(c2.cfg)
	require.NoError(t, err)
	for _, m := range members {
		require.NotEqual(t, cc.id, m.ConnectorID, "the forged share's member list was not merged")
	}
	// The same against a connector that is joining (it has no keyring to
	// compare with): it accepts only a keyring signed by the approver whose
	// fingerprint the person typed at keys join.
	c4 := e.newConn(nil, c1.fingerprint(t))
	c4id, err := agent.LoadShareIdentity(c4.cfg)
	require.NoError(t, err)
	forged4, err := keyenvelope.SealKeyring(evil, self, c4id.Member(), []keyenvelope.Member{self.Member(), c4id.Member()})
	require.NoError(t, err)
	cc.mu.Lock()
	cc.forge = [][]byte{forged4}
	cc.mu.Unlock()
	for range 3 {
		e.round()
	}
	require.Nil(t, c4.agent.Keyring(), "c4 installed the cloud's keyring")
	_, err = os.Stat(c4.cfg.Keys.KEKFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	// Once approved on c1, c4 gets the tenant's keyring.
	_, err = agent.ApproveShare(c1.cfg, c4.fingerprint(t))
	require.NoError(t, err)
	for range 3 {
		e.round()
	}
	require.NotNil(t, c4.agent.Keyring())
	require.Equal(t, before, c4.agent.Keyring().ID())

	// And a share meant for c2, captured in transit, does not open with the
	// cloud's keys.
	c1id, err := shareIdentityForTest(c1)
	require.NoError(t, err)
	meant, err := keyenvelope.SealKeyring(c1.agent.Keyring(), c1id, c2m, nil)
	require.NoError(t, err)
	_, err = keyenvelope.OpenKeyringShare(meant, self, func(keyenvelope.Member) bool { return true })
	require.ErrorIs(t, err, keyenvelope.ErrShare)
}

func TestKeyShareRevokedGetsNoLaterVersion(t *testing.T) {
	e, cs := threeConnectors(t)
	c1, c2, c3 := cs[0], cs[1], cs[2]
	require.NoError(t, e.srv.RevokeConnector(context.Background(), "acme", c3.id))
	var v uint32
	c1.editKEKFile(t, func(k *keyenvelope.Keyring) {
		var err error
		v, err = k.AddVersion()
		require.NoError(t, err)
	})
	for range 4 {
		e.round()
	}
	require.Len(t, c2.agent.Keyring().Versions(), 2, "c2 got version %d", v)
	require.Len(t, c3.agent.Keyring().Versions(), 1, "revoked c3 did not")
	k3, err := keyenvelope.ReadKEKFile(c3.cfg.Keys.KEKFile, c3.pass)
	require.NoError(t, err)
	require.Len(t, k3.Versions(), 1)
	require.NoError(t, agent.CheckPromote(c1.cfg, v), "a revoked connector does not hold promotion up")
}

func TestKeyShareLocallyRevokedGetsNoLaterVersion(t *testing.T) {
	e, cs := threeConnectors(t)
	c1, c2, c3 := cs[0], cs[1], cs[2]
	// Revoked on c1 only (the cloud still lists c3): c1 stops sealing to
	// it, and the revocation travels to c2 with c1's next share.
	_, err := agent.RevokeShare(c1.cfg, c3.fingerprint(t))
	require.NoError(t, err)
	c1.editKEKFile(t, func(k *keyenvelope.Keyring) { _, err := k.AddVersion(); require.NoError(t, err) })
	for range 4 {
		e.round()
	}
	require.Len(t, c2.agent.Keyring().Versions(), 2)
	require.Len(t, c3.agent.Keyring().Versions(), 1, "c3 got nothing after its revocation")
	members, err := agent.ShareMembers(c2.cfg)
	require.NoError(t, err)
	for _, m := range members {
		if m.ConnectorID == c3.id {
			require.True(t, m.Revoked, "c2 learnt of the revocation")
		}
	}
	// A revoked connector is not approved again (its request is not even
	// listed, and approving its fingerprint fails).
	_, err = agent.ApproveShare(c1.cfg, c3.fingerprint(t))
	require.ErrorIs(t, err, agent.ErrNoShareRequest)
}

func shareIdentityForTest(c *shareConn) (keyenvelope.ShareIdentity, error) {
	return agent.LoadShareIdentity(c.cfg)
}

// The relay's own checks (hygiene: the connectors' fingerprint checks are
// what security rests on): a request without the connector's enrolled key
// is not relayed, nor a share whose header names another sender.
func TestKeyShareRelayChecks(t *testing.T) {
	e := newShareEnv(t)
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	c1 := e.newConn(kr, "")
	a, b := e.cloudConnector(), e.cloudConnector()
	other, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	a.mu.Lock()
	a.reqSign = other
	a.mu.Unlock()
	e.round()
	e.round()
	reqs, err := agent.ShareRequests(c1.cfg)
	require.NoError(t, err)
	require.Len(t, reqs, 1, "only b's request, which carries its enrolled key")
	require.Equal(t, b.id, reqs[0].ConnectorID)

	self := func(c *cloudConn) keyenvelope.ShareIdentity {
		return keyenvelope.ShareIdentity{Tenant: "acme", ConnectorID: c.id, SignKey: c.sign, SealKey: c.seal}
	}
	toB := self(b).Member()
	// From a, claiming to be c1: dropped. From a as itself: relayed.
	impostor := self(a)
	impostor.ConnectorID = c1.id
	forged, err := keyenvelope.SealKeyring(kr, impostor, toB, nil)
	require.NoError(t, err)
	a.mu.Lock()
	a.forge = [][]byte{forged}
	a.mu.Unlock()
	e.round()
	e.round()
	b.mu.Lock()
	require.Empty(t, b.got)
	b.mu.Unlock()
	genuine, err := keyenvelope.SealKeyring(kr, self(a), toB, nil)
	require.NoError(t, err)
	a.mu.Lock()
	a.forge = [][]byte{genuine}
	a.mu.Unlock()
	e.round()
	e.round()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(t, b.got)
	for _, g := range b.got {
		require.Equal(t, genuine, g)
	}
}

// The periodic rounds (Config.KeyShareInterval) carry a join through
// without anyone asking for a round.
func TestKeySharePeriodicRounds(t *testing.T) {
	_, sched, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	e := &shareEnv{env: newEnv(t, func(c *cloudapp.Config) {
		c.KeyShareInterval = 50 * time.Millisecond
		c.PingInterval = 5 * time.Second
	}), sched: sched}
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	c1 := e.newConn(kr, "")
	c2 := e.newConn(nil, c1.fingerprint(t))
	fp2 := c2.fingerprint(t)
	require.Eventually(t, func() bool {
		_, err := agent.ApproveShare(c1.cfg, fp2)
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "c2's request never reached c1")
	require.Eventually(t, func() bool { return c2.agent.Keyring() != nil }, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, kr.ID(), c2.agent.Keyring().ID())
}
