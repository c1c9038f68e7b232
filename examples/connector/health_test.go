package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
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

// cloud is demoCloud with the connectors' published info.
type cloud struct {
	*demoCloud
	infos chan tunnel.InfoEvent
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	url, caFile, gw, events, infos := testCloudInfo(t)
	pem, err := os.ReadFile(caFile)
	require.NoError(t, err)
	return &cloud{demoCloud: &demoCloud{url: url, caPEM: pem, gw: gw, events: events}, infos: infos}
}

func waitInfo(t *testing.T, c *cloud, ok func(tunnel.ConnectorInfo) bool) tunnel.ConnectorInfo {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.infos:
			if ok(ev.Info) {
				return ev.Info
			}
		case <-timeout:
			t.Fatal("no matching connector info")
		}
	}
}

// runDirectoryAgent enrolls and runs a connector in front of ldap with the
// given service password.
func runDirectoryAgent(t *testing.T, c *cloud, ldap *demoldap.Server, password string, allow ...connector.Operation) {
	t.Helper()
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
		Directory: &connector.Directory{URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN, BindPassword: password,
			CAPEM: ldap.CAPEM()},
		Policy: connector.Policy{Allow: allow},
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = a.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c.waitPresence(t, tunnel.Connected)
}

func checkThroughTunnel(t *testing.T, c *cloud, req connector.CheckRequest) []connector.CheckResult {
	t.Helper()
	body, err := json.Marshal(req)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: c.gw.RoundTripper("acme")}).Post("http://connector"+connector.CheckPath, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []connector.CheckResult
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// A connector whose service password is wrong looks connected, but the
// first real directory operation publishes the directory as unavailable
// with the fix; a connection test through the tunnel fails at the bind step
// naming the setting. Nothing reaches the directory before the cloud asks.
func TestHealthBrokenDirectory(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newCloud(t)
	runDirectoryAgent(t, c, ldap, "not-the-service-password", connector.OpBrowse, connector.OpLookup)

	host, _ := os.Hostname()
	info := waitInfo(t, c, func(tunnel.ConnectorInfo) bool { return true })
	assert.NotEmpty(t, info.Version)
	assert.Equal(t, host, info.Host)
	assert.Contains(t, info.OS, "/")
	d := info.Services[connector.ServiceDirectory]
	assert.True(t, d.Configured)
	assert.Nil(t, d.Last, "no operation yet")
	assert.False(t, info.Services[connector.ServiceKeys].Configured)
	binds, searches := ldap.Stats()
	assert.Zero(t, binds+searches, "the connector did not probe the directory")

	dc, err := directoryhttp.NewClient("http://connector"+connector.DirectoryPrefix, c.gw.RoundTripper("acme"))
	require.NoError(t, err)
	_, err = dc.Lookup(context.Background(), directory.Mapping{}, ldap.Users()[0].Login)
	require.ErrorIs(t, err, directory.ErrServiceBind, "the cloud sees why")

	info = waitInfo(t, c, func(i tunnel.ConnectorInfo) bool { return i.Services["directory"].Last != nil })
	last := info.Services["directory"].Last
	assert.Equal(t, "lookup", last.Op)
	assert.False(t, last.OK)
	assert.True(t, last.Unavailable)
	assert.Contains(t, last.Error, "directory.bind_dn")
	assert.WithinDuration(t, time.Now(), last.At, 5*time.Second)

	steps := checkThroughTunnel(t, c, connector.CheckRequest{Name: ldap.Users()[0].Login})
	require.Len(t, steps, 1, "stops at the failing bind: %v", steps)
	assert.Equal(t, directory.StepBind, steps[0].Step)
	assert.False(t, steps[0].OK)
	assert.Contains(t, steps[0].Fix, "directory.bind_dn")
	assert.True(t, strings.HasPrefix(steps[0].String(), "FAIL bind:"), steps[0].String())
}

// With the right settings every step passes, and a successful operation
// is published as the directory's last outcome; a lookup the policy does
// not allow is reported as a failed step naming policy.allow.
func TestHealthCheckPasses(t *testing.T) {
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	c := newCloud(t)
	runDirectoryAgent(t, c, ldap, demoldap.ServicePassword, connector.OpBrowse)
	someone := ldap.Users()[0].Login

	steps := checkThroughTunnel(t, c, connector.CheckRequest{Name: someone})
	require.Len(t, steps, 3, "%v", steps)
	assert.True(t, steps[0].OK, steps[0].String())
	assert.True(t, steps[1].OK, steps[1].String())
	assert.Equal(t, directory.StepLookup, steps[2].Step)
	assert.False(t, steps[2].OK)
	assert.Contains(t, steps[2].Fix, "policy.allow")

	info := waitInfo(t, c, func(i tunnel.ConnectorInfo) bool { return i.Services["directory"].Last != nil })
	last := info.Services["directory"].Last
	assert.Equal(t, "check", last.Op)
	assert.True(t, last.OK)
	assert.Empty(t, last.Error)
}
