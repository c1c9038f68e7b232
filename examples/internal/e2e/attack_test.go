package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// The attacker suite of issue 9: a TLS-terminating proxy that the
// connector trusts (its CA is in cloud.ca_file, as the README's proxy
// deployment has it) sits between connector and cloud. The threat model:
// it may read, drop, delay, replay and inject bytes; it must not read a
// password, an ekey or a KEK, make the cloud act on a directory answer the
// enrolled connector did not give, enroll a key of its own with a token it
// saw, or become the tenant's connector with a token it captured. These
// tests try each with the public surfaces only (cloudapp, tunnel/connector,
// tunnel's connector, HTTP, and the WebSocket as tunnel/SPEC.md defines
// it). The connector is enrolled and run as a deployment does it (a lenr2_
// token, the cloud key pinned, an identity file); the attacker knows the
// cloud's public key. Where tunnel v2 takes a move away (the plaintext it
// would rewrite is sealed), the test checks what is left to the attacker
// fails safely: a tampered message closes the session, the caller gets an
// error, and the cloud acts on nothing forged.

// startThroughProxy enrolls and starts the connector through p and waits
// until the cloud routes to it.
func startThroughProxy(t *testing.T, ps *proxiedStack, p *attackProxy) {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	require.NoError(t, ps.enroll(ctx, p.URL(), p.CAPEM()), "enrollment through the inspecting proxy")
	connected := ps.startConnector(p.URL(), p.CAPEM())
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the connector never connected through the inspecting proxy")
	}
	require.NoError(t, ps.waitRoutable(ctx))
}

func TestAttackProxyNeverSeesPasswordEkeyOrKEK(t *testing.T) {
	ps := newProxiedStack(t)
	p := newAttackProxy(t, ps.cloud.CAPEM())
	startThroughProxy(t, ps, p)
	ctx := ctxT(t, 2*time.Minute)
	var secrets []struct {
		name  string
		value []byte
	}
	secret := func(name string, v []byte) {
		secrets = append(secrets, struct {
			name  string
			value []byte
		}{name, v})
	}

	// Browse, mapping, import.
	ous, err := ps.cloud.OUs(ctx, ps.tenant, "")
	require.NoError(t, err)
	require.NotEmpty(t, ous)
	_, err = ps.cloud.Groups(ctx, ps.tenant, "")
	require.NoError(t, err)
	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
	res, err := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, len(ps.users), res.Summary.Creates, "every demo user imported through the proxy")

	// Web logins: right and wrong passwords.
	for _, u := range ps.users {
		_, err := ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password)
		require.NoError(t, err, "web login of %s through the proxy", u.Login)
		secret("password of "+u.Login, []byte(u.Password))
	}
	wrong := "Wrong" + hex.EncodeToString(randomBytes(10))
	_, err = ps.cloud.Login(ctx, ps.tenant, "all", ps.users[0].Login, wrong)
	require.ErrorIs(t, err, cloudapp.ErrLoginFailed)
	secret("a wrong password", []byte(wrong))

	// Activation of a device for a user not yet known (lookup through the
	// tunnel).
	token, _, err := ps.cloud.IssueDeploymentToken(ctx, ps.tenant, "all", time.Hour)
	require.NoError(t, err)
	_, devKey, _ := ed25519.GenerateKey(rand.Reader)
	req := activation.Request{Tenant: ps.tenant, Token: token, Login: ps.users[1].Login, DeviceID: "dev-attack-1", Hostname: "dev-attack-1", Source: "192.0.2.7"}
	req.Sign(devKey)
	act, err := ps.cloud.ActivationService().Activate(ctx, req)
	require.NoError(t, err, "activation through the proxy")

	// Key release to a backup worker: the first release also generates the
	// user's wrapped ekey on the connector.
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	rel, err := ps.cloud.ReleaseKey(ctx, ps.tenant, act.User.ID, "job-attack-1", worker.PublicKey().Bytes(), time.Minute)
	require.NoError(t, err, "key release through the proxy")
	ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
	require.NoError(t, err)
	secret("the released ekey", ek.Key[:])

	// The connector's private keys and the KEK.
	secret("the connector's identity key", ps.key.Seed())
	secret("the connector's credentials key", ps.credKey.Bytes())
	for i, k := range kekSecrets(t, ps.keyring) {
		name := "the KEK escrow line"
		if i > 0 {
			name = "KEK escrow bytes"
		}
		secret(name, k)
	}

	recs := p.recordings()
	// The proxy really was in the path: it relayed the tunnel's upgrade and
	// WebSocket payloads, and its search finds what it does see.
	require.GreaterOrEqual(t, p.tunnelUpgrades(), 1, "the tunnel went through the proxy")
	var ws int
	for _, r := range recs {
		if r.what == "ws" {
			ws++
		}
	}
	require.Greater(t, ws, 10, "WebSocket payloads recorded")
	require.NotEmpty(t, leaks(recs, []byte(cloudapp.PathTunnel)), "the search finds bytes the proxy saw")

	for _, s := range secrets {
		assert.Empty(t, leaks(recs, s.value), "the proxy saw %s", s.name)
	}
	t.Logf("searched %d recordings (%d WebSocket payloads) for %d secrets", len(recs), ws, len(secrets))
}

