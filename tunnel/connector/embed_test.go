package connector_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// TestEmbedding builds testdata/vendoragent, a vendor's own agent in its own
// module that uses this module's public packages only (a package under
// examples/ or internal/ would not compile there: "use of internal package
// not allowed"), then runs it: it enrolls with a one-time token, connects,
// and serves the key service to the cloud through the tunnel.
//
// The build is offline: the module's dependencies come from the module
// cache and the checkout's go.sum (GOPROXY=off, GOFLAGS=-mod=mod).
func TestEmbedding(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program: skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot build the embedding module")
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	mod := t.TempDir()
	for _, f := range []string{"go.mod", "main.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "vendoragent", f))
		require.NoError(t, err)
		if f == "go.mod" {
			b = []byte(strings.Replace(string(b), "=> ../../../..", "=> "+root, 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(mod, f), b, 0o600))
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(mod, "go.sum"), sum, 0o600))

	bin := filepath.Join(t.TempDir(), "vendoragent")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = mod
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local", "GOWORK=off", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build of the embedding module:\n%s", out)

	list := exec.Command(goBin, "list", "-deps", ".")
	list.Dir, list.Env = mod, build.Env
	deps, err := list.Output()
	require.NoError(t, err)
	for _, p := range strings.Fields(string(deps)) {
		assert.False(t, strings.HasPrefix(p, "github.com/liaisonhq/liaison/examples/"), "the vendor's agent links %s", p)
		for _, cloudOnly := range []string{"github.com/prometheus/", "github.com/nats-io/", "github.com/jackc/", "modernc.org/sqlite"} {
			assert.False(t, strings.HasPrefix(p, cloudOnly), "the vendor's agent links %s (cloud only)", p)
		}
	}

	// Run it against a cloud: enroll, connect, serve keys.
	c := newCloud(t)
	ctx := context.Background()
	tok, err := c.gw.IssueEnrollmentToken(ctx, "acme", time.Minute)
	require.NoError(t, err)
	state := t.TempDir()
	caFile := filepath.Join(state, "cloud-ca.pem")
	require.NoError(t, os.WriteFile(caFile, c.caPEM, 0o600))
	args := []string{"-cloud", c.url, "-state", state, "-ca-file", caFile}
	enroll := exec.Command(bin, append(args, "-enroll", tok)...)
	out, err = enroll.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "enrolled ")
	assert.Contains(t, string(out), "(tenant acme)")

	run := exec.Command(bin, args...)
	run.Env = append(os.Environ(), "VENDOR_KEK_PASSPHRASE=correct horse battery")
	stdout, err := run.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	run.Stderr = &stderr
	require.NoError(t, run.Start())
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		_ = run.Process.Kill()
		<-exited
	})
	connected := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "connected" {
				connected <- true
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-connected:
	case err := <-exited:
		t.Fatalf("the agent exited (%v):\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not connect:\n%s", stderr.String())
	}

	kc, err := keyhttp.NewClient("http://connector"+connector.KeysPrefix, c.gw.RoundTripper("acme"))
	require.NoError(t, err)
	pub, err := kc.PublicKey(ctx, keyenvelope.SuiteX25519)
	require.NoError(t, err, "the cloud reaches the vendor agent's key service through the tunnel")
	assert.NotNil(t, pub)

	if runtime.GOOS != "windows" {
		require.NoError(t, run.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-exited:
			assert.NoError(t, err, "a clean stop on SIGTERM:\n%s", stderr.String())
			exited <- err // for the cleanup
		case <-time.After(30 * time.Second):
			t.Fatal("the agent did not stop on SIGTERM")
		}
		c.waitPresence(t, tunnel.Disconnected)
	}
	fi, err := os.Stat(filepath.Join(state, "identity.json.key"))
	require.NoError(t, err)
	if runtime.GOOS != "windows" {
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the agent's private key is 0600")
	}
}
