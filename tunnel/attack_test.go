package tunnel

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests attack the tunnel the way a TLS-inspecting proxy the
// connector trusts can (SPEC.md "Threat model"): it reads, drops, delays,
// replays and injects bytes, and presents what it copied.

func noPings(c *GatewayConfig) { c.PingInterval = time.Minute }

// countEvents returns the Connected and Disconnected events seen so far for
// a connector.
func (e *env) countEvents(connectorID string) (connected, disconnected int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if ev.ConnectorID != connectorID {
			continue
		}
		switch ev.Kind {
		case Connected:
			connected++
		case Disconnected:
			disconnected++
		}
	}
	return connected, disconnected
}

// (a) The proxy copies the connect token, answers the real connector with a
// 502 and connects itself: the gateway refuses it at the handshake, before
// any presence event or routing.
func TestMITMStolenConnectTokenRefused(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, noPings)
	m := newMITM(t, e)
	cfg := m.connectorConfig(e.enroll("t"))
	stolen := make(chan string, 1)
	attackDone := make(chan struct{})
	m.intercept = func(req *http.Request, _ []byte) int {
		tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), authScheme)
		if !ok {
			return 0
		}
		select {
		case <-attackDone:
			return 0 // the attack is over: let the real connector through
		default:
		}
		select {
		case stolen <- tok:
		default:
		}
		return http.StatusBadGateway
	}
	cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "real connector") })
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background()) }()
	t.Cleanup(func() { _ = c.Close(); <-runErr })

	tok := <-stolen
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		HTTPClient:   e.httpClient(),
		HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
		Subprotocols: []string{Subprotocol},
	})
	require.NoError(t, err, "the stolen token is fresh, so the upgrade itself succeeds")
	defer conn.CloseNow()
	_, msg, err := conn.Read(ctx)
	require.NoError(t, err)
	f, _, err := parseFrame(msg, 4<<10)
	require.NoError(t, err)
	// The best the attacker can do: a well-formed HELLO signed by its own key.
	_, attackerKey, _ := ed25519.GenerateKey(rand.Reader)
	eph, _ := ecdh.X25519().GenerateKey(rand.Reader)
	cp, err := connectorHelloPayload(attackerKey, rand.Reader, eph.PublicKey().Bytes(), ourFeatures, nil, tok, f.payload)
	require.NoError(t, err)
	b := make([]byte, frameHeaderLen)
	putHeader(b, frameHello, 0, 0)
	require.NoError(t, conn.Write(ctx, websocket.MessageBinary, setLen(append(b, cp...))))
	_, _, err = conn.Read(ctx)
	var ce websocket.CloseError
	require.ErrorAs(t, err, &ce, "the gateway closes the attacker's connection")
	assert.Equal(t, websocket.StatusPolicyViolation, ce.Code)

	// Nothing reaches the tenant while only the attacker held a session.
	_, err = (&http.Client{Transport: e.gw.RoundTripper("t")}).Get("http://connector/")
	assert.ErrorIs(t, err, ErrNotConnected)

	close(attackDone)
	e.waitEvent(Connected, cfg.ConnectorID)
	connected, disconnected := e.countEvents(cfg.ConnectorID)
	assert.Equal(t, 1, connected, "only the real connector's session was ever registered")
	assert.Equal(t, 0, disconnected, "the attacker's session never registered, so it never left")
	resp, err := (&http.Client{Transport: e.gw.RoundTripper("t")}).Get("http://connector/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "real connector", string(body))
}

