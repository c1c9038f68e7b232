package e2e_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/keyenvelope"
)

// TestDisabledUsersAgainstRealDirectories: hole 4 of issue 9 on the real
// OpenLDAP and Samba AD, through the real connector and tunnel. A user
// disabled in the directory and imported as disabled activates no device
// and gets no backup release; the admin still restores his data with the
// ekey of his earlier backups. The test bed's disabled, locked-out and
// (AD) expired accounts activate nothing either.
func TestDisabledUsersAgainstRealDirectories(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		ou := s.e2eOU(t)
		special := directorytest.OUDN([]string{"Corp", "Special"}, s.BaseDN)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "special", directory.Mapping{OUs: []string{special, ou}}))
		login, _, dn := s.addUser(t, ou, "e2e.leaver")
		_, err := st.Cloud.RunImport(ctx, tenant, "special", cloudapp.ImportOptions{})
		require.NoError(t, err)
		leaver := usersByLogin(t, st)[login]
		require.NotEmpty(t, leaver.ID)
		require.False(t, leaver.Disabled)

		worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
		require.NoError(t, err)
		wpub := worker.PublicKey().Bytes()
		backup, err := st.Cloud.ReleaseKey(ctx, tenant, leaver.ID, "job-backup-1", wpub, 0)
		require.NoError(t, err, "backed up while enabled")
		ekBefore, err := keyenvelope.OpenRelease(worker, backup.Ticket, backup.Release)
		require.NoError(t, err)

		// The leaver is disabled in the directory, and imported as such.
		s.disable(t, dn)
		_, err = st.Cloud.RunImport(ctx, tenant, "special", cloudapp.ImportOptions{Full: true})
		require.NoError(t, err)
		require.True(t, usersByLogin(t, st)[login].Disabled, "imported as disabled")

		token, _, err := st.Cloud.IssueDeploymentToken(ctx, tenant, "special", time.Hour)
		require.NoError(t, err)
		act := st.Cloud.ActivationService()
		activate := func(login string) (activation.Result, error) {
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			req := activation.Request{Tenant: tenant, Token: token, Login: login, DeviceID: "dev-" + login, Hostname: "pc", Source: "192.0.2.1"}
			req.Sign(key)
			return act.Activate(ctx, req)
		}
		refusals := map[string]activation.DisabledError{login: {Where: "directory", Reason: "disabled"}}
		for key, reason := range map[string]string{"disabled": "disabled", "locked": "locked", "expired": "expired"} {
			u, ok := s.ds.User(key)
			require.True(t, ok)
			if key == "expired" && !s.ad() {
				continue // OpenLDAP's expired.user has an expired password, not an expired account
			}
			refusals[u.LoginFor(s.Flavor)] = activation.DisabledError{Where: "directory", Reason: reason}
		}
		for l, want := range refusals {
			t.Run("activation refused "+l, func(t *testing.T) {
				res, err := activate(l)
				var de *activation.DisabledError
				require.ErrorAs(t, err, &de)
				assert.Equal(t, want, *de)
				assert.Empty(t, res.Credential)
				status, msg := activation.PublicError(err)
				wantStatus, wantMsg := activation.PublicError(activation.ErrUserNotFound)
				assert.Equal(t, wantStatus, status)
				assert.Equal(t, wantMsg, msg)
			})
		}

		t.Run("backup refused", func(t *testing.T) {
			_, err := st.Cloud.ReleaseKey(ctx, tenant, leaver.ID, "job-backup-2", wpub, 0)
			assert.ErrorIs(t, err, cloudapp.ErrUserDisabled)
		})
		t.Run("restore by the admin allowed", func(t *testing.T) {
			rel, err := st.Cloud.RestoreKey(ctx, tenant, leaver.ID, "job-restore-1", wpub, 0)
			require.NoError(t, err)
			ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
			require.NoError(t, err)
			assert.Equal(t, ekBefore.Key, ek.Key, "the ekey his backups were made with")
		})
	})
}
