package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// chromiumPath finds Debian's chromium (scripts/install-deps installs it);
// without it the test skips, or fails under CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (scripts/install-deps installs Debian's chromium)")
	}
	t.Skip("chromium is not installed: run scripts/install-deps (Debian's chromium) to test the status page in a browser")
	return ""
}

// runChromium runs headless chromium with args and the URL, returning its
// standard output.
func runChromium(t *testing.T, bin, profile string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir=" + profile}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return string(out)
}

// artifactsDir is where build artifacts go: LIAISON_ARTIFACTS_DIR
// (scripts/test sets it), else a test temporary directory.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("LIAISON_ARTIFACTS_DIR"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		return d
	}
	return t.TempDir()
}

// The status page, rendered by a real browser, with one connected
// connector whose import is running, one connector whose directory is
// broken: it shows each connector's version and directory health and the
// import's progress. The 1280×900 screenshot is kept as a build artifact.
func TestStatusPageInChromium(t *testing.T) {
	bin := chromiumPath(t)
	ldap, err := demoldap.Start(demoldap.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ldap.Close() })
	good := connector.Directory{URLs: []string{ldap.URL()}, BindDN: demoldap.ServiceDN,
		BindPassword: demoldap.ServicePassword, CAPEM: ldap.CAPEM()}

	// The import blocks at its third user until the screenshot is taken.
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	ctx := ctxT(t, 3*time.Minute)
	st, err := e2e.Start(ctx, e2e.Config{Directory: good, Dir: t.TempDir(), OnUser: func(n int) {
		if n == 3 {
			<-release
		}
	}})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })

	// A second tenant's connector, whose service password is wrong.
	broken := runBrokenConnector(t, ctx, st, good)
	_, err = st.Cloud.OUs(ctx, "beta", demoldap.BaseDN)
	require.Error(t, err)
	require.Eventually(t, func() bool {
		cs, err := st.Cloud.Connectors(ctx, "beta")
		require.NoError(t, err)
		return len(cs) == 1 && cs[0].Health != nil && cs[0].Health.Directory == cloudapp.HealthUnavailable
	}, 20*time.Second, 20*time.Millisecond)

	require.NoError(t, st.Cloud.PutMapping(ctx, st.Tenant, "staff", directory.Mapping{}))
	importDone := make(chan error, 1)
	go func() {
		_, err := st.Cloud.RunImport(context.WithoutCancel(ctx), st.Tenant, "staff", cloudapp.ImportOptions{})
		importDone <- err
	}()
	require.Eventually(t, func() bool {
		is, err := st.Cloud.Imports(ctx, st.Tenant)
		require.NoError(t, err)
		return len(is.Running) == 1
	}, 20*time.Second, 20*time.Millisecond)

	// The browser reaches the page through a loopback proxy that adds the
	// admin credentials and trusts the cloud's CA.
	target, err := url.Parse(st.Cloud.URL())
	require.NoError(t, err)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = cloudTransport(t, st)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.SetBasicAuth("admin", st.AdminToken)
		r.Host = target.Host
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	profile := t.TempDir()
	dom := runChromium(t, bin, profile, "--dump-dom", front.URL+"/")
	row := func(id string) string {
		re := regexp.MustCompile(`(?s)<tr class="connector" data-connector="` + regexp.QuoteMeta(id) + `">.*?</tr>`)
		return re.FindString(dom)
	}
	good1 := row(st.ConnectorID())
	require.NotEmpty(t, good1, "the connected connector is listed")
	assert.Contains(t, good1, "connected")
	assert.Regexp(t, `class="version mono">[^<-][^<]*<`, good1, "its version is shown")
	bad := row(broken)
	require.NotEmpty(t, bad, "the broken connector is listed")
	assert.Contains(t, bad, `<span class="badge b-bad">unavailable</span>`)
	assert.Contains(t, bad, "directory.bind_dn", "the last error names the fix")
	assert.Regexp(t, `class="version mono">[^<-][^<]*<`, bad)
	imp := regexp.MustCompile(`(?s)<tr class="import" data-mapping="staff">.*?</tr>`).FindString(dom)
	require.NotEmpty(t, imp, "the running import is listed")
	assert.Regexp(t, `<span class="count">\d+ / (\d+|\?)</span>`, imp, "with its progress")
	assert.Contains(t, imp, "scan")
	assert.Contains(t, dom, `<div class="n" id="directory-problems">1</div>`)

	shot := filepath.Join(artifactsDir(t), "status-page.png")
	runChromium(t, bin, profile, "--window-size=1280,900", "--screenshot="+shot, front.URL+"/")
	f, err := os.Open(shot)
	require.NoError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	require.NoError(t, err)
	assert.Equal(t, 1280, cfg.Width)
	assert.Equal(t, 900, cfg.Height)
	t.Logf("status page screenshot: %s", shot)

	unblock()
	select {
	case err := <-importDone:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the import never finished")
	}
}

// runBrokenConnector enrolls a connector in tenant "beta" whose service
// password is wrong and runs it until the test ends; it returns its ID.
func runBrokenConnector(t *testing.T, ctx context.Context, st *e2e.Stack, d connector.Directory) string {
	t.Helper()
	tok, err := st.Cloud.IssueEnrollmentToken(ctx, "beta", time.Minute)
	require.NoError(t, err)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cloud := connector.Cloud{URL: st.Cloud.URL(), CAPEM: st.Cloud.CAPEM(), Key: key}
	id, err := connector.Enroll(ctx, cloud, tok)
	require.NoError(t, err)
	cloud.ConnectorID, cloud.CloudKey = id.ConnectorID, id.CloudKey
	d.BindPassword = "not-the-service-password"
	connected := make(chan struct{})
	var once sync.Once
	a, err := connector.New(connector.Config{Cloud: cloud, Directory: &d,
		Policy: connector.Policy{Allow: []connector.Operation{connector.OpBrowse}},
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				once.Do(func() { close(connected) })
			}
		}})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { _ = a.Run(context.Background()); close(done) }()
	t.Cleanup(func() { _ = a.Close(); <-done })
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatal("the broken connector never connected")
	}
	require.Eventually(t, func() bool {
		cs, err := st.Cloud.Connectors(ctx, "beta")
		require.NoError(t, err)
		return len(cs) == 1 && cs[0].Sessions > 0
	}, 20*time.Second, 20*time.Millisecond)
	return id.ConnectorID
}

// cloudTransport trusts the stack's cloud CA.
func cloudTransport(t *testing.T, st *e2e.Stack) *http.Transport {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(st.Cloud.CAPEM()))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}
