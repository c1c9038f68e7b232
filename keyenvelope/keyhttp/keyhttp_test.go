package keyhttp_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
)

var (
	alice = keyenvelope.Context{Tenant: "acme", User: "alice@acme.example", Purpose: "backup"}
	t0    = time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
)

type fixture struct {
	keyring   *keyenvelope.Keyring
	scheduler ed25519.PrivateKey
	now       time.Time
	server    *httptest.Server
	client    *keyhttp.Client
}

func newFixture(t *testing.T, withReleaser bool) *fixture {
	t.Helper()
	f := &fixture{now: t0}
	var err error
	f.keyring, err = keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	var pub ed25519.PublicKey
	pub, f.scheduler, err = ed25519.GenerateKey(nil)
	require.NoError(t, err)
	cfg := keyhttp.Config{Keyring: f.keyring}
	if withReleaser {
		cfg.Releaser, err = keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{
			Keyring: f.keyring,
			Policy:  keyenvelope.TicketPolicy{SchedulerKey: pub},
			Now:     func() time.Time { return f.now },
		})
		require.NoError(t, err)
	}
	h, err := keyhttp.NewHandler(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/keys/", http.StripPrefix("/keys", h))
	f.server = httptest.NewServer(mux)
	t.Cleanup(f.server.Close)
	f.client, err = keyhttp.NewClient(f.server.URL+"/keys", f.server.Client().Transport)
	require.NoError(t, err)
	return f
}

func (f *fixture) ticket(t *testing.T, worker hpke.PublicKey, id keyenvelope.EkeyID, edit func(*keyenvelope.Ticket)) []byte {
	t.Helper()
	tk := &keyenvelope.Ticket{
		JobID: "job-1", Tenant: alice.Tenant, User: alice.User, Purpose: alice.Purpose, JobPurpose: keyenvelope.JobBackup,
		EkeyID: id, IssuedAt: t0, Expires: t0.Add(10 * time.Minute), WorkerKey: worker,
	}
	if edit != nil {
		edit(tk)
	}
	b, err := keyenvelope.IssueTicket(f.scheduler, tk)
	require.NoError(t, err)
	return b
}

func TestOperations(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()

	wrapped, id, err := f.client.GenerateWrapped(ctx, alice)
	require.NoError(t, err)
	h, gotID, err := keyenvelope.Inspect(wrapped)
	require.NoError(t, err)
	assert.Equal(t, id, gotID)
	assert.Equal(t, keyenvelope.KindWrap, h.Kind)
	local, err := f.keyring.Unwrap(alice, wrapped)
	require.NoError(t, err, "the connector's keyring unwraps what the client got")

	t.Run("rewrap", func(t *testing.T) {
		v, err := f.keyring.AddVersion()
		require.NoError(t, err)
		require.NoError(t, f.keyring.Promote(v))
		re, err := f.client.Rewrap(ctx, alice, wrapped)
		require.NoError(t, err)
		h, _, err := keyenvelope.Inspect(re)
		require.NoError(t, err)
		assert.Equal(t, v, h.KeyVersion)
		e, err := f.keyring.Unwrap(alice, re)
		require.NoError(t, err)
		assert.Equal(t, local.Key, e.Key)
	})

	t.Run("release", func(t *testing.T) {
		worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
		require.NoError(t, err)
		ticket := f.ticket(t, worker.PublicKey(), id, nil)
		rel, err := f.client.Release(ctx, ticket, wrapped)
		require.NoError(t, err)
		e, err := keyenvelope.OpenRelease(worker, ticket, rel)
		require.NoError(t, err)
		assert.Equal(t, local.Key, e.Key)

		second, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
		require.NoError(t, err)
		_, err = keyenvelope.OpenRelease(second, ticket, rel)
		assert.ErrorIs(t, err, keyenvelope.ErrUnwrap, "a second worker cannot open the release")
	})

	t.Run("public key and offline seal", func(t *testing.T) {
		for _, s := range []keyenvelope.Suite{keyenvelope.SuiteX25519, keyenvelope.SuiteXWing} {
			pub, err := f.client.PublicKey(ctx, s)
			require.NoError(t, err)
			want, err := f.keyring.PublicKey(s)
			require.NoError(t, err)
			assert.Equal(t, want.Bytes(), pub.Bytes())
			e, err := keyenvelope.NewEkey(nil)
			require.NoError(t, err)
			sealed, err := keyenvelope.SealToKeyring(pub, alice, e)
			require.NoError(t, err)
			re, err := f.client.Rewrap(ctx, alice, sealed)
			require.NoError(t, err)
			got, err := f.keyring.Unwrap(alice, re)
			require.NoError(t, err)
			assert.Equal(t, e.Key, got.Key)
		}
	})
}