// (b) Enrollment through the proxy: it learns nothing it can reuse, a
// replay registers nothing, its own key cannot ride on the sealed token,
// and a substituted cloud key or a forged answer is refused.
func TestMITMEnrollment(t *testing.T) {
	t.Run("relay learns nothing, replay registers nothing", func(t *testing.T) {
		e := newEnv(t, nil)
		m := newMITM(t, e)
		var posted []byte
		m.intercept = func(req *http.Request, body []byte) int {
			if req.Method == http.MethodPost {
				posted = body
			}
			return 0
		}
		tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		id, err := Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", tok, key)
		require.NoError(t, err)
		assert.Equal(t, e.gw.cfg.Identity.Public(), id.CloudKey, "the cloud key is pinned")
		rec := m.Recorded()
		require.NotEmpty(t, posted, "the enrollment went through the proxy")
		assert.False(t, bytes.Contains(rec, []byte(tok)), "the proxy saw the enrollment token")
		assert.False(t, bytes.Contains(rec, []byte(tok[len(enrollTokenPrefix):len(enrollTokenPrefix)+43])), "the proxy saw the token's secret")

		resp, err := e.httpClient().Post(e.srv.URL+"/enroll", "application/json", bytes.NewReader(posted))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a replayed enrollment")
		assert.Len(t, e.gw.store.(*MemoryStore).connectors, 1)
	})

	t.Run("attacker key on the sealed token", func(t *testing.T) {
		e := newEnv(t, nil)
		m := newMITM(t, e)
		var posted []byte
		m.intercept = func(req *http.Request, body []byte) int {
			if req.Method == http.MethodPost {
				posted = body
				return http.StatusBadGateway // the token stays unspent
			}
			return 0
		}
		tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		_, err = Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", tok, key)
		require.Error(t, err)
		var req enrollRequest
		require.NoError(t, json.Unmarshal(posted, &req))
		attackerPub, _, _ := ed25519.GenerateKey(rand.Reader)
		req.PublicKey = base64.RawURLEncoding.EncodeToString(attackerPub)
		forged, _ := json.Marshal(req)
		resp, err := e.httpClient().Post(e.srv.URL+"/enroll", "application/json", bytes.NewReader(forged))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, e.gw.store.(*MemoryStore).connectors, "the attacker's key was registered")
		// The token is still good for the real connector.
		_, err = Enroll(context.Background(), e.httpClient(), e.srv.URL+"/enroll", tok, key)
		assert.NoError(t, err)
	})

	t.Run("substituted cloud key", func(t *testing.T) {
		e := newEnv(t, nil)
		m := newMITM(t, e)
		fake := testIdentity(t)
		m.rewrite = func(req *http.Request, body []byte) []byte {
			if req.Method == http.MethodGet {
				b, _ := json.Marshal(cloudKeyDoc{CloudKey: base64.RawURLEncoding.EncodeToString(fake.Public())})
				return b
			}
			return body
		}
		tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		_, err = Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", tok, key)
		assert.ErrorIs(t, err, ErrCloudKeyMismatch)
		assert.False(t, bytes.Contains(m.Recorded(), []byte(tok)))
		assert.Empty(t, e.gw.store.(*MemoryStore).connectors)
	})

	t.Run("old answer replayed", func(t *testing.T) {
		e := newEnv(t, nil)
		m := newMITM(t, e)
		var answers [][]byte
		m.rewrite = func(req *http.Request, body []byte) []byte {
			if req.Method != http.MethodPost {
				return body
			}
			answers = append(answers, body)
			return answers[0] // always the first answer, signed by the real cloud
		}
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		first, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, err = Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", first, key)
		require.NoError(t, err)
		second, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, err = Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", second, key)
		assert.ErrorIs(t, err, ErrCloudKeyMismatch, "an answer to another enrollment was accepted")
	})

	t.Run("forged answer", func(t *testing.T) {
		e := newEnv(t, nil)
		m := newMITM(t, e)
		fake := testIdentity(t)
		m.rewrite = func(req *http.Request, body []byte) []byte {
			if req.Method != http.MethodPost {
				return body
			}
			var er enrollResponse
			_ = json.Unmarshal(body, &er)
			er.Tenant = "other-tenant"
			er.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(fake.signing, []byte("anything")))
			b, _ := json.Marshal(er)
			return b
		}
		tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
		require.NoError(t, err)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		_, err = Enroll(context.Background(), m.httpClient(), e.srv.URL+"/enroll", tok, key)
		assert.ErrorIs(t, err, ErrCloudKeyMismatch)
	})
}

