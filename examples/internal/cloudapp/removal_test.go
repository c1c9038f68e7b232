package cloudapp_test

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// Departures: the fake directory has no change log; it reports nothing, so
// incremental imports stay incremental (full scans find removals).
func (f *fakeDir) Departures(context.Context, directory.Mapping, directory.Cursor) ([]directory.Departure, error) {
	return nil, nil
}

// Whereabouts: an ID the fake no longer holds was deleted.
func (f *fakeDir) Whereabouts(_ context.Context, _ directory.Mapping, ids []string) ([]directory.Departure, error) {
	users, _, _ := f.snapshot()
	var out []directory.Departure
	for _, id := range ids {
		if !slices.ContainsFunc(users, func(u directory.User) bool { return u.ID == id }) {
			out = append(out, directory.Departure{ID: id, Reason: directory.RemovedDeleted})
		}
	}
	return out, nil
}

// TestRemovedUserIsCutOff: issue 15. A user deleted from the directory is
// disabled by the next full import (the default removal policy), with the
// reason in the import history and on the status page; from then on the
// user's device no longer authenticates and backup key releases are
// refused, while an admin can still restore.
func TestRemovedUserIsCutOff(t *testing.T) {
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
	var user1 string
	for _, u := range us {
		if u.Login == "user1" {
			user1 = u.ID
		}
	}
	require.NotEmpty(t, user1)

	// user1 activates a device and is backed up once.
	var tok struct {
		Token string `json:"token"`
	}
	require.Equal(t, http.StatusOK, e.do(http.MethodPost, "/v1/admin/tenants/acme/deployment-tokens",
		map[string]any{"mapping_id": "staff", "ttl_seconds": 3600}, &tok))
	_, devKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	req := activation.Request{Tenant: "acme", Token: tok.Token, Login: "user1", Domain: "corp.test", Hostname: "pc", DeviceID: "dev-1"}
	req.Sign(devKey)
	var act map[string]any
	require.Equal(t, http.StatusOK, e.doToken("", http.MethodPost, cloudapp.PathActivate, activation.ActivateRequest{
		Tenant: req.Tenant, Token: req.Token, Login: req.Login, Domain: req.Domain, Hostname: req.Hostname,
		DeviceID: req.DeviceID, DevicePublicKey: req.DevicePublicKey, Signature: req.Signature}, &act))
	cred, _ := act["credential"].(string)
	require.NotEmpty(t, cred)
	deviceAuth := func() int {
		in, err := activation.SignDeviceAuth(devKey, "acme", cred, time.Now(), rand.Reader)
		require.NoError(t, err)
		return e.doToken("", http.MethodPost, cloudapp.PathDeviceAuth, in, nil)
	}
	require.Equal(t, http.StatusOK, deviceAuth())
	worker, err := hpke.DHKEM(ecdh.X25519()).GenerateKey()
	require.NoError(t, err)
	release := func(job, purpose string) int {
		return e.do(http.MethodPost, "/v1/admin/tenants/acme/key-releases",
			map[string]any{"user_id": user1, "job_id": job, "worker_key": worker.PublicKey().Bytes(), "purpose": purpose}, nil)
	}
	require.Equal(t, http.StatusOK, release("job-1", "backup"))

	// user1 is deleted from the directory; the scheduled run is full.
	e.dir.set([]directory.User{users[0], users[2]})
	res, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true})
	require.NoError(t, err)
	assert.Equal(t, importer.Removed{Deleted: 1}, res.Summary.Removed)
	require.Len(t, res.Removals, 1)
	assert.Equal(t, importer.Removal{DirectoryID: users[1].ID, Login: "user1", DN: users[1].DN, Kind: importer.OpDisable, Reason: importer.ReasonDeleted}, res.Removals[0])

	t.Run("history says who and why", func(t *testing.T) {
		st, err := e.srv.Imports(ctx, "acme")
		require.NoError(t, err)
		require.NotEmpty(t, st.Recent)
		assert.Equal(t, res.Removals, st.Recent[0].Removals)
		assert.Equal(t, 1, st.Recent[0].Summary.Removed.Deleted)
		r, err := http.NewRequest(http.MethodGet, e.srv.URL()+"/", nil)
		require.NoError(t, err)
		r.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := e.client.Do(r)
		require.NoError(t, err)
		defer resp.Body.Close()
		page, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Contains(t, string(page), "disable user1 (deleted in the directory)")
	})
	t.Run("device authentication refused", func(t *testing.T) {
		assert.Equal(t, http.StatusUnauthorized, deviceAuth())
	})
	t.Run("backup release refused, restore allowed", func(t *testing.T) {
		assert.Equal(t, http.StatusForbidden, release("job-2", "backup"))
		assert.Equal(t, http.StatusOK, release("job-3", "restore"))
	})
	t.Run("back in the directory, enabled again", func(t *testing.T) {
		e.dir.set(users)
		_, err := e.srv.RunImport(ctx, "acme", "staff", cloudapp.ImportOptions{Full: true})
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, deviceAuth())
	})
}