func TestAttackProxyLearnsOnlyThatRequestsHappen(t *testing.T) {
	// The threat model lets the proxy see that requests happen, not what
	// they carry: which users log in, the directory's users, DNs and mail
	// addresses streamed by an import, the OUs of a browse.
	ps := newProxiedStack(t)
	p := newAttackProxy(t, ps.cloud.CAPEM())
	startThroughProxy(t, ps, p)
	ctx := ctxT(t, time.Minute)
	_, err := ps.cloud.OUs(ctx, ps.tenant, "")
	require.NoError(t, err)
	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
	_, err = ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
	require.NoError(t, err)
	_, err = ps.cloud.Login(ctx, ps.tenant, "all", ps.users[2].Login, ps.users[2].Password)
	require.NoError(t, err)
	users, err := ps.cloud.Users(ctx, ps.tenant)
	require.NoError(t, err)
	require.Len(t, users, len(ps.users))

	recs := p.recordings()
	for _, u := range users {
		for what, v := range map[string]string{"login": u.Login, "mail": u.Email, "DN": u.DN, "directory ID": u.DirectoryID} {
			assert.Empty(t, leaks(recs, []byte(v)), "the proxy read %s's %s", u.Login, what)
		}
	}
	assert.Empty(t, leaks(recs, []byte("ou=Engineering,ou=People,"+demoldap.BaseDN)), "the proxy read an OU's DN")
}

func TestAttackProxyCannotRedirectSealedPasswords(t *testing.T) {
	// The proxy stays a relay (the real connector keeps its session) but
	// puts its own X25519 key where the connector publishes the key web-login
	// passwords are sealed to, then tries to open what the cloud sealed.
	// With tunnel v2 the connector's status answer is sealed: the proxy
	// never finds the key to substitute, the cloud seals to the connector's
	// real key, and the login works.
	ps := newProxiedStack(t)
	p := newAttackProxy(t, ps.cloud.CAPEM())
	a := newAttacker(t, ps.users[0].Login)
	for _, f := range keyForms(ps.credKey.PublicKey().Bytes(), a.credKey.PublicKey().Bytes()) {
		p.substitute(toCloud, f[0], f[1])
	}
	startThroughProxy(t, ps, p)
	ctx := ctxT(t, time.Minute)
	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
	u := ps.users[2]
	_, loginErr := ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password)
	t.Logf("login with the credentials key substituted in flight: %v (substitutions applied: %v)", loginErr, p.substitutions())
	for i, n := range p.substitutions() {
		assert.Zero(t, n, "the proxy found the connector's credentials key (form %d) in what it relayed and replaced it", i)
	}
	require.NoError(t, loginErr, "the web login, answered by the real connector")
	st, err := ps.status(ctx)
	require.NoError(t, err)
	assert.Equal(t, ps.credKey.PublicKey().Bytes(), st.CredentialsKey, "the cloud sees the connector's own credentials key")

	// Whatever credential check crossed the proxy, the attacker hands it to a
	// directory service holding its own private key.
	h := a.handler(t, ps.id)
	tried := 0
	for _, r := range p.recordings() {
		if r.dir != toConnector {
			continue
		}
		i := bytes.Index(r.data, []byte(`{"mapping"`))
		if i < 0 {
			continue
		}
		var body json.RawMessage
		if json.NewDecoder(bytes.NewReader(r.data[i:])).Decode(&body) != nil {
			continue
		}
		tried++
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, "/directory/credentials", bytes.NewReader(body)))
	}
	_, passwords, _ := a.seen()
	assert.Zero(t, tried, "the proxy read credential-check requests in what it relayed")
	assert.NotContains(t, passwords, u.Password, "the attacker opened a web-login password the cloud sealed to the key it substituted")
	assert.Empty(t, leaks(p.recordings(), []byte(u.Password)), "the proxy saw the password")
	t.Logf("credential checks the attacker replayed to its own key: %d; passwords opened: %d", tried, len(passwords))
}

// sessionBroken waits until the connector dialed a tunnel again through p
// after upgrades: the session the proxy tampered with was closed.
func sessionBroken(t *testing.T, p *attackProxy, upgrades int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.tunnelUpgrades() > upgrades }, 10*time.Second, 10*time.Millisecond,
		"the session stayed up after a tampered message: the tampering went unnoticed")
}

