package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/keyenvelope"
)

// TestDisabledUserIsRefused: hole 4 of issue 9. A user disabled in the
// directory and imported as disabled cannot activate a device (the same
// public 403 as an unknown user, the reason in the audit event) and gets no
// backup key release; an admin can still restore his data with the ekey
// his earlier backups used.
func TestDisabledUserIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	users := demoUsers(3) // user0 enabled, user1 to be disabled, user2 never imported
	e.dir.set(users[:2])
	require.NoError(t, e.srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	byLogin := func() map[string]cloudapp.User {
		us, err := e.srv.Users(ctx, "acme")
		require.NoError(t, err)
		m := map[string]cloudapp.User{}
		for _, u := range us {
			m[u.Login] = u
		}
		return m
	}
	user1 := byLogin()["user1"].ID

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	wpub := worker.PublicKey().Bytes()
	release := func(uid, job, purpose string) (int, cloudapp.Release) {
		var rel cloudapp.Release
		in := map[string]any{"user_id": uid, "job_id": job, "worker_key": wpub}
		if purpose != "" {
			in["purpose"] = purpose
		}
		st := e.do(http.MethodPost, "/v1/admin/tenants/acme/key-releases", in, &rel)
		return st, rel
	}
	// While enabled, user1 is backed up: that ekey is what restores need.
	st, before := release(user1, "job-1", "")
	require.Equal(t, http.StatusOK, st)
	ekBefore, err := keyenvelope.OpenRelease(worker, before.Ticket, before.Release)
	require.NoError(t, err)

	// Disabled in the directory, then imported as disabled.
	users[1].Disabled = true
	e.dir.set(users[:2])
	_, err = e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true})
	require.NoError(t, err)
	require.True(t, byLogin()["user1"].Disabled)

	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	activate := func(login, device string) (int, string) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		req := activation.Request{Tenant: "acme", Token: tok.Token, Login: login, Domain: "corp.test", Hostname: "pc", DeviceID: device}
		req.Sign(priv)
		var out map[string]any
		st := e.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
			Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
			DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, &out)
		cred, _ := out["credential"].(string)
		if cred == "" {
			cred, _ = out["error"].(string)
		}
		return st, cred
	}

	t.Run("activation refused like an unknown user", func(t *testing.T) {
		st, msg := activate("user1", "dev-1")
		assert.Equal(t, http.StatusForbidden, st)
		st2, msg2 := activate("ghost", "dev-2")
		assert.Equal(t, st2, st)
		assert.Equal(t, msg2, msg, "the device cannot tell disabled from unknown")
		st, cred := activate("user0", "dev-3")
		assert.Equal(t, http.StatusOK, st, "an enabled user of the same mapping still activates")
		assert.Contains(t, cred, activation.CredentialPrefix)
	})

	t.Run("backup release refused", func(t *testing.T) {
		st, rel := release(user1, "job-2", "backup")
		assert.Equal(t, http.StatusForbidden, st)
		assert.Empty(t, rel.Release)
		_, err := e.srv.ReleaseKey(ctx, "acme", user1, "job-3", wpub, 0)
		assert.ErrorIs(t, err, cloudapp.ErrUserDisabled)
	})

	t.Run("restore by the admin allowed, with the same ekey", func(t *testing.T) {
		st, rel := release(user1, "job-4", "restore")
		require.Equal(t, http.StatusOK, st)
		ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
		require.NoError(t, err)
		assert.Equal(t, ekBefore.Key, ek.Key)
		assert.Equal(t, before.EkeyID, rel.EkeyID)
	})

	t.Run("restore after the user left the directory", func(t *testing.T) {
		e.dir.set(users[:1]) // user1 deleted from the directory
		require.NoError(t, e.srv.PutMappingPolicy(ctx, "acme", "staff", directory.Mapping{}, importer.RemoveDelete))
		_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true, Override: true})
		require.NoError(t, err)
		_, stillThere := byLogin()["user1"]
		require.False(t, stillThere, "deleted by the full import")
		st, rel := release(user1, "job-7", "restore")
		require.Equal(t, http.StatusOK, st)
		ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
		require.NoError(t, err)
		assert.Equal(t, ekBefore.Key, ek.Key)
		st, _ = release(user1, "job-8", "backup")
		assert.Equal(t, http.StatusNotFound, st, "no backups for a deleted user")
		e.dir.set(users[:2])
	})

	t.Run("restore of a user never backed up finds nothing", func(t *testing.T) {
		st, _ := release(byLogin()["user0"].ID, "job-5", "restore")
		assert.Equal(t, http.StatusNotFound, st)
	})

	t.Run("unknown purpose", func(t *testing.T) {
		st, _ := release(user1, "job-6", "Restore")
		assert.Equal(t, http.StatusBadRequest, st)
	})
}

