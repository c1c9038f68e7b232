package activation_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

// TestDisabledInDirectoryIsRefused: a user disabled, locked or expired in
// the directory gets the same 403 as a user not found, nothing is created,
// and the audit event holds the specific reason.
func TestDisabledInDirectoryIsRefused(t *testing.T) {
	notFoundStatus, notFoundMsg := activation.PublicError(activation.ErrUserNotFound)
	for _, c := range []struct {
		state  string
		set    func(*activation.DirectoryUser)
		reason string
	}{
		{"disabled", func(u *activation.DirectoryUser) { u.Disabled = true }, "activation: user disabled in the directory"},
		{"locked", func(u *activation.DirectoryUser) { u.Locked = true }, "activation: user locked in the directory"},
		{"expired", func(u *activation.DirectoryUser) { u.Expired = true }, "activation: user expired in the directory"},
	} {
		for name, mk := range stores(t) {
			t.Run(c.state+"/"+name, func(t *testing.T) {
				st := mk(t)
				h := newHarness(t, st)
				k := [3]string{"m1", "corp.example", "alice"}
				u := h.dir.users[k]
				c.set(&u)
				h.dir.users[k] = u

				res, err := h.svc.Activate(context.Background(), newDevice(t, "dev-1").request("t1", h.token, "alice", "corp.example"))
				require.ErrorIs(t, err, activation.ErrUserDisabled)
				assert.Empty(t, res.Credential)
				var de *activation.DisabledError
				require.ErrorAs(t, err, &de)
				assert.Equal(t, "directory", de.Where)
				assert.Equal(t, c.state, de.Reason)

				status, msg := activation.PublicError(err)
				assert.Equal(t, http.StatusForbidden, status)
				assert.Equal(t, notFoundStatus, status)
				assert.Equal(t, notFoundMsg, msg, "the device cannot tell disabled from not found")
				assert.NotContains(t, msg, c.state)

				ev := h.audit.last()
				assert.Equal(t, activation.DecisionRefused, ev.Decision)
				assert.EqualError(t, ev.Err, c.reason, "the audit event says why")

				_, err = st.Device(context.Background(), "t1", "dev-1")
				assert.ErrorIs(t, err, activation.ErrNotFound, "no device was activated")
			})
		}
	}
}

// TestDisabledInCloudIsRefused: a user the cloud has disabled cannot
// activate another device, nor get the credential of one activated before
// (a retry), though the directory still says enabled.
func TestDisabledInCloudIsRefused(t *testing.T) {
	st := activation.NewMemoryStore()
	h := newHarness(t, st)
	ctx := context.Background()
	first := newDevice(t, "dev-1")
	_, err := h.svc.Activate(ctx, first.request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
	require.NoError(t, st.SetUserDisabled(ctx, "t1", "guid-alice", true))

	for name, req := range map[string]activation.Request{
		"new device":             newDevice(t, "dev-2").request("t1", h.token, "alice", "corp.example"),
		"retry of an old device": first.request("t1", h.token, "alice", "corp.example"),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := h.svc.Activate(ctx, req)
			var de *activation.DisabledError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, activation.DisabledError{Where: "cloud", Reason: "disabled"}, *de)
			assert.Empty(t, res.Credential)
			status, _ := activation.PublicError(err)
			assert.Equal(t, http.StatusForbidden, status)
			assert.EqualError(t, h.audit.last().Err, "activation: user disabled in the cloud")
		})
	}
	_, err = st.Device(ctx, "t1", "dev-2")
	assert.ErrorIs(t, err, activation.ErrNotFound)

	require.NoError(t, st.SetUserDisabled(ctx, "t1", "guid-alice", false))
	_, err = h.svc.Activate(ctx, newDevice(t, "dev-2").request("t1", h.token, "alice", "corp.example"))
	assert.NoError(t, err, "enabled again")
	assert.ErrorIs(t, st.SetUserDisabled(ctx, "t1", "guid-nobody", true), activation.ErrNotFound)
}

// TestDisabledOverHTTP: the handler answers a disabled user exactly as a
// user not found, byte for byte.
func TestDisabledOverHTTP(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	h.dir.add("m1", "corp.example", "bob", "guid-bob")
	k := [3]string{"m1", "corp.example", "bob"}
	u := h.dir.users[k]
	u.Disabled = true
	h.dir.users[k] = u
	disabled := postActivation(t, h, newDevice(t, "dev-1").request("t1", h.token, "bob", "corp.example"))
	unknown := postActivation(t, h, newDevice(t, "dev-2").request("t1", h.token, "nobody", "corp.example"))
	assert.Equal(t, http.StatusForbidden, disabled.status)
	assert.Equal(t, unknown, disabled)
	assert.True(t, errors.Is(h.audit.last().Err, activation.ErrUserNotFound))
	assert.Equal(t, 2, h.audit.count()-1, "both audited") // plus the token issue
}

type httpAnswer struct {
	status int
	body   string
}

func postActivation(t *testing.T, h *harness, r activation.Request) httpAnswer {
	t.Helper()
	srv := httptest.NewServer(h.svc.Handler())
	defer srv.Close()
	b, err := json.Marshal(activation.ActivateRequest{Tenant: r.Tenant, Token: r.Token, Login: r.Login, Domain: r.Domain,
		Hostname: r.Hostname, DeviceID: r.DeviceID, DevicePublicKey: r.DevicePublicKey, Signature: r.Signature})
	require.NoError(t, err)
	resp, err := srv.Client().Post(srv.URL+"/v1/activate", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpAnswer{resp.StatusCode, string(body)}
}

// TestDisabledUsersDevicesRefused: once the store holds a user disabled (an
// import saw them leave the directory or the mapping), every device of the
// user fails authentication, over the API and the HTTP endpoint alike, and
// works again when the user is enabled again.
func TestDisabledUsersDevicesRefused(t *testing.T) {
	st := activation.NewMemoryStore()
	h := newHarness(t, st)
	ctx := context.Background()
	dev := newDevice(t, "dev-1")
	res, err := h.svc.Activate(ctx, dev.request("t1", h.token, "alice", "corp.example"))
	require.NoError(t, err)
	auth := func() error {
		msg := []byte("challenge")
		_, err := h.svc.AuthenticateDevice(ctx, "t1", res.Credential, msg, ed25519.Sign(dev.priv, msg))
		return err
	}
	authHTTP := func() int {
		req, err := activation.SignDeviceAuth(dev.priv, "t1", res.Credential, h.clock.Now(), rand.Reader)
		require.NoError(t, err)
		b, err := json.Marshal(req)
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		h.svc.DeviceAuthHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/device/auth", bytes.NewReader(b)))
		return rec.Code
	}
	require.NoError(t, auth())
	require.Equal(t, http.StatusOK, authHTTP())

	require.NoError(t, st.SetUserDisabled(ctx, "t1", "guid-alice", true))
	err = auth()
	assert.ErrorIs(t, err, activation.ErrBadProof)
	var de *activation.DisabledError
	require.ErrorAs(t, err, &de, "the caller can tell why")
	assert.Equal(t, activation.DisabledError{Where: "cloud", Reason: "disabled"}, *de)
	assert.Equal(t, http.StatusUnauthorized, authHTTP(), "the device cannot tell why")

	require.NoError(t, st.SetUserDisabled(ctx, "t1", "guid-alice", false))
	assert.NoError(t, auth(), "enabled again")
}