func TestAttackProxyRelayCannotRewriteAnswers(t *testing.T) {
	// The real connector keeps its session; the proxy rewrites bytes of its
	// answers in flight, keeping every length as it was, so no frame or
	// message boundary moves. With tunnel v2 the answers are sealed: the
	// plaintext it looks for is never there, and the blind rewrite left to
	// it (one bit of the next message big enough to be the answer) breaks
	// the session. Either way the cloud acts on nothing forged: the request
	// fails, or is answered again, truthfully, over a new session.
	t.Run("import data", func(t *testing.T) {
		ps := newProxiedStack(t)
		p := newAttackProxy(t, ps.cloud.CAPEM())
		// Every enabled user arrives disabled (JSON allows the space).
		p.substitute(toCloud, []byte(`"disabled":false`), []byte(`"disabled":true `))
		startThroughProxy(t, ps, p)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
		upgrades := p.tunnelUpgrades()
		p.tamperNext(toCloud, 256)
		_, importErr := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
		require.Equal(t, 1, p.tampered(), "the proxy flipped a bit of a message toward the cloud")
		assert.Zero(t, p.substitutions()[0], "the proxy found the users' disabled flags in what it relayed and rewrote them")
		sessionBroken(t, p, upgrades)

		users, err := ps.cloud.Users(ctx, ps.tenant)
		require.NoError(t, err)
		if importErr == nil {
			assert.Len(t, users, len(ps.users), "the import succeeded: every directory user, as the directory has them")
		} else {
			assert.ErrorIs(t, importErr, tunnel.ErrSessionLost, "the import fails because the tampered session died")
		}
		real := map[string]bool{}
		for _, u := range ps.users {
			real[u.Login] = true
		}
		for _, u := range users {
			assert.True(t, real[u.Login], "the cloud imported %s, whom the directory does not have", u.Login)
			assert.False(t, u.Disabled, "%s is enabled in the directory, disabled in the cloud by the proxy", u.Login)
		}
		t.Logf("import: %v; users: %d; substitutions applied: %v; frames tampered: %d", importErr, len(users), p.substitutions(), p.tampered())
	})

	t.Run("lookup for activation", func(t *testing.T) {
		ps := newProxiedStack(t)
		p := newAttackProxy(t, ps.cloud.CAPEM())
		startThroughProxy(t, ps, p)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))
		_, err := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
		require.NoError(t, err)
		byLogin := map[string]cloudapp.User{}
		users, err := ps.cloud.Users(ctx, ps.tenant)
		require.NoError(t, err)
		for _, u := range users {
			byLogin[u.Login] = u
		}
		a, b := byLogin[ps.users[0].Login], byLogin[ps.users[1].Login]
		require.NotEmpty(t, a.DirectoryID)
		require.Len(t, b.DirectoryID, len(a.DirectoryID))
		// User a's device is to be bound to user b's account.
		p.substitute(toCloud, []byte(a.DirectoryID), []byte(b.DirectoryID))
		upgrades := p.tunnelUpgrades()
		p.tamperNext(toCloud, 128)

		token, _, err := ps.cloud.IssueDeploymentToken(ctx, ps.tenant, "all", time.Hour)
		require.NoError(t, err)
		_, devKey, _ := ed25519.GenerateKey(rand.Reader)
		req := activation.Request{Tenant: ps.tenant, Token: token, Login: a.Login, DeviceID: "dev-relay", Hostname: "dev-relay", Source: "192.0.2.9"}
		req.Sign(devKey)
		res, err := ps.cloud.ActivationService().Activate(ctx, req)
		require.Equal(t, 1, p.tampered(), "the proxy flipped a bit of a message toward the cloud")
		assert.Zero(t, p.substitutions()[0], "the proxy found a directory ID in what it relayed and rewrote it")
		sessionBroken(t, p, upgrades)
		if err == nil {
			assert.Equal(t, a.DirectoryID, res.User.DirectoryID, "%s's device was bound to %s's account by the proxy", a.Login, b.Login)
			assert.Equal(t, a.ID, res.User.ID)
		} else {
			assert.ErrorIs(t, err, activation.ErrDirectoryUnavailable, "the activation fails closed")
			assert.ErrorIs(t, err, tunnel.ErrSessionLost, "because the tampered session died")
		}
		t.Logf("activation: %v; substitutions applied: %v; frames tampered: %d", err, p.substitutions(), p.tampered())
	})
}

// attacker is the proxy's owner acting as the tenant's connector with a
// connect token it captured: its own tunnel client, serving forged
// directory answers from a directory of its own, with a credentials key of
// its own, recording what it is asked and every password it opens.
type attacker struct {
	credKey *ecdh.PrivateKey
	key     ed25519.PrivateKey
	ldap    *demoldap.Server

	mu        sync.Mutex
	requests  []string
	passwords []string
	statuses  []tunnel.Status
	first     chan struct{} // closed at the first connect outcome
	firstOnce sync.Once
}