// The connector refuses a gateway that does not prove the pinned key: a
// proxy that answers the upgrade itself with its own gateway.
func TestMITMImpostorGatewayRefused(t *testing.T) {
	checkNoLeaks(t)
	real := newEnv(t, nil)
	cfg := real.enroll("t")
	// The impostor knows the connector's ID and public key (they are not
	// secret) and runs a gateway with another identity at the same URL.
	impostor := newEnv(t, nil)
	rec, err := real.gw.store.Connector(context.Background(), cfg.ConnectorID)
	require.NoError(t, err)
	require.NoError(t, impostor.gw.store.PutConnector(context.Background(), rec))
	impostor.gw.cfg.Audience = real.url
	cfg.URL = impostor.url
	cfg.Audience = real.url
	cfg.ExtraRootCAs = impostor.pki.caPEM // the connector trusts it, as it trusts an inspecting proxy
	cfg.Handler = http.NotFoundHandler()
	statuses := make(chan Status, 16)
	cfg.OnStatus = func(s Status) { statuses <- s }
	c, err := NewConnector(cfg)
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background()) }()
	defer func() { _ = c.Close(); <-runErr }()
	for s := range statuses {
		require.NotEqual(t, StateConnected, s.State, "connected to an impostor")
		if s.State == StateDisconnected {
			assert.ErrorIs(t, s.Err, ErrHandshake)
			assert.ErrorIs(t, s.Err, ErrCloudKeyMismatch)
			break
		}
	}
	n, _ := impostor.countEvents(cfg.ConnectorID)
	assert.Zero(t, n, "the impostor registered a session")
}

// (c) Altering a live session: every flipped, injected, replayed, dropped or
// reordered message closes the session; the connector's handler never runs
// a request it did not get intact and the caller never gets a forged body.
func TestMITMTamperedSessionCloses(t *testing.T) {
	const reqBody, respBody = "request-body-intact", "response-body-intact"
	type state struct {
		mu        sync.Mutex
		armed     bool
		seen      []wsFrame // messages to the connector before arming: HELLO, then the sealed confirmation
		held      *wsFrame
		heldReady chan struct{}
	}
	flip := func(f wsFrame) wsFrame {
		f.payload = bytes.Clone(f.payload)
		f.payload[len(f.payload)/2] ^= 0x01
		return f
	}
	tests := []struct {
		name string
		// two: the case needs a second request to reach the connector
		two bool
		// ran: the handler legitimately ran before the tampering (the
		// response was altered)
		ran    bool
		tamper func(st *state, toConnector bool, f wsFrame) []wsFrame
	}{
		{"flip request", false, false, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if toConnector {
				st.armed = false
				return []wsFrame{flip(f)}
			}
			return []wsFrame{f}
		}},
		{"flip response", false, true, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if !toConnector {
				st.armed = false
				return []wsFrame{flip(f)}
			}
			return []wsFrame{f}
		}},
		{"inject before request", false, false, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if toConnector {
				st.armed = false
				forged := f
				forged.payload = make([]byte, len(f.payload))
				_, _ = rand.Read(forged.payload)
				return []wsFrame{forged, f}
			}
			return []wsFrame{f}
		}},
		{"replay old message", false, false, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if toConnector {
				st.armed = false
				return []wsFrame{st.seen[len(st.seen)-1], f} // a sealed message the connector already opened
			}
			return []wsFrame{f}
		}},
		{"drop request", true, false, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if toConnector {
				st.armed = false
				close(st.heldReady)
				return nil
			}
			return []wsFrame{f}
		}},
		{"reorder requests", true, false, func(st *state, toConnector bool, f wsFrame) []wsFrame {
			if !toConnector {
				return []wsFrame{f}
			}
			if st.held == nil {
				st.held = &f
				close(st.heldReady)
				return nil
			}
			st.armed = false
			return []wsFrame{f, *st.held}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeaks(t)
			e := newEnv(t, noPings)
			m := newMITM(t, e)
			cfg := m.connectorConfig(e.enroll("t"))
			st := &state{heldReady: make(chan struct{})}
			m.tamper = func(toConnector bool, f wsFrame) []wsFrame {
				st.mu.Lock()
				defer st.mu.Unlock()
				if toConnector && !st.armed {
					st.seen = append(st.seen, f)
				}
				if !st.armed {
					return []wsFrame{f}
				}
				return tt.tamper(st, toConnector, f)
			}
			var handled, forged atomic.Int32
			up := make(chan struct{})
			var upOnce sync.Once
			cfg.OnStatus = func(s Status) {
				if s.State == StateConnected {
					upOnce.Do(func() { close(up) })
				}
			}
			e.start(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				handled.Add(1)
				if string(b) != reqBody {
					forged.Add(1)
				}
				_, _ = io.WriteString(w, respBody)
			}))
			<-up // the connector has opened the gateway's confirmation
			client := &http.Client{Transport: e.gw.RoundTripper("t")}
			st.mu.Lock()
			st.armed = true
			st.mu.Unlock()
			post := func() error {
				resp, err := client.Post("http://connector/", "text/plain", strings.NewReader(reqBody))
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					return err
				}
				assert.Equal(t, respBody, string(b), "a forged response body was returned")
				return nil
			}
			errs := make(chan error, 2)
			go func() { errs <- post() }()
			if tt.two {
				<-st.heldReady
				go func() { errs <- post() }()
				assert.Error(t, <-errs)
			}
			assert.Error(t, <-errs, "the caller got an answer through a tampered session")
			ev := e.waitEvent(Disconnected, cfg.ConnectorID)
			assert.Error(t, ev.Err)
			assert.Zero(t, forged.Load(), "the handler ran a forged request")
			if !tt.ran {
				assert.Zero(t, handled.Load(), "the handler ran a request from a tampered session")
			}
		})
	}
}