func TestErrorsCrossTheWire(t *testing.T) {
	f := newFixture(t, true)
	ctx := context.Background()
	wrapped, id, err := f.client.GenerateWrapped(ctx, alice)
	require.NoError(t, err)
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	bob := alice
	bob.User = "bob@acme.example"
	_, otherScheduler, _ := ed25519.GenerateKey(nil)
	forged, err := keyenvelope.IssueTicket(otherScheduler, &keyenvelope.Ticket{
		JobID: "j", Tenant: alice.Tenant, User: alice.User, Purpose: alice.Purpose, JobPurpose: keyenvelope.JobBackup, EkeyID: id,
		IssuedAt: t0, Expires: t0.Add(time.Minute), WorkerKey: worker.PublicKey(),
	})
	require.NoError(t, err)

	cases := []struct {
		name   string
		call   func() error
		want   error
		status int
	}{
		{"rewrap for another user", func() error { _, err := f.client.Rewrap(ctx, bob, wrapped); return err }, keyenvelope.ErrUnwrap, 422},
		{"rewrap garbage", func() error { _, err := f.client.Rewrap(ctx, alice, []byte("KENV")); return err }, keyenvelope.ErrUnwrap, 422},
		{"generate without user", func() error {
			_, _, err := f.client.GenerateWrapped(ctx, keyenvelope.Context{Tenant: "acme"})
			return err
		}, keyenvelope.ErrInvalidContext, 400},
		{"forged ticket", func() error { _, err := f.client.Release(ctx, forged, wrapped); return err }, keyenvelope.ErrInvalidTicket, 403},
		{"expired ticket", func() error {
			f.now = t0.Add(time.Hour)
			defer func() { f.now = t0 }()
			_, err := f.client.Release(ctx, f.ticket(t, worker.PublicKey(), id, nil), wrapped)
			return err
		}, keyenvelope.ErrTicketExpired, 403},
		{"ticket for bob", func() error {
			_, err := f.client.Release(ctx, f.ticket(t, worker.PublicKey(), id, func(tk *keyenvelope.Ticket) { tk.User = bob.User }), wrapped)
			return err
		}, keyenvelope.ErrUnwrap, 422},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			var he *keyhttp.Error
			require.ErrorAs(t, err, &he)
			assert.Equal(t, tc.status, he.StatusCode)
			assert.NotContains(t, err.Error(), "commit", "no detail beyond the sentinel")
		})
	}

	t.Run("release unsupported without a releaser", func(t *testing.T) {
		g := newFixture(t, false)
		_, err := g.client.Release(ctx, []byte("x"), wrapped)
		assert.ErrorIs(t, err, keyhttp.ErrUnsupported)
	})
}

// rawCall posts body to path and returns the status and error code.
func rawCall(t *testing.T, f *fixture, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, f.server.URL+"/keys"+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := f.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var eb struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(b, &eb)
	return resp.StatusCode, eb.Error.Code
}