// forgedUsers are the attacker directory's users: one with a victim's
// login (a "valid" verdict for any password), one that exists only here
// (activation), and users an import would create.
func forgedUsers(victim string) []demoldap.User {
	return []demoldap.User{
		{Login: victim, GivenName: "Forged", Surname: "Victim", Department: "Engineering", Password: "irrelevant-1"},
		{Login: "mallory.forged", GivenName: "Mallory", Surname: "Forged", Department: "Sales", Password: "irrelevant-2"},
		{Login: "forged.import1", GivenName: "Forged", Surname: "One", Department: "Finance", Password: "irrelevant-3"},
		{Login: "forged.import2", GivenName: "Forged", Surname: "Two", Department: "Support", Password: "irrelevant-4"},
	}
}

// forgingDirectory answers like a real directory (the attacker's own), and
// says yes to every password, keeping it.
type forgingDirectory struct {
	*directory.Client
	a *attacker
}

func (d forgingDirectory) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	d.a.mu.Lock()
	d.a.passwords = append(d.a.passwords, password)
	d.a.mu.Unlock()
	return d.Client.Lookup(ctx, m, name)
}

func (a *attacker) handler(t *testing.T, connectorID string) http.Handler {
	dc, err := directory.Open(directory.Config{URLs: []string{a.ldap.URL()}, BindDN: demoldap.ServiceDN,
		BindPassword: demoldap.ServicePassword, CAPEM: a.ldap.CAPEM()})
	require.NoError(t, err)
	t.Cleanup(func() { dc.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+connector.StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(connector.StatusResponse{
			ConnectorID: connectorID, Directory: true, Keys: true,
			Allow:           []connector.Operation{connector.OpBrowse, connector.OpImport, connector.OpLookup, connector.OpCredentials, connector.OpKeys},
			SealedPasswords: true, CredentialsKey: a.credKey.PublicKey().Bytes(),
		})
	})
	mux.Handle("/directory/", http.StripPrefix("/directory",
		directoryhttp.NewHandler(forgingDirectory{Client: dc, a: a}, directoryhttp.WithPrivateKey(a.credKey))))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, r.Method+" "+r.URL.Path)
		a.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func (a *attacker) onStatus(s tunnel.Status) {
	a.mu.Lock()
	a.statuses = append(a.statuses, s)
	a.mu.Unlock()
	if s.State == tunnel.StateConnected || s.Err != nil {
		a.firstOnce.Do(func() { close(a.first) })
	}
}

// firstErr is the error of the attacker's first connect outcome, if any.
func (a *attacker) firstErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.statuses {
		if s.State == tunnel.StateConnected || s.Err != nil {
			return s.Err
		}
	}
	return nil
}

func (a *attacker) seen() (requests, passwords []string, connected bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.statuses {
		if s.State == tunnel.StateConnected {
			connected = true
		}
	}
	return append([]string(nil), a.requests...), append([]string(nil), a.passwords...), connected
}

func newAttacker(t *testing.T, victimLogin string) *attacker {
	t.Helper()
	a := &attacker{first: make(chan struct{})}
	var err error
	a.credKey, err = ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, a.key, err = ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	a.ldap, err = demoldap.Start(demoldap.Config{Users: forgedUsers(victimLogin)})
	require.NoError(t, err)
	t.Cleanup(func() { a.ldap.Close() })
	return a
}

// runAttackerConnector runs the attacker's own tunnel client as connector
// id, with its own key, through proxyURL (or directly when empty), and
// waits for the outcome of its first attempt.
func (a *attacker) runConnector(t *testing.T, cloudURL string, cloudKey tunnel.CloudKey, id string, caPEM []byte, proxyURL string) {
	t.Helper()
	c, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL:          "wss" + strings.TrimPrefix(cloudURL, "https") + cloudapp.PathTunnel,
		ConnectorID:  id,
		Key:          a.key,
		CloudKey:     cloudKey,
		Handler:      a.handler(t, id),
		ExtraRootCAs: caPEM,
		ProxyURL:     proxyURL,
		BackoffBase:  20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		OnStatus: a.onStatus,
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() { c.Close(); <-done })
	select {
	case <-a.first:
	case err := <-done:
		t.Logf("attacker's connector stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the attacker's connector got no answer in 30s")
	}
}

