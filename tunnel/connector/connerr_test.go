package connector_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUntrustedCloudCertificateNamesCAFile: a connector shown a certificate
// from a CA it does not trust (a TLS-inspecting proxy's) reports the issuer
// and cloud.ca_file in its status and logs, at WARN for the first failures
// and ERROR while it keeps retrying.
func TestUntrustedCloudCertificateNamesCAFile(t *testing.T) {
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "tenant-a", time.Minute)
	require.NoError(t, err)
	cfg := agentConfig(t, true, false, connector.OpBrowse)
	cfg.Cloud.URL, cfg.Cloud.CAPEM = c.url, c.caPEM
	cfg.Cloud.BackoffBase, cfg.Cloud.BackoffMax = time.Millisecond, 5*time.Millisecond
	id, err := connector.Enroll(ctx, cfg.Cloud, tok)
	require.NoError(t, err)
	cfg.Cloud.ConnectorID, cfg.Cloud.CloudKey = id.ConnectorID, id.CloudKey
	other, _ := testPKI(t) // the connector now trusts another CA only
	cfg.Cloud.CAPEM = other

	statuses := make(chan tunnel.Status, 64)
	cfg.OnStatus = func(s tunnel.Status) {
		select {
		case statuses <- s:
		default:
		}
	}
	var logs lockedBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a, err := connector.New(cfg)
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	defer func() { cancel(); <-done; _ = a.Close() }()

	var failures int
	for failures < 5 {
		select {
		case s := <-statuses:
			if s.State != tunnel.StateDisconnected {
				continue
			}
			failures++
			assert.ErrorIs(t, s.Err, tunnel.ErrUntrustedCertificate)
			var ce *connector.ConnectError
			require.True(t, errors.As(s.Err, &ce), "%v", s.Err)
			assert.Contains(t, s.Err.Error(), "cloud.ca_file")
			assert.Contains(t, s.Err.Error(), `issued by "CN=connectorapp test CA"`)
		case <-time.After(10 * time.Second):
			t.Fatal("no failed connect reported")
		}
	}
	assert.ErrorIs(t, a.Status().Err, tunnel.ErrUntrustedCertificate)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "level=ERROR") }, 5*time.Second, 5*time.Millisecond)
	var warns, errs int
	for _, l := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(l, "tunnel status") || !strings.Contains(l, "state=disconnected") {
			continue
		}
		assert.Contains(t, l, "cloud.ca_file")
		switch {
		case strings.Contains(l, "level=WARN"):
			assert.Zero(t, errs, "WARN comes before ERROR: %s", l)
			warns++
		case strings.Contains(l, "level=ERROR"):
			errs++
		}
	}
	assert.Equal(t, 3, warns)
	assert.Positive(t, errs)
}
