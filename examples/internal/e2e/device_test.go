package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
)

// A device activated through the public endpoint keeps authenticating, as
// a backup client does before each backup, while the tenant has no
// connector at all; the web login, which needs the directory, does not.
func TestDeviceAuthenticatesWithoutConnector(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 2*time.Minute)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp()}}))
		token, _, err := st.Cloud.IssueDeploymentToken(ctx, tenant, "corp", time.Hour)
		require.NoError(t, err)

		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(st.Cloud.CAPEM()))
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
		post := func(t *testing.T, path string, in, out any) int {
			t.Helper()
			b, err := json.Marshal(in)
			require.NoError(t, err)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.Cloud.URL()+path, bytes.NewReader(b))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			if out != nil && resp.StatusCode == http.StatusOK {
				require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
			}
			return resp.StatusCode
		}

		user := s.regularUsers(4)[3]
		_, key, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		req := activation.Request{Tenant: tenant, Token: token, Login: user.LoginFor(s.Flavor), DeviceID: "e2e-laptop", Hostname: "e2e-laptop"}
		req.Sign(key)
		var act activation.ActivateResponse
		require.Equal(t, http.StatusOK, post(t, cloudapp.PathActivate, activation.ActivateRequest{
			Tenant: req.Tenant, Token: req.Token, Login: req.Login, Hostname: req.Hostname,
			DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature,
		}, &act))
		require.NotEmpty(t, act.Credential)

		require.NoError(t, st.StopConnector())
		login := cloudapp.LoginRequest{Tenant: tenant, MappingID: "corp", Login: user.LoginFor(s.Flavor), Password: user.Password}
		// The gateway notices the closed session a moment later; until then
		// a login may fail with 502 (session lost) instead of 503.
		require.Eventually(t, func() bool {
			return post(t, cloudapp.PathLogin, login, nil) == http.StatusServiceUnavailable
		}, 10*time.Second, 50*time.Millisecond, "the web login needs a connector")

		auth, err := activation.SignDeviceAuth(key, tenant, act.Credential, time.Now(), rand.Reader)
		require.NoError(t, err)
		var got activation.DeviceAuthResponse
		require.Equal(t, http.StatusOK, post(t, cloudapp.PathDeviceAuth, auth, &got), "a device authenticates with no connector")
		assert.Equal(t, activation.DeviceAuthResponse{Tenant: tenant, UserID: act.UserID, DeviceID: "e2e-laptop"}, got)
		assert.Equal(t, http.StatusUnauthorized, post(t, cloudapp.PathDeviceAuth, auth, nil), "a replayed request is refused")

		_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
		forged, err := activation.SignDeviceAuth(otherKey, tenant, act.Credential, time.Now(), rand.Reader)
		require.NoError(t, err)
		assert.Equal(t, http.StatusUnauthorized, post(t, cloudapp.PathDeviceAuth, forged, nil), "the credential alone is not enough")

		require.NoError(t, st.StartConnector(context.WithoutCancel(ctx)))
	})
}