// hijacked sets up holes 1's attack: the connector is enrolled and has run
// through the proxy once; then the proxy answers its tunnel upgrades with a
// 502, keeps the connect token and presents it on a connection of its own,
// serving forged answers.
func hijacked(t *testing.T) (*proxiedStack, *attackProxy, *attacker) {
	t.Helper()
	ps := newProxiedStack(t)
	p := newAttackProxy(t, ps.cloud.CAPEM())
	startThroughProxy(t, ps, p)
	ctx := ctxT(t, time.Minute)
	require.NoError(t, ps.cloud.PutMapping(ctx, ps.tenant, "all", directory.Mapping{}))

	// The real connector drops (a network blip) and reconnects into the trap.
	ps.stopConnector()
	p.setHijack(true)
	ps.startConnector(p.URL(), p.CAPEM())
	h, ok := p.capturedUpgrade(10 * time.Second)
	require.True(t, ok, "the connector tried to reconnect through the proxy")
	t.Logf("captured an upgrade with an Authorization of %d bytes", len(h.Get("Authorization")))

	a := newAttacker(t, ps.users[0].Login)
	// The best it can do with tunnel v2, by hand: the token was never shown
	// to the gateway, so the upgrade succeeds; the attacker answers the
	// gateway's HELLO with one of its own that follows the protocol to the
	// letter, over this token, signed by its own key.
	closeCode := handshakeWithCapturedToken(t, ps, h.Get("Authorization"), a.key)
	assert.Equal(t, websocket.StatusPolicyViolation, closeCode, "the gateway refuses a handshake the enrolled key did not sign")
	_, err := ps.status(ctx)
	require.ErrorIs(t, err, tunnel.ErrNotConnected, "the gateway registered the attacker's session")

	// Then its own tunnel client (any protocol), with a token captured after.
	_, ok = p.capturedUpgrade(10 * time.Second)
	require.True(t, ok, "the connector tried to reconnect through the proxy again")
	a.runConnector(t, ps.cloud.URL(), ps.cloud.Gateway().CloudKey(), ps.id, p.CAPEM(), p.ownProxyURL())
	_, _, connected := a.seen()
	t.Logf("attacker's session with the captured token: connected=%v; first outcome: %v", connected, a.firstErr())
	if connected {
		// The gateway registers a session for routing just after its
		// HELLO: wait until requests reach it, then forget this probe.
		require.NoError(t, ps.waitRoutable(ctx), "the attacker's session is routable")
		a.mu.Lock()
		a.requests = nil
		a.mu.Unlock()
	}
	return ps, p, a
}

func TestAttackProxyReplayedConnectTokenIsRefused(t *testing.T) {
	// The proxy relays honestly, keeps the connect token the connector
	// used, and presents it again on a connection of its own: while the
	// connector is connected, and after it went away.
	ps := newProxiedStack(t)
	p := newAttackProxy(t, ps.cloud.CAPEM())
	startThroughProxy(t, ps, p)
	seen := p.seenUpgrades()
	require.NotEmpty(t, seen, "the proxy saw the tunnel's upgrade")
	p.presentUpgrade(seen[len(seen)-1])

	a := newAttacker(t, ps.users[0].Login)
	a.runConnector(t, ps.cloud.URL(), ps.cloud.Gateway().CloudKey(), ps.id, p.CAPEM(), p.ownProxyURL())
	_, _, connected := a.seen()
	assert.False(t, connected, "a used connect token was accepted again, beside the connector")

	ps.stopConnector()
	b := newAttacker(t, ps.users[0].Login)
	b.runConnector(t, ps.cloud.URL(), ps.cloud.Gateway().CloudKey(), ps.id, p.CAPEM(), p.ownProxyURL())
	_, _, connected = b.seen()
	assert.False(t, connected, "a used connect token was accepted again, after the connector left")
	for _, x := range []*attacker{a, b} {
		// The gateway refuses the spent nonce before upgrading: 401.
		err := x.firstErr()
		assert.ErrorIs(t, err, tunnel.ErrUnauthorized, "the replay is refused as unauthorized")
		t.Logf("replay refused: %v", err)
	}
}

func TestAttackProxyCannotBecomeTheConnector(t *testing.T) {
	ps, _, a := hijacked(t)
	ctx := ctxT(t, time.Minute)

	// The cloud goes about its business: a web login with the right
	// password, a browse.
	u := ps.users[0]
	_, loginErr := ps.cloud.Login(ctx, ps.tenant, "all", u.Login, u.Password)
	_, browseErr := ps.cloud.OUs(ctx, ps.tenant, "")
	requests, passwords, connected := a.seen()
	st, statusErr := ps.status(ctx)

	assert.False(t, connected, "the gateway accepted the attacker's session with a captured connect token")
	assert.Empty(t, requests, "cloud requests were routed to the attacker")
	assert.NotContains(t, passwords, u.Password, "the attacker opened a web-login password sealed to its own credentials_key")
	assert.Empty(t, passwords, "passwords sealed to the attacker's key")
	if statusErr == nil {
		assert.NotEqual(t, a.credKey.PublicKey().Bytes(), st.CredentialsKey, "the cloud sees the attacker's credentials_key as the connector's")
	}
	assert.ErrorIs(t, loginErr, tunnel.ErrNotConnected, "with only an impostor on offer, a login fails closed")
	assert.ErrorIs(t, browseErr, tunnel.ErrNotConnected, "with only an impostor on offer, a browse fails closed")
	t.Logf("login: %v; browse: %v; requests the attacker got: %q", loginErr, browseErr, requests)
}