// (d) Secrets in a request body, a response body and a header never appear
// in any byte the proxy relays.
func TestMITMSeesNoSecrets(t *testing.T) {
	checkNoLeaks(t)
	const reqMarker, hdrMarker, respMarker = "REQ-SECRET-7f3a9c", "HDR-SECRET-51d2e8", "RESP-SECRET-c0ffee"
	e := newEnv(t, nil)
	m := newMITM(t, e)
	cfg := m.connectorConfig(e.enroll("t"))
	e.start(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if string(b) != reqMarker || r.Header.Get("X-Secret") != hdrMarker {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, respMarker)
	}))
	req, _ := http.NewRequest(http.MethodPost, "http://connector/check", strings.NewReader(reqMarker))
	req.Header.Set("X-Secret", hdrMarker)
	resp, err := (&http.Client{Transport: e.gw.RoundTripper("t")}).Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, respMarker, string(body))
	rec := m.Recorded()
	require.True(t, bytes.Contains(rec, []byte("Upgrade")), "the session did not go through the proxy")
	for _, marker := range []string{reqMarker, hdrMarker, respMarker, "/check"} {
		assert.False(t, bytes.Contains(rec, []byte(marker)), "the proxy saw %q", marker)
	}
}

// (e) A connect token whose exp precedes its iat is refused (the rest of
// the token checks are in TestConnectTokenRefusals).
func TestConnectTokenExpBeforeIat(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	// iat in the allowed skew, exp after now but before iat
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now().Add(20*time.Second), -10*time.Second, rand.Reader)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		HTTPClient:   e.httpClient(),
		HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
		Subprotocols: []string{Subprotocol},
	})
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestInsecureSkipVerifyNeedsDangerousOption(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.enroll("t")
	cfg.Handler = http.NotFoundHandler()
	cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true}
	_, err := NewConnector(cfg)
	require.Error(t, err)
	assert.ErrorContains(t, err, "DangerousAcceptAnyServerCertificate")

	var logs syncBuffer
	cfg.DangerousAcceptAnyServerCertificate = true
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	e.start(cfg, http.NotFoundHandler())
	assert.Contains(t, logs.String(), "level=WARN")
	assert.Contains(t, logs.String(), "DANGEROUS")
}

// A peer that floods PINGs gets at most a few answers per interval and
// then loses its session with a protocol error.
func TestPingFloodClosesSession(t *testing.T) {
	checkNoLeaks(t)
	e := newEnv(t, noPings)
	cfg := e.enroll("t")
	conn, tx, rx := e.rawConnector(cfg)
	defer conn.CloseNow()
	e.waitEvent(Connected, cfg.ConnectorID)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range pingFloodLimit + 4 {
		b := make([]byte, frameHeaderLen+8)
		putHeader(b, framePing, 0, 0)
		binary.BigEndian.PutUint64(b[frameHeaderLen:], uint64(i))
		sealed, err := tx.seal(nil, setLen(b))
		require.NoError(t, err)
		if err := conn.Write(ctx, websocket.MessageBinary, sealed); err != nil {
			break // the gateway already closed
		}
	}
	answers := 0
	for {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			break
		}
		plain, err := rx.open(msg)
		require.NoError(t, err)
		for off := 0; off < len(plain); {
			f, size, err := parseFrame(plain[off:], 64<<10)
			require.NoError(t, err)
			if f.typ == framePing {
				answers++
			}
			off += size
		}
	}
	assert.LessOrEqual(t, answers, pingAnswerLimit)
	ev := e.waitEvent(Disconnected, cfg.ConnectorID)
	var pe *ProtocolError
	assert.True(t, errors.As(ev.Err, &pe), "closed with %v", ev.Err)
}

