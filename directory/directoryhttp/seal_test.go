package directoryhttp_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
)

// recorder is a RoundTripper standing for a TLS-inspecting proxy: it keeps
// every request body it forwards.
type recorder struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return r.rt.RoundTrip(req)
}

func (r *recorder) seen(s string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.bodies {
		if bytes.Contains(b, []byte(s)) {
			return true
		}
	}
	return false
}

func sealedPair(t *testing.T, f *fakeDir, clientKey *ecdh.PublicKey, serverKey *ecdh.PrivateKey) (*directoryhttp.Client, *recorder) {
	t.Helper()
	var opts []directoryhttp.HandlerOption
	if serverKey != nil {
		opts = append(opts, directoryhttp.WithPrivateKey(serverKey))
	}
	srv := httptest.NewServer(directoryhttp.NewHandler(f, opts...))
	t.Cleanup(srv.Close)
	rec := &recorder{rt: srv.Client().Transport}
	var copts []directoryhttp.ClientOption
	if clientKey != nil {
		copts = append(copts, directoryhttp.WithConnectorKey(clientKey))
	}
	c, err := directoryhttp.NewClient(srv.URL, rec, copts...)
	require.NoError(t, err)
	return c, rec
}

func TestSealedPasswords(t *testing.T) {
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	other, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	ctx := context.Background()

	t.Run("sealed end to end", func(t *testing.T) {
		f := newFake(2)
		c, rec := sealedPair(t, f, key.PublicKey(), key)
		u, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", f.password)
		require.NoError(t, err)
		assert.Equal(t, "user1", u.Login)
		assert.Equal(t, f.password, f.gotPw, "the directory got the opened password")
		assert.False(t, rec.seen(f.password), "the password crossed the proxy in clear")
		assert.True(t, rec.seen("sealed_password"))

		_, err = c.CheckCredentials(ctx, directory.Mapping{}, "user1", "wrong")
		assert.ErrorIs(t, err, directory.ErrInvalidCredentials)
		assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err), "reason survives the wire")
	})
	t.Run("plain password refused by a keyed handler", func(t *testing.T) {
		f := newFake(2)
		c, _ := sealedPair(t, f, nil, key)
		_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", f.password)
		require.ErrorIs(t, err, directoryhttp.ErrBadRequest)
		assert.Empty(t, f.gotPw, "the directory was not asked")
	})
	t.Run("sealed to another key", func(t *testing.T) {
		f := newFake(2)
		c, _ := sealedPair(t, f, other.PublicKey(), key)
		_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", f.password)
		require.ErrorIs(t, err, directoryhttp.ErrBadRequest)
		assert.Empty(t, f.gotPw)
	})
	t.Run("sealed to a handler without key", func(t *testing.T) {
		f := newFake(2)
		c, _ := sealedPair(t, f, key.PublicKey(), nil)
		_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", f.password)
		require.ErrorIs(t, err, directoryhttp.ErrBadRequest)
		assert.Empty(t, f.gotPw)
	})
	t.Run("payload moved to another name", func(t *testing.T) {
		f := newFake(2)
		// Capture a sealed body for user0, then replay it as user1's.
		srv := httptest.NewServer(directoryhttp.NewHandler(f, directoryhttp.WithPrivateKey(key)))
		defer srv.Close()
		proxy := &recorder{rt: srv.Client().Transport}
		c2, err := directoryhttp.NewClient(srv.URL, proxy, directoryhttp.WithConnectorKey(key.PublicKey()))
		require.NoError(t, err)
		_, err = c2.CheckCredentials(ctx, directory.Mapping{}, "user0", f.password)
		require.NoError(t, err)
		body := string(proxy.bodies[0])
		moved := strings.Replace(body, `"name":"user0"`, `"name":"user1"`, 1)
		require.NotEqual(t, body, moved)
		f.gotPw = ""
		resp, err := srv.Client().Post(srv.URL+"/credentials", "application/json", strings.NewReader(moved))
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Empty(t, f.gotPw, "a payload sealed for user0 must not check user1")
	})
	t.Run("empty password refused before sealing", func(t *testing.T) {
		f := newFake(2)
		c, rec := sealedPair(t, f, key.PublicKey(), key)
		_, err := c.CheckCredentials(ctx, directory.Mapping{}, "user1", "")
		require.ErrorIs(t, err, directory.ErrEmptyPassword)
		assert.Empty(t, rec.bodies, "nothing sent")
	})
	t.Run("not X25519", func(t *testing.T) {
		p256, err := ecdh.P256().GenerateKey(rand.Reader)
		require.NoError(t, err)
		_, err = directoryhttp.NewClient("http://x", http.DefaultTransport, directoryhttp.WithConnectorKey(p256.PublicKey()))
		assert.Error(t, err)
	})
}