func TestAttackProxyForgedAnswersAreRejected(t *testing.T) {
	ps, _, a := hijacked(t)
	ctx := ctxT(t, time.Minute)
	forged := forgedUsers(ps.users[0].Login)

	t.Run("credential verdict", func(t *testing.T) {
		res, err := ps.cloud.Login(ctx, ps.tenant, "all", ps.users[0].Login, "not-the-password")
		assert.Error(t, err, "a login with a wrong password was accepted: %+v", res)
		assert.ErrorIs(t, err, tunnel.ErrNotConnected)
	})
	t.Run("lookup for activation", func(t *testing.T) {
		token, _, err := ps.cloud.IssueDeploymentToken(ctx, ps.tenant, "all", time.Hour)
		require.NoError(t, err)
		_, devKey, _ := ed25519.GenerateKey(rand.Reader)
		req := activation.Request{Tenant: ps.tenant, Token: token, Login: forged[1].Login, DeviceID: "dev-forged", Hostname: "dev-forged", Source: "192.0.2.8"}
		req.Sign(devKey)
		res, err := ps.cloud.ActivationService().Activate(ctx, req)
		assert.Error(t, err, "a device activated for a user only the attacker's directory has: %+v", res.User)
		assert.ErrorIs(t, err, activation.ErrDirectoryUnavailable)
	})
	t.Run("import data", func(t *testing.T) {
		_, err := ps.cloud.RunImport(ctx, ps.tenant, "all", cloudapp.ImportOptions{})
		assert.Error(t, err, "an import of forged users succeeded")
		assert.ErrorIs(t, err, tunnel.ErrNotConnected)
	})
	t.Run("browse results", func(t *testing.T) {
		ous, err := ps.cloud.OUs(ctx, ps.tenant, "")
		assert.Error(t, err, "a browse answered by the attacker: %v", ous)
		assert.ErrorIs(t, err, tunnel.ErrNotConnected)
	})
	users, err := ps.cloud.Users(ctx, ps.tenant)
	require.NoError(t, err)
	for _, u := range users {
		for _, f := range forged[1:] {
			assert.NotEqual(t, f.Login, u.Login, "the cloud holds a user only the attacker's directory has")
		}
	}
	requests, passwords, _ := a.seen()
	t.Logf("requests the attacker answered: %q; passwords it opened: %d", requests, len(passwords))
}

// handshakeWithCapturedToken opens the attacker's own WebSocket to the
// gateway with a captured Authorization header, reads the gateway's HELLO
// and answers with a connector HELLO (SPEC.md section 3) signed by key over
// the captured token and that HELLO. It returns the WebSocket close code
// the gateway ends the connection with.
func handshakeWithCapturedToken(t *testing.T, ps *proxiedStack, authorization string, key ed25519.PrivateKey) websocket.StatusCode {
	t.Helper()
	token, ok := strings.CutPrefix(authorization, "Liaison ")
	require.True(t, ok, "the captured upgrade carries a connect token")
	ctx := ctxT(t, 10*time.Second)
	conn, _, err := websocket.Dial(ctx, ps.cloud.TunnelURL(), &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, ps.cloud.CAPEM())}},
		HTTPHeader:   http.Header{"Authorization": {authorization}},
		Subprotocols: []string{tunnel.Subprotocol},
	})
	require.NoError(t, err, "the captured token is fresh: the upgrade itself succeeds")
	defer conn.CloseNow()
	_, gatewayMsg, err := conn.Read(ctx)
	require.NoError(t, err, "the gateway's HELLO")
	const frameHeader = 10 // type, flags, stream ID, length
	require.Greater(t, len(gatewayMsg), frameHeader)
	require.Equal(t, byte(0), gatewayMsg[0], "the gateway's first frame is a HELLO")
	gatewayHello := gatewayMsg[frameHeader:]

	tlv := func(b []byte, tag uint64, v []byte) []byte {
		b = binary.AppendUvarint(b, tag)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	var hello []byte
	hello = tlv(hello, 1, binary.AppendUvarint(binary.AppendUvarint(nil, tunnel.ProtocolMajor), tunnel.ProtocolMinor))
	hello = tlv(hello, 2, binary.AppendUvarint(nil, 0))
	hello = tlv(hello, 8, eph.PublicKey().Bytes())
	th, gh := sha256.Sum256([]byte(token)), sha256.Sum256(gatewayHello)
	signed := append([]byte("liaison-tunnel-v2 connector hello\x00"), th[:]...)
	signed = append(append(signed, gh[:]...), hello...)
	hello = tlv(hello, 9, ed25519.Sign(key, signed))

	msg := make([]byte, frameHeader, frameHeader+len(hello))
	binary.BigEndian.PutUint32(msg[6:], uint32(len(hello)))
	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, append(msg, hello...)))
	_, _, err = conn.Read(ctx)
	require.Error(t, err, "the gateway went on talking to the attacker")
	t.Logf("the gateway ended the attacker's handshake: %v", err)
	return websocket.CloseStatus(err)
}

