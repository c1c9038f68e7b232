package connectorapp_test

import (
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/examples/internal/connectorapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/tunnel"
)

// TestDirectoryOverTunnel: a connector in front of an in-process LDAP server
// serves browse and lookup to the cloud through the real tunnel, and refuses
// what its policy does not allow before the directory sees anything.
func TestDirectoryOverTunnel(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	_, key := memIdentity(t)
	cloudCfg := connectorapp.Cloud{URL: c.url, CAPEM: c.caPEM, Key: key}
	enrolled, err := connectorapp.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	cloudCfg.ConnectorID, cloudCfg.CloudKey = enrolled.ConnectorID, enrolled.CloudKey

	a := newAgent(t, connectorapp.Config{
		Cloud: cloudCfg,
		Directory: &connectorapp.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: demoldap.ServicePassword,
			CAPEM: ldap.CAPEM(),
		},
		Policy: connectorapp.Policy{Allow: []connectorapp.Operation{connectorapp.OpBrowse, connectorapp.OpLookup}},
	})
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	c.waitPresence(t, tunnel.Connected)

	dc, err := directoryhttp.NewClient("http://connector"+connectorapp.DirectoryPrefix, c.gw.RoundTripper("acme"))
	require.NoError(t, err)

	ous, err := dc.OUs(ctx, demoldap.PeopleDN)
	require.NoError(t, err)
	assert.Len(t, ous, 5, "People and its four departments")

	someone := ldap.Users()[0]
	u, err := dc.Lookup(ctx, directory.Mapping{}, someone.Login)
	require.NoError(t, err)
	assert.Equal(t, someone.Login, u.Login)
	_, err = dc.Lookup(ctx, directory.Mapping{}, "nobody.here")
	assert.ErrorIs(t, err, directory.ErrNotFound, "directory errors still cross the wire typed")

	binds, searches := ldap.Stats()
	refused := []struct {
		name string
		op   connectorapp.Operation
		call func() error
	}{
		{"credentials", connectorapp.OpCredentials, func() error {
			_, err := dc.CheckCredentials(ctx, directory.Mapping{}, someone.Login, demoldap.Password)
			return err
		}},
		{"import", connectorapp.OpImport, func() error {
			_, err := dc.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
			return err
		}},
		{"changes", connectorapp.OpImport, func() error {
			_, err := dc.Changes(ctx, directory.Mapping{}, "", func(directory.User) error { return nil })
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			var de *directoryhttp.Error
			require.ErrorAs(t, err, &de)
			assert.Equal(t, connectorapp.CodeForbidden, de.Code)
			assert.Contains(t, de.Message, string(tt.op))
			assert.False(t, errors.Is(err, directory.ErrInvalidCredentials), "a policy refusal is not a wrong password")
		})
	}
	b2, s2 := ldap.Stats()
	assert.Equal(t, binds, b2, "refused requests never reached the directory")
	assert.Equal(t, searches, s2, "refused requests never reached the directory")

	require.NoError(t, a.Close())
	assert.ErrorIs(t, <-runErr, connectorapp.ErrClosed)
}

// TestSealedPasswords: by default the connector publishes its
// X25519 key at StatusPath, accepts passwords sealed to it and refuses plain
// ones; the key survives a restart (kept beside the identity file).
func TestSealedPasswords(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	cloudCfg := connectorapp.Cloud{URL: c.url, CAPEM: c.caPEM, IdentityFile: filepath.Join(t.TempDir(), "identity.json")}
	_, err = connectorapp.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	cfg := connectorapp.Config{
		Cloud: cloudCfg,
		Directory: &connectorapp.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: demoldap.ServicePassword,
			CAPEM: ldap.CAPEM(),
		},
		Policy: connectorapp.Policy{Allow: []connectorapp.Operation{connectorapp.OpCredentials}},
	}
	start := func() (*connectorapp.Agent, chan error) {
		a, err := connectorapp.New(cfg, nil)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		c.waitPresence(t, tunnel.Connected)
		return a, done
	}
	status := func() connectorapp.StatusResponse {
		resp, err := (&http.Client{Transport: c.gw.RoundTripper("acme")}).Get("http://connector" + connectorapp.StatusPath)
		require.NoError(t, err)
		defer resp.Body.Close()
		var st connectorapp.StatusResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st
	}

	a, done := start()
	st := status()
	require.True(t, st.SealedPasswords)
	pub, err := ecdh.X25519().NewPublicKey(st.CredentialsKey)
	require.NoError(t, err)
	rt := c.gw.RoundTripperFor("acme", st.ConnectorID)
	sealed, err := directoryhttp.NewClient("http://connector"+connectorapp.DirectoryPrefix, rt, directoryhttp.WithConnectorKey(pub))
	require.NoError(t, err)
	plain, err := directoryhttp.NewClient("http://connector"+connectorapp.DirectoryPrefix, rt)
	require.NoError(t, err)

	someone := ldap.Users()[0].Login
	u, err := sealed.CheckCredentials(ctx, directory.Mapping{}, someone, demoldap.Password)
	require.NoError(t, err)
	assert.Equal(t, someone, u.Login)
	_, err = sealed.CheckCredentials(ctx, directory.Mapping{}, someone, "wrong-"+demoldap.Password)
	assert.ErrorIs(t, err, directory.ErrInvalidCredentials)
	_, err = plain.CheckCredentials(ctx, directory.Mapping{}, someone, demoldap.Password)
	require.Error(t, err, "a plain password is refused")
	assert.NotErrorIs(t, err, directory.ErrInvalidCredentials)

	require.NoError(t, a.Close())
	<-done
	c.waitPresence(t, tunnel.Disconnected)
	a, done = start()
	defer func() { a.Close(); <-done }()
	assert.Equal(t, st.CredentialsKey, status().CredentialsKey, "the key is kept across restarts")

	if fi, err := os.Stat(cloudCfg.IdentityFile + ".x25519"); assert.NoError(t, err) {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}
