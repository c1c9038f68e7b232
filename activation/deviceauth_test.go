package activation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

// The message a device signs is fixed by the documentation, byte for byte:
// a device written in another language must be able to produce it.
func TestDeviceAuthMessageFormat(t *testing.T) {
	nonce := bytes.Repeat([]byte{0xfb}, 16)
	got := activation.DeviceAuthMessage("acme", 1764672000, nonce)
	assert.Equal(t, "liaison-device-auth-v1\nacme\n1764672000\n-_v7-_v7-_v7-_v7-_v7-w", string(got))
}

func TestDeviceAuthRequest(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, activation.NewMemoryStore())
	dev := newDevice(t, "dev-1")
	res, err := h.svc.Activate(ctx, dev.request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
	h.dir.setConnected(false) // no connector from here on
	calls := h.dir.calls

	sign := func(t *testing.T, at time.Time) activation.DeviceAuthRequest {
		req, err := activation.SignDeviceAuth(dev.priv, "t1", res.Credential, at, rand.Reader)
		require.NoError(t, err)
		return req
	}

	req := sign(t, h.clock.Now())
	got, err := h.svc.AuthenticateDeviceRequest(ctx, req)
	require.NoError(t, err, "a device authenticates with no connector")
	assert.Equal(t, "dev-1", got.ID)
	assert.Equal(t, res.User.ID, got.UserID)
	assert.Equal(t, calls, h.dir.calls, "device authentication never asks the directory")

	_, err = h.svc.AuthenticateDeviceRequest(ctx, req)
	assert.ErrorIs(t, err, activation.ErrReplay, "the same signed request twice")

	for name, at := range map[string]time.Time{
		"signed too long ago":   h.clock.Now().Add(-activation.DeviceAuthSkew - time.Second),
		"signed in the future":  h.clock.Now().Add(activation.DeviceAuthSkew + time.Second),
		"signed a day ago":      h.clock.Now().Add(-24 * time.Hour),
		"signed at Unix epoch ": time.Unix(0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.svc.AuthenticateDeviceRequest(ctx, sign(t, at))
			assert.ErrorIs(t, err, activation.ErrReplay)
		})
	}

	t.Run("within the skew", func(t *testing.T) {
		_, err := h.svc.AuthenticateDeviceRequest(ctx, sign(t, h.clock.Now().Add(-activation.DeviceAuthSkew+time.Second)))
		assert.NoError(t, err)
	})

	tamper := map[string]func(r *activation.DeviceAuthRequest){
		"time changed after signing":  func(r *activation.DeviceAuthRequest) { r.Time-- },
		"nonce changed after signing": func(r *activation.DeviceAuthRequest) { r.Nonce[0] ^= 1 },
		"other tenant":                func(r *activation.DeviceAuthRequest) { r.Tenant = "t2" },
		"signature flipped":           func(r *activation.DeviceAuthRequest) { r.Signature[10] ^= 1 },
		"credential of another key": func(r *activation.DeviceAuthRequest) {
			other := newDevice(t, "dev-2")
			res2, err := h.svc.Activate(ctx, other.request("t1", h.token, "alice", "corp.example"))
			if err == nil {
				r.Credential = res2.Credential
			}
		},
	}
	for name, mutate := range tamper {
		t.Run(name, func(t *testing.T) {
			h.dir.setConnected(true)
			defer h.dir.setConnected(false)
			r := sign(t, h.clock.Now())
			mutate(&r)
			_, err := h.svc.AuthenticateDeviceRequest(ctx, r)
			assert.ErrorIs(t, err, activation.ErrBadProof)
		})
	}

	for name, r := range map[string]activation.DeviceAuthRequest{
		"short nonce":   {Tenant: "t1", Credential: res.Credential, Time: req.Time, Nonce: []byte("short"), Signature: req.Signature},
		"no credential": {Tenant: "t1", Time: req.Time, Nonce: req.Nonce, Signature: req.Signature},
		"no signature":  {Tenant: "t1", Credential: res.Credential, Time: req.Time, Nonce: req.Nonce},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := h.svc.AuthenticateDeviceRequest(ctx, r)
			assert.ErrorIs(t, err, activation.ErrInvalidRequest)
		})
	}
}

func TestDeviceAuthHandler(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, activation.NewMemoryStore())
	dev := newDevice(t, "dev-1")
	res, err := h.svc.Activate(ctx, dev.request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
	h.dir.setConnected(false)
	srv := httptest.NewServer(h.svc.DeviceAuthHandler())
	defer srv.Close()

	post := func(t *testing.T, body any) (int, map[string]string) {
		t.Helper()
		b, err := json.Marshal(body)
		require.NoError(t, err)
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out
	}

	req, err := activation.SignDeviceAuth(dev.priv, "t1", res.Credential, h.clock.Now(), nil)
	require.NoError(t, err)
	status, out := post(t, req)
	require.Equal(t, http.StatusOK, status, out)
	assert.Equal(t, map[string]string{"tenant": "t1", "user_id": res.User.ID, "device_id": "dev-1"}, out)

	status, replayed := post(t, req)
	assert.Equal(t, http.StatusUnauthorized, status)

	forged := req
	forged.Signature = ed25519.Sign(newDevice(t, "x").priv, activation.DeviceAuthMessage("t1", req.Time, []byte("0123456789abcdef")))
	forged.Nonce = []byte("0123456789abcdef")
	status, bad := post(t, forged)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, replayed, bad, "one public message for every failure")

	status, _ = post(t, map[string]any{"tenant": "t1", "unexpected": true})
	assert.Equal(t, http.StatusBadRequest, status)

	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// FuzzDeviceAuthHandler feeds hostile bodies to the device endpoint: it
// answers every one with a status, never panics, and accepts none.
func FuzzDeviceAuthHandler(f *testing.F) {
	f.Add([]byte(`{"tenant":"t1","credential":"x","time":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","signature":"AA=="}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	h := newHarness(f, activation.NewMemoryStore())
	handler := h.svc.DeviceAuthHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		if rec.Code == http.StatusOK {
			t.Fatalf("accepted a forged body: %s", body)
		}
	})
}
