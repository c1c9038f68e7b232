package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSealerRejectsTampering(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	tx := newSealer(key)
	var msgs [][]byte
	for i := range 3 {
		m, err := tx.seal(nil, []byte{byte(i), 'x', 'y'})
		require.NoError(t, err)
		msgs = append(msgs, m)
	}
	open := func(seq uint64, m []byte) error {
		rx := newSealer(key)
		rx.seq = seq
		_, err := rx.open(bytes.Clone(m))
		return err
	}
	require.NoError(t, open(1, msgs[1]))
	for i := range msgs[1] {
		m := bytes.Clone(msgs[1])
		m[i] ^= 0x80
		assert.ErrorIs(t, open(1, m), errOpen, "flipped byte %d", i)
	}
	assert.ErrorIs(t, open(1, msgs[0]), errOpen, "replayed earlier message")
	assert.ErrorIs(t, open(1, msgs[2]), errOpen, "reordered (later) message")
	assert.ErrorIs(t, open(1, msgs[1][:len(msgs[1])-1]), errOpen, "truncated")
	assert.ErrorIs(t, open(1, nil), errOpen, "empty")
	assert.ErrorIs(t, newSealer(bytes.Repeat([]byte{2}, 32)).seal2open(msgs[0]), errOpen, "other key")
}

func (s *sealer) seal2open(m []byte) error { _, err := s.open(bytes.Clone(m)); return err }

// Sealing allocates nothing when the destination has room.
func TestSealOpenNoAllocs(t *testing.T) {
	tx, rx := newSealer(make([]byte, 32)), newSealer(make([]byte, 32))
	msg := make([]byte, 1024)
	buf := make([]byte, 0, len(msg)+sealOverhead)
	allocs := testing.AllocsPerRun(100, func() {
		out, _ := tx.seal(buf[:0], msg)
		if _, err := rx.open(out); err != nil {
			panic(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestGatewayIdentityFromSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, SeedSize)
	a, err := NewGatewayIdentity(seed)
	require.NoError(t, err)
	b, err := NewGatewayIdentity(seed)
	require.NoError(t, err)
	assert.Equal(t, a.Public(), b.Public(), "a restart with the same seed keeps the pinned key")
	assert.Equal(t, seed, a.Seed())
	assert.Len(t, a.Public(), CloudKeySize)
	assert.Regexp(t, `^SHA256:[A-Za-z0-9+/]{43}$`, a.Fingerprint())
	c, err := GenerateGatewayIdentity(nil)
	require.NoError(t, err)
	assert.NotEqual(t, a.Public(), c.Public())
	_, err = NewGatewayIdentity(seed[:31])
	assert.ErrorContains(t, err, "32 bytes")
}

func TestSignStatementDomainSeparated(t *testing.T) {
	id := testIdentity(t)
	data := []byte("some key")
	sig := id.SignStatement("scheduler-key", data)
	assert.True(t, id.Public().VerifyStatement("scheduler-key", data, sig))
	assert.False(t, id.Public().VerifyStatement("other", data, sig), "another purpose")
	assert.False(t, id.Public().VerifyStatement("scheduler-key", []byte("other key"), sig))
	assert.False(t, testIdentity(t).Public().VerifyStatement("scheduler-key", data, sig), "another cloud")
	// A handshake signature is no statement, and the reverse.
	hs := ed25519.Sign(id.signing, gatewaySigned("tok", data))
	assert.False(t, id.Public().VerifyStatement("", data, hs))
	assert.False(t, ed25519.Verify(id.Public().signing(), gatewaySigned("tok", data), sig))
}

func TestEnrollmentTokenCarriesFingerprint(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.gw.IssueEnrollmentToken(context.Background(), "t", time.Minute)
	require.NoError(t, err)
	assert.Regexp(t, `^lenr2_[A-Za-z0-9_-]{86}$`, tok)
	fp, err := parseEnrollmentToken(tok)
	require.NoError(t, err)
	assert.Equal(t, e.gw.CloudKey().hash(), fp)
	for _, bad := range []string{"", "lenr2_", "lenr1_" + tok[6:], tok + "A", tok[:len(tok)-1] + "!"} {
		_, err := parseEnrollmentToken(bad)
		assert.Error(t, err, bad)
	}
}

// validEnrollment builds an enrollment POST body for tok sealed to id.
func validEnrollment(t testing.TB, id *GatewayIdentity, tok string) ([]byte, ed25519.PrivateKey) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	proof := ed25519.Sign(key, enrollProof(id.Public(), pub, tok))
	secret, _ := json.Marshal(enrollSecret{Token: tok, Proof: base64.RawURLEncoding.EncodeToString(proof)})
	sealed := hpkeSealForTest(t, id.Public(), enrollInfo(id.Public(), pub), secret)
	body, _ := json.Marshal(enrollRequest{PublicKey: base64.RawURLEncoding.EncodeToString(pub), Sealed: base64.RawURLEncoding.EncodeToString(sealed)})
	return body, key
}

func FuzzSealedOpen(f *testing.F) {
	key := bytes.Repeat([]byte{3}, 32)
	m, _ := newSealer(key).seal(nil, []byte("a sealed frame"))
	f.Add(m)
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, sealOverhead))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := newSealer(key).open(bytes.Clone(b))
		if err != nil {
			return
		}
		again, _ := newSealer(key).seal(nil, out)
		if !bytes.Equal(again, b) {
			t.Fatalf("opened a message that is not a sealing of its plaintext")
		}
	})
}