// TestDisabledStateSources: the directory's live answer and the cloud's
// table are each enough to refuse, whichever is more recent.
func TestDisabledStateSources(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	users := demoUsers(3)
	e.dir.set(users)
	require.NoError(t, e.srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	us, err := e.srv.Users(ctx, "acme")
	require.NoError(t, err)
	ids := map[string]string{}
	for _, u := range us {
		ids[u.Login] = u.ID
	}

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	wpub := worker.PublicKey().Bytes()

	// user0: disabled in the directory after the import; the cloud's row
	// still says enabled. The live lookup refuses the backup.
	users[0].Disabled = true
	e.dir.set(users)
	_, err = e.srv.ReleaseKey(ctx, "acme", ids["user0"], "job-1", wpub, 0)
	assert.ErrorIs(t, err, cloudapp.ErrUserDisabled, "disabled in the directory, not yet imported")

	// Activation of user0 too, through the service with an audit trail.
	svc := e.srv.ActivationService()
	tokText, _, err := svc.IssueToken(ctx, "acme", "staff", time.Hour)
	require.NoError(t, err)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	req := activation.Request{Tenant: "acme", Token: tokText, Login: "user0", Domain: "corp.test", DeviceID: "d0"}
	req.Sign(priv)
	_, err = svc.Activate(ctx, req)
	var de *activation.DisabledError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, activation.DisabledError{Where: "directory", Reason: "disabled"}, *de)

	// user2: imported as disabled, then enabled again in the directory but
	// not re-imported. The cloud's table refuses until the next import.
	users[2].Disabled = true
	e.dir.set(users)
	_, err = e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true, Override: true}) // 2 of 3 disabled: above the threshold
	require.NoError(t, err)
	users[2].Disabled = false
	e.dir.set(users)
	req = activation.Request{Tenant: "acme", Token: tokText, Login: "user2", Domain: "corp.test", DeviceID: "d2"}
	req.Sign(priv)
	_, err = svc.Activate(ctx, req)
	require.ErrorAs(t, err, &de)
	assert.Equal(t, activation.DisabledError{Where: "cloud", Reason: "disabled"}, *de)
	_, err = e.srv.ReleaseKey(ctx, "acme", ids["user2"], "job-2", wpub, 0)
	assert.ErrorIs(t, err, cloudapp.ErrUserDisabled, "disabled in the cloud")

	// After the next import both work again.
	users[0].Disabled = false
	e.dir.set(users)
	_, err = e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true})
	require.NoError(t, err)
	_, err = svc.Activate(ctx, req)
	assert.NoError(t, err)
	_, err = e.srv.ReleaseKey(ctx, "acme", ids["user0"], "job-3", wpub, 0)
	assert.NoError(t, err)
}

// TestLockedOrExpiredInDirectory: a locked-out or expired account activates
// no device; an expired one gets no backup release, a locked-out one still
// does (a lockout is temporary and about passwords, not about the user).
func TestLockedOrExpiredInDirectory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	c := e.enroll("acme")
	e.start(c)
	users := demoUsers(3)
	e.dir.set(users)
	require.NoError(t, e.srv.PutMapping(ctx, "acme", "staff", directory.Mapping{}))
	_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{})
	require.NoError(t, err)
	us, err := e.srv.Users(ctx, "acme")
	require.NoError(t, err)
	ids := map[string]string{}
	for _, u := range us {
		ids[u.Login] = u.ID
	}
	users[1].Locked, users[2].Expired = true, true
	e.dir.set(users)

	svc := e.srv.ActivationService()
	tok, _, err := svc.IssueToken(ctx, "acme", "staff", time.Hour)
	require.NoError(t, err)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for login, reason := range map[string]string{"user1": "locked", "user2": "expired"} {
		req := activation.Request{Tenant: "acme", Token: tok, Login: login, Domain: "corp.test", DeviceID: "d-" + login}
		req.Sign(priv)
		_, err = svc.Activate(ctx, req)
		var de *activation.DisabledError
		require.ErrorAs(t, err, &de, login)
		assert.Equal(t, activation.DisabledError{Where: "directory", Reason: reason}, *de)
	}

	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	_, err = e.srv.ReleaseKey(ctx, "acme", ids["user2"], "job-1", worker.PublicKey().Bytes(), 0)
	assert.ErrorIs(t, err, cloudapp.ErrUserDisabled, "expired")
	_, err = e.srv.ReleaseKey(ctx, "acme", ids["user1"], "job-2", worker.PublicKey().Bytes(), 0)
	assert.NoError(t, err, "locked out only")
}
