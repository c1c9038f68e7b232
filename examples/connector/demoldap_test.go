package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
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
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// TestDirectoryOverTunnel: a connector in front of an in-process LDAP server
// serves browse and lookup to the cloud through the real tunnel, and refuses
// what its policy does not allow before the directory sees anything.
func TestDirectoryOverTunnel(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newDemoCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	_, key := memIdentity(t)
	cloudCfg := connector.Cloud{URL: c.url, CAPEM: c.caPEM, Key: key}
	enrolled, err := connector.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	cloudCfg.ConnectorID, cloudCfg.CloudKey = enrolled.ConnectorID, enrolled.CloudKey

	a := newDemoAgent(t, connector.Config{
		Cloud: cloudCfg,
		Directory: &connector.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: demoldap.ServicePassword,
			CAPEM: ldap.CAPEM(),
		},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpBrowse, connector.OpLookup}},
	})
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	c.waitPresence(t, tunnel.Connected)

	dc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, c.gw.RoundTripper("acme"))
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
		op   connector.Operation
		call func() error
	}{
		{"credentials", connector.OpCredentials, func() error {
			_, err := dc.CheckCredentials(ctx, directory.Mapping{}, someone.Login, demoldap.Password)
			return err
		}},
		{"import", connector.OpImport, func() error {
			_, err := dc.Users(ctx, directory.Mapping{}, func(directory.User) error { return nil })
			return err
		}},
		{"changes", connector.OpImport, func() error {
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
			assert.Equal(t, connector.CodeForbidden, de.Code)
			assert.Contains(t, de.Message, string(tt.op))
			assert.False(t, errors.Is(err, directory.ErrInvalidCredentials), "a policy refusal is not a wrong password")
		})
	}
	b2, s2 := ldap.Stats()
	assert.Equal(t, binds, b2, "refused requests never reached the directory")
	assert.Equal(t, searches, s2, "refused requests never reached the directory")

	require.NoError(t, a.Close())
	assert.ErrorIs(t, <-runErr, connector.ErrClosed)
}

// TestSealedPasswords: by default the connector publishes its
// X25519 key at StatusPath, accepts passwords sealed to it and refuses plain
// ones; the key survives a restart (kept beside the identity file).
func TestSealedPasswords(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newDemoCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	cloudCfg := connector.Cloud{URL: c.url, CAPEM: c.caPEM, IdentityFile: filepath.Join(t.TempDir(), "identity.json")}
	_, err = connector.Enroll(ctx, cloudCfg, tok)
	require.NoError(t, err)
	cfg := connector.Config{
		Cloud: cloudCfg,
		Directory: &connector.Directory{
			URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: demoldap.ServicePassword,
			CAPEM: ldap.CAPEM(),
		},
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpCredentials}},
	}
	start := func() (*connector.Agent, chan error) {
		a, err := connector.New(cfg)
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		c.waitPresence(t, tunnel.Connected)
		return a, done
	}
	status := func() connector.StatusResponse {
		resp, err := (&http.Client{Transport: c.gw.RoundTripper("acme")}).Get("http://connector" + connector.StatusPath)
		require.NoError(t, err)
		defer resp.Body.Close()
		var st connector.StatusResponse
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st
	}

	a, done := start()
	st := status()
	require.True(t, st.SealedPasswords)
	pub, err := ecdh.X25519().NewPublicKey(st.CredentialsKey)
	require.NoError(t, err)
	rt := c.gw.RoundTripperFor("acme", st.ConnectorID)
	sealed, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, rt, directoryhttp.WithConnectorKey(pub))
	require.NoError(t, err)
	plain, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, rt)
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

// demoCloud is testCloud with its CA in memory, for the agent tests against
// the demo LDAP server (moved here from the connector package: demoldap is
// internal to the examples).
type demoCloud struct {
	url    string
	caPEM  []byte
	gw     *tunnel.Gateway
	events chan tunnel.PresenceEvent
}

func newDemoCloud(t *testing.T) *demoCloud {
	t.Helper()
	url, caFile, gw, events := testCloud(t)
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	return &demoCloud{url: url, caPEM: pem, gw: gw, events: events}
}

func (c *demoCloud) waitPresence(t *testing.T, kind tunnel.PresenceKind) {
	t.Helper()
	for {
		select {
		case ev := <-c.events:
			if ev.Kind == kind {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %v presence event", kind)
		}
	}
}

func memIdentity(t *testing.T) (string, ed25519.PrivateKey) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return "conn-test", key
}

func newDemoAgent(t *testing.T, cfg connector.Config) *connector.Agent {
	t.Helper()
	a, err := connector.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	return a
}