// keyForms returns the encodings a public key takes on the wire, for
// substitution by another key of the same size.
func keyForms(old, new []byte) [][2][]byte {
	return [][2][]byte{
		{[]byte(base64.StdEncoding.EncodeToString(old)), []byte(base64.StdEncoding.EncodeToString(new))},
		{[]byte(base64.RawStdEncoding.EncodeToString(old)), []byte(base64.RawStdEncoding.EncodeToString(new))},
		{[]byte(base64.URLEncoding.EncodeToString(old)), []byte(base64.URLEncoding.EncodeToString(new))},
		{[]byte(base64.RawURLEncoding.EncodeToString(old)), []byte(base64.RawURLEncoding.EncodeToString(new))},
		{[]byte(hex.EncodeToString(old)), []byte(hex.EncodeToString(new))},
		{old, new},
	}
}

func TestAttackProxyCannotEnrollItsOwnKey(t *testing.T) {
	t.Run("token replayed after dropping the enrollment", func(t *testing.T) {
		ps := newProxiedStack(t)
		p := newAttackProxy(t, ps.cloud.CAPEM())
		p.dropRequests(cloudapp.PathEnroll)
		ctx := ctxT(t, time.Minute)
		err := ps.enroll(ctx, p.URL(), p.CAPEM())
		require.Error(t, err, "the proxy dropped the enrollment")
		recs := p.recordings()
		require.NotEmpty(t, recs, "the enrollment request went through the proxy")
		assert.Empty(t, leaks(recs, []byte(ps.token)), "the proxy read the enrollment token")

		// Whatever it saw, the attacker replays: the token if it read it,
		// and the recorded request bodies as they were, with its own key
		// substituted for the connector's wherever it appears.
		_, akey, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		if len(leaks(recs, []byte(ps.token))) > 0 {
			cloud := connector.Cloud{URL: ps.cloud.URL(), CAPEM: ps.cloud.CAPEM(), Key: akey}
			_, err := connector.Enroll(ctx, cloud, ps.token)
			assert.Error(t, err, "the attacker enrolled its own key with the token it read")
		}
		// With the attacker's key in place of the connector's, the sealed
		// token does not open (its HPKE info names the key): 400.
		replayed := replayEnrollments(t, ps, recs, ps.key.Public().(ed25519.PublicKey), akey.Public().(ed25519.PublicKey))
		require.NotEmpty(t, replayed, "the proxy recorded the enrollment request")
		for _, code := range replayed {
			assert.Equal(t, http.StatusBadRequest, code, "an enrollment replayed with the attacker's key")
		}
		assertNoConnectorWithKey(t, ps, akey)
	})

	t.Run("token replayed after the enrollment", func(t *testing.T) {
		ps := newProxiedStack(t)
		p := newAttackProxy(t, ps.cloud.CAPEM())
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.enroll(ctx, p.URL(), p.CAPEM()))
		_, akey, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		recs := p.recordings()
		assert.Empty(t, leaks(recs, []byte(ps.token)), "the proxy read the enrollment token")
		if len(leaks(recs, []byte(ps.token))) > 0 {
			cloud := connector.Cloud{URL: ps.cloud.URL(), CAPEM: ps.cloud.CAPEM(), Key: akey}
			_, err := connector.Enroll(ctx, cloud, ps.token)
			assert.ErrorIs(t, err, tunnel.ErrUnauthorized, "a used enrollment token enrolled the attacker's key")
		}
		// The recorded enrollment, replayed as it was, meets a spent token.
		replayed := replayEnrollments(t, ps, recs, nil, nil)
		require.NotEmpty(t, replayed, "the proxy recorded the enrollment request")
		for _, code := range replayed {
			assert.Equal(t, http.StatusUnauthorized, code, "a replayed enrollment")
		}
		assertNoConnectorWithKey(t, ps, akey)
	})

	t.Run("key substituted in flight", func(t *testing.T) {
		ps := newProxiedStack(t)
		p := newAttackProxy(t, ps.cloud.CAPEM())
		_, akey, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		pub := ps.key.Public().(ed25519.PublicKey)
		apub := akey.Public().(ed25519.PublicKey)
		for _, f := range keyForms(pub, apub) {
			p.substitute(toCloud, f[0], f[1])
		}
		ctx := ctxT(t, time.Minute)
		enrollErr := ps.enroll(ctx, p.URL(), p.CAPEM())
		t.Logf("enrollment with the key substituted: %v (substitutions applied: %v)", enrollErr, p.substitutions())
		applied := 0
		for _, n := range p.substitutions() {
			applied += n
		}
		require.Positive(t, applied, "the proxy found the connector's public key in the enrollment and replaced it")
		assert.Error(t, enrollErr, "an enrollment whose public key the proxy replaced succeeded")
		assertNoConnectorWithKey(t, ps, akey)
	})
}