func FuzzEnrollRequest(f *testing.F) {
	id, _ := NewGatewayIdentity(bytes.Repeat([]byte{5}, SeedSize))
	g := &Gateway{cfg: GatewayConfig{Identity: id}}
	body, _ := validEnrollment(f, id, "lenr2_x")
	f.Add(body)
	f.Add([]byte(`{"token":"lenr1_x","public_key":"AAAA","proof":"AAAA"}`))
	f.Add([]byte(`{"public_key":"","sealed":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, sec, err := g.openEnrollment(b)
		if err != nil {
			return
		}
		proof, _ := base64.RawURLEncoding.DecodeString(sec.Proof)
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, enrollProof(id.Public(), pub, sec.Token), proof) {
			t.Fatalf("accepted an enrollment without a valid proof")
		}
	})
}

func FuzzEnrollAnswer(f *testing.F) {
	id, _ := NewGatewayIdentity(bytes.Repeat([]byte{6}, SeedSize))
	pub := ed25519.PublicKey(bytes.Repeat([]byte{1}, 32))
	var rh [32]byte
	sig := ed25519.Sign(id.signing, enrollAnswer(rh, pub, "conn_1", "t"))
	good, _ := json.Marshal(enrollResponse{ConnectorID: "conn_1", Tenant: "t", Signature: base64.RawURLEncoding.EncodeToString(sig)})
	f.Add(good)
	f.Add([]byte(`{"connector_id":"c","tenant":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := verifyEnrollAnswer(b, id.Public(), rh, pub)
		if err != nil {
			return
		}
		if got.ConnectorID != "conn_1" || got.Tenant != "t" {
			t.Fatalf("accepted an answer the cloud did not sign: %+v", got)
		}
	})
}

func FuzzEnrollmentToken(f *testing.F) {
	f.Add("lenr2_" + base64.RawURLEncoding.EncodeToString(make([]byte, 64)))
	f.Add("lenr1_abc")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseEnrollmentToken(s); err == nil && len(s) != enrollTokenLen {
			t.Fatalf("accepted a token of %d bytes", len(s))
		}
	})
}

func FuzzCloudKeyDoc(f *testing.F) {
	id, _ := NewGatewayIdentity(make([]byte, SeedSize))
	good, _ := json.Marshal(cloudKeyDoc{CloudKey: base64.RawURLEncoding.EncodeToString(id.Public())})
	f.Add(good)
	f.Add([]byte(`{"cloud_key":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseCloudKeyDoc(b)
		if err == nil && len(k) != CloudKeySize {
			t.Fatalf("accepted a %d-byte cloud key", len(k))
		}
	})
}

// FuzzConnectorHello feeds the gateway's handshake check: no input but a
// HELLO signed by the enrolled key over this token and gateway HELLO
// passes.
func FuzzConnectorHello(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	gp := []byte("gateway hello")
	good, _ := connectorHelloPayload(key, rand.Reader, bytes.Repeat([]byte{9}, keyShareSize), ourFeatures, nil, "tok", gp)
	f.Add(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b, false)
		if err != nil {
			return
		}
		if ed25519.Verify(pub, connectorSigned("tok", gp, b[:h.signedLen]), h.sig) && !bytes.Equal(b, good) {
			// Only a re-encoding of the same signed fields may verify.
			if !bytes.Equal(b[:h.signedLen], good[:len(good)-2-signatureSize]) {
				t.Fatalf("a forged hello verified")
			}
		}
	})
}

func hpkeSealForTest(t testing.TB, cloud CloudKey, info, msg []byte) []byte {
	t.Helper()
	x, err := cloud.sealing()
	require.NoError(t, err)
	pk, err := hpke.NewDHKEMPublicKey(x)
	require.NoError(t, err)
	ct, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), info, msg)
	require.NoError(t, err)
	return ct
}

func TestV2Required(t *testing.T) {
	_, err := NewGateway(GatewayConfig{Audience: "wss://x/connect"})
	assert.ErrorContains(t, err, "GatewayConfig.Identity")

	e := newEnv(t, nil)
	cfg := e.enroll("t")
	cfg.Handler = http.NotFoundHandler()
	old := cfg
	old.CloudKey = nil
	_, err = NewConnector(old)
	assert.ErrorIs(t, err, ErrCloudKeyMissing, "an identity enrolled before v2")
	old.CloudKey = cfg.CloudKey[:32]
	_, err = NewConnector(old)
	assert.ErrorContains(t, err, "ConnectorConfig.CloudKey")

	// A v1 connector is told which version the gateway speaks.
	tok, err := signConnectToken(cfg.Key, cfg.ConnectorID, e.url, time.Now(), 30*time.Second, rand.Reader)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.url, &websocket.DialOptions{
		HTTPClient:   e.httpClient(),
		HTTPHeader:   http.Header{"Authorization": {authScheme + tok}},
		Subprotocols: []string{"liaison.tunnel.v1"},
	})
	require.Error(t, err)
	require.NotNil(t, resp)
	assert.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(body), "liaison.tunnel.v2")
}