func TestHandlerRefusesBadRequests(t *testing.T) {
	f := newFixture(t, true)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown field", "POST", keyhttp.PathGenerate, `{"tenant":"a","user":"b","purpose":"","ekey":"x"}`, 400, "bad_request"},
		{"not json", "POST", keyhttp.PathGenerate, `tenant=a`, 400, "bad_request"},
		{"two objects", "POST", keyhttp.PathGenerate, `{"tenant":"a","user":"b"}{}`, 400, "bad_request"},
		{"array", "POST", keyhttp.PathRewrap, `[]`, 400, "bad_request"},
		{"padded text", "POST", keyhttp.PathRewrap, `{"tenant":"a","user":"b","wrapped":"kenv1.AAAA=="}`, 400, "malformed"},
		{"huge body", "POST", keyhttp.PathGenerate, `{"tenant":"` + strings.Repeat("a", 70<<10) + `"}`, 400, "bad_request"},
		{"get on post", "GET", keyhttp.PathGenerate, ``, 405, "method_not_allowed"},
		{"post on get", "POST", keyhttp.PathPublicKey, `{}`, 405, "method_not_allowed"},
		{"unknown suite", "GET", keyhttp.PathPublicKey + "?suite=p256", ``, 400, "bad_request"},
		{"unknown path", "GET", "/v1/unwrap", ``, 404, "not_found"},
		{"ticket not text", "POST", keyhttp.PathRelease, `{"ticket":"x","wrapped":"kenv1.AAAA"}`, 403, "invalid_ticket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, code := rawCall(t, f, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.status, status)
			assert.Equal(t, tc.code, code)
		})
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// errNotConnected stands in for tunnel.ErrNotConnected, which this package
// must not import.
var errNotConnected = errors.New("tunnel: not connected")

func TestTransportErrorsAreWrapped(t *testing.T) {
	c, err := keyhttp.NewClient("http://connector/keys", roundTripperFunc(func(*http.Request) (*http.Response, error) {
		return nil, errNotConnected
	}))
	require.NoError(t, err)
	ctx := context.Background()
	_, _, err = c.GenerateWrapped(ctx, alice)
	assert.ErrorIs(t, err, errNotConnected)
	_, err = c.PublicKey(ctx, keyenvelope.SuiteX25519)
	assert.ErrorIs(t, err, errNotConnected)

	t.Run("non-JSON error page", func(t *testing.T) {
		c, err := keyhttp.NewClient("http://connector/keys", roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			return &http.Response{StatusCode: 502, Body: io.NopCloser(strings.NewReader("bad gateway")), Request: r}, nil
		}))
		require.NoError(t, err)
		_, _, err = c.GenerateWrapped(ctx, alice)
		var he *keyhttp.Error
		require.ErrorAs(t, err, &he)
		assert.Equal(t, 502, he.StatusCode)
		assert.Nil(t, errors.Unwrap(err))
	})
	t.Run("cancelled context", func(t *testing.T) {
		f := newFixture(t, false)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := f.client.GenerateWrapped(cctx, alice)
		assert.ErrorIs(t, err, context.Canceled)
	})
}

func TestNewClientValidation(t *testing.T) {
	_, err := keyhttp.NewClient("http://x", nil)
	assert.Error(t, err)
	for _, u := range []string{"", "connector/keys", "http://x/keys?a=b", "://"} {
		_, err := keyhttp.NewClient(u, http.DefaultTransport)
		assert.Error(t, err, u)
	}
	_, err = keyhttp.NewHandler(keyhttp.Config{})
	assert.Error(t, err)
}

// FuzzHandler: hostile request bodies never panic the handler nor produce
// a 5xx.
func FuzzHandler(f *testing.F) {
	k, err := keyenvelope.NewKeyring(nil)
	if err != nil {
		f.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	r, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{Keyring: k, Policy: keyenvelope.TicketPolicy{SchedulerKey: pub}})
	if err != nil {
		f.Fatal(err)
	}
	h, err := keyhttp.NewHandler(keyhttp.Config{Keyring: k, Releaser: r})
	if err != nil {
		f.Fatal(err)
	}
	w, _, _ := k.GenerateWrapped(alice)
	f.Add(uint8(0), []byte(`{"tenant":"acme","user":"alice@acme.example","purpose":"backup"}`))
	f.Add(uint8(1), []byte(`{"tenant":"acme","user":"alice@acme.example","purpose":"backup","wrapped":"`+keyenvelope.EncodeText(w)+`"}`))
	f.Add(uint8(2), []byte(`{"ticket":"kenv1.S0VOVgEH","wrapped":"kenv1.AAAA"}`))
	paths := []string{keyhttp.PathGenerate, keyhttp.PathRewrap, keyhttp.PathRelease}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		req := httptest.NewRequest("POST", paths[int(which)%len(paths)], bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