// replayEnrollments posts each JSON request body the proxy recorded toward
// the cloud to its enrollment URL, directly, with every encoding of the
// public key from replaced by to's (none when from is nil), and returns the
// status codes.
func replayEnrollments(t *testing.T, ps *proxiedStack, recs []recorded, from, to ed25519.PublicKey) []int {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfigFor(t, ps.cloud.CAPEM())}}
	var codes []int
	for _, r := range recs {
		if r.dir != toCloud || r.what != "http" || !bytes.HasPrefix(bytes.TrimSpace(r.data), []byte("{")) {
			continue
		}
		body := r.data
		if from != nil {
			replaced := false
			for _, f := range keyForms(from, to) {
				replaced = replaced || bytes.Contains(body, f[0])
				body = bytes.ReplaceAll(body, f[0], f[1])
			}
			require.True(t, replaced, "the recorded enrollment carries the connector's public key in the clear")
		}
		resp, err := client.Post(ps.cloud.EnrollURL(), "application/json", bytes.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	t.Logf("replayed %d recorded enrollment requests: %v", len(codes), codes)
	return codes
}

// assertNoConnectorWithKey fails if key authenticates a tunnel session as
// any connector the tenant has: the attacker's own tunnel client, with its
// key, tries each one the cloud lists.
func assertNoConnectorWithKey(t *testing.T, ps *proxiedStack, key ed25519.PrivateKey) {
	t.Helper()
	cs, err := ps.cloud.Connectors(ctxT(t, 10*time.Second), ps.tenant)
	require.NoError(t, err)
	for _, c := range cs {
		connected, first := connectsAs(t, ps.cloud.URL(), ps.cloud.Gateway().CloudKey(), ps.cloud.CAPEM(), c.ID, key)
		assert.False(t, connected, "the attacker's key is connector %s's", c.ID)
		if !connected {
			assert.ErrorIs(t, first, tunnel.ErrUnauthorized, "connector %s with the attacker's key", c.ID)
		}
	}
	t.Logf("tried the attacker's key as each of the tenant's %d connectors", len(cs))
}

// connectsAs runs a tunnel client as connector id with key, directly to
// the cloud, until its first attempt succeeds or fails.
func connectsAs(t *testing.T, cloudURL string, cloudKey tunnel.CloudKey, caPEM []byte, id string, key ed25519.PrivateKey) (bool, error) {
	t.Helper()
	type outcome struct {
		connected bool
		err       error
	}
	first := make(chan outcome, 1)
	var once sync.Once
	c, err := tunnel.NewConnector(tunnel.ConnectorConfig{
		URL:          "wss" + strings.TrimPrefix(cloudURL, "https") + cloudapp.PathTunnel,
		ConnectorID:  id,
		Key:          key,
		CloudKey:     cloudKey,
		Handler:      http.NotFoundHandler(),
		ExtraRootCAs: caPEM,
		BackoffBase:  20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected || s.Err != nil {
				once.Do(func() { first <- outcome{s.State == tunnel.StateConnected, s.Err} })
			}
		},
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	defer func() { c.Close(); <-done }()
	select {
	case o := <-first:
		return o.connected, o.err
	case err := <-done:
		return false, err
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to a connect attempt in 30s")
		return false, nil
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// The cloud lists a connector's session as sealed exactly when something
// between them ends TLS: directly, the session relies on the one TLS
// connection; through the inspecting proxy it is sealed (and the proxy
// still sees nothing: the tests above).
func TestAttackProxySessionIsSealed(t *testing.T) {
	sealed := func(t *testing.T, ps *proxiedStack) bool {
		cs, err := ps.cloud.Connectors(ctxT(t, 10*time.Second), ps.tenant)
		require.NoError(t, err)
		require.Len(t, cs, 1)
		require.True(t, cs[0].Connected)
		return cs[0].Sealed
	}
	t.Run("direct", func(t *testing.T) {
		ps := newProxiedStack(t)
		ctx := ctxT(t, time.Minute)
		require.NoError(t, ps.enroll(ctx, "", nil))
		connected := ps.startConnector("", nil)
		select {
		case <-connected:
		case <-ctx.Done():
			t.Fatal("the connector never connected")
		}
		require.NoError(t, ps.waitRoutable(ctx))
		assert.False(t, sealed(t, ps), "one TLS connection from end to end")
	})
	t.Run("inspecting proxy", func(t *testing.T) {
		ps := newProxiedStack(t)
		startThroughProxy(t, ps, newAttackProxy(t, ps.cloud.CAPEM()))
		assert.True(t, sealed(t, ps), "the proxy ends TLS")
	})
}