// (b') Feature bits cannot be downgraded in transit: a relay that clears
// the sparse-pings bit of either HELLO (keeping every other byte and the
// signature) makes the handshake fail, so it cannot make a gateway answer
// every PING or a connector shorten its wait (SPEC.md "HELLO").
func TestMITMFeatureStripRefused(t *testing.T) {
	// strip re-encodes a HELLO frame changed by mutate (e.g. no feature
	// bits) and the original signature.
	strip := func(t *testing.T, f wsFrame, mutate func(*hello)) wsFrame {
		fr, size, err := parseFrame(f.payload, 64<<10)
		require.NoError(t, err)
		require.Equal(t, frameHello, fr.typ)
		require.Equal(t, len(f.payload), size)
		h, err := parseHello(fr.payload, false)
		require.NoError(t, err)
		require.Equal(t, uint64(ourFeatures), h.features, "this side announces the bit")
		signed := fr.payload[:h.signedLen]
		require.Equal(t, signed, h.appendTo(nil), "re-encoding changes nothing but what the test sets")
		mutate(&h)
		b := make([]byte, frameHeaderLen)
		putHeader(b, frameHello, 0, 0)
		b = append(b, h.appendTo(nil)...)
		b = append(b, fr.payload[h.signedLen:]...)
		f.payload = setLen(b)
		return f
	}
	noFeatures := func(h *hello) { h.features = 0 }
	// The proxy ends TLS on both sides, so the two bindings differ; it
	// would need the connector to see its own binding in the gateway's
	// HELLO (or the gateway its own in the connector's) to turn sealing
	// off. Any 32 bytes stand for it: what matters is the signature.
	otherBinding := func(h *hello) { h.tlsBind = bytes.Repeat([]byte{0x42}, tlsBindSize) }
	tests := []struct {
		name        string
		toConnector bool // strip the gateway's HELLO (else the connector's)
		mutate      func(*hello)
		want        error
		wantText    string
	}{
		{"gateway hello", true, noFeatures, ErrCloudKeyMismatch, ""},
		{"connector hello", false, noFeatures, ErrHandshake, "re-enroll"},
		{"gateway hello's TLS binding", true, otherBinding, ErrCloudKeyMismatch, ""},
		{"connector hello's TLS binding", false, otherBinding, ErrHandshake, "re-enroll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeaks(t)
			e := newEnv(t, nil)
			m := newMITM(t, e)
			cfg := m.connectorConfig(e.enroll("t"))
			var mu sync.Mutex
			stripped := 0
			m.tamper = func(toConnector bool, f wsFrame) []wsFrame {
				mu.Lock()
				defer mu.Unlock()
				// No session is ever set up, so every message is a HELLO
				// (the connector retries: one per attempt).
				if toConnector == tt.toConnector && len(f.payload) >= frameHeaderLen && frameType(f.payload[0]) == frameHello {
					stripped++
					return []wsFrame{strip(t, f, tt.mutate)}
				}
				return []wsFrame{f}
			}
			cfg.Handler = http.NotFoundHandler()
			statuses := make(chan Status, 16)
			cfg.OnStatus = func(s Status) { statuses <- s }
			c, err := NewConnector(cfg)
			require.NoError(t, err)
			runErr := make(chan error, 1)
			go func() { runErr <- c.Run(context.Background()) }()
			defer func() { _ = c.Close(); <-runErr }()
			for s := range statuses {
				require.NotEqual(t, StateConnected, s.State, "connected with a stripped hello")
				if s.State == StateDisconnected {
					require.ErrorIs(t, s.Err, tt.want)
					assert.Contains(t, s.Err.Error(), tt.wantText)
					break
				}
			}
			mu.Lock()
			assert.Positive(t, stripped)
			mu.Unlock()
			n, _ := e.countEvents(cfg.ConnectorID)
			assert.Zero(t, n, "the gateway registered a session")
		})
	}
}
