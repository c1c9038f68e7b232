package e2e_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/demoldap"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
	"github.com/liaisonhq/liaison/tunnel/connector"
)

// proxiedStack is a cloud endpoint and a connector whose every connection
// to the cloud (enrollment and tunnel) goes through an HTTP proxy that
// inspects TLS: the deployment the README supports with cloud.proxy_url and
// cloud.ca_file. Unlike e2e.Stack it lets a test enroll and start the
// connector itself, and see the secrets it needs to look for: the
// enrollment token, the connector's keys and the KEK.
type proxiedStack struct {
	t       *testing.T
	cloud   *cloudapp.Server
	tenant  string
	ldap    *demoldap.Server
	users   []demoldap.User
	keyring *keyenvelope.Keyring
	credKey *ecdh.PrivateKey   // the connector's X25519 key passwords are sealed to
	key     ed25519.PrivateKey // the connector's identity key
	id      string             // its connector ID, once enrolled
	token   string             // the enrollment token used
	dir     string

	mu       sync.Mutex
	agent    *connector.Agent
	done     chan error
	failures chan error // failed connect attempts of the connector (dropped when full)
}

// proxiedUsers are the demo directory's users in these tests: passwords
// long and random enough that finding one in a recording is no accident.
func proxiedUsers() []demoldap.User {
	pw := func() string {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		return "Pw" + hex.EncodeToString(b)
	}
	return []demoldap.User{
		{Login: "alice.martin", GivenName: "Alice", Surname: "Martin", Department: "Engineering", Password: pw()},
		{Login: "bob.keller", GivenName: "Bob", Surname: "Keller", Department: "Engineering", Password: pw()},
		{Login: "carol.diaz", GivenName: "Carol", Surname: "Diaz", Department: "Sales", Password: pw()},
	}
}

// newProxiedStack runs a cloud endpoint and an in-process directory; the
// connector is enrolled and started by enroll and start.
func newProxiedStack(t *testing.T) *proxiedStack {
	t.Helper()
	ps := &proxiedStack{t: t, tenant: tenant, users: proxiedUsers(), dir: t.TempDir(), failures: make(chan error, 16)}
	var err error
	ps.ldap, err = demoldap.Start(demoldap.Config{Users: ps.users})
	require.NoError(t, err)
	t.Cleanup(func() { ps.ldap.Close() })
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	ps.cloud, err = cloudapp.New(cloudapp.Config{
		DBPath:           filepath.Join(ps.dir, "cloud.db"),
		Addr:             "127.0.0.1:0",
		AdminToken:       hex.EncodeToString(tok),
		DisableScheduler: true,
		PingInterval:     time.Second,
	})
	require.NoError(t, err)
	runErr := make(chan error, 1)
	go func() { runErr <- ps.cloud.Run(context.Background()) }()
	t.Cleanup(func() {
		ps.stopConnector()
		ps.cloud.Close()
		<-runErr
	})
	ps.keyring, err = keyenvelope.NewKeyring(rand.Reader)
	require.NoError(t, err)
	ps.credKey, err = ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, ps.key, err = ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return ps
}

// cloudConfig is the connector's cloud section: through proxyURL, trusting
// proxyCA (cloud.ca_file) and not the cloud's own CA, so that every
// connection that works was inspected by the proxy; nil trusts the cloud's
// CA only. The identity lives in an identity file, as in a deployment:
// enrollment writes it (the connector ID, the cloud key it pinned and the
// scheduler key the cloud signed with it, all fetched through the proxy)
// and the connector reads it. Only the identity key is given in memory, so
// that the tests know the private key to search for.
func (ps *proxiedStack) cloudConfig(proxyURL string, proxyCA []byte) connector.Cloud {
	ca := proxyCA
	if ca == nil {
		ca = ps.cloud.CAPEM()
	}
	return connector.Cloud{
		URL: ps.cloud.URL(), ProxyURL: proxyURL, CAPEM: ca, Key: ps.key,
		IdentityFile: filepath.Join(ps.dir, "identity.json"),
		BackoffBase:  20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
	}
}

// enroll issues a lenr2_ enrollment token as the cloud's admin API does and
// enrolls the connector with it through the proxy.
func (ps *proxiedStack) enroll(ctx context.Context, proxyURL string, proxyCA []byte) error {
	var err error
	ps.token, err = ps.cloud.IssueEnrollmentToken(ctx, ps.tenant, 10*time.Minute)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(ps.token, "lenr2_") {
		return fmt.Errorf("enrollment token %.6s…: want a lenr2_ token", ps.token)
	}
	id, err := connector.Enroll(ctx, ps.cloudConfig(proxyURL, proxyCA), ps.token)
	if err != nil {
		return err
	}
	if !bytes.Equal(id.CloudKey, ps.cloud.Gateway().CloudKey()) {
		return fmt.Errorf("the connector pinned cloud key %x, the cloud's is %x", id.CloudKey, ps.cloud.Gateway().CloudKey())
	}
	ps.id = id.ConnectorID
	return nil
}

// startConnector starts the enrolled connector through the proxy and
// returns a channel closed when it reports itself connected.
func (ps *proxiedStack) startConnector(proxyURL string, proxyCA []byte) <-chan struct{} {
	ps.t.Helper()
	connected := make(chan struct{})
	var once sync.Once
	agent, err := connector.New(connector.Config{
		Cloud: ps.cloudConfig(proxyURL, proxyCA),
		Directory: &connector.Directory{
			URLs: []string{ps.ldap.URL()}, BindDN: demoldap.ServiceDN,
			BindPassword: demoldap.ServicePassword, CAPEM: ps.ldap.CAPEM(),
			CredentialsKey: ps.credKey,
		},
		// No scheduler key in code: the connector trusts the one enrollment
		// fetched, signed by the pinned cloud key.
		Keys: &connector.Keys{Keyring: ps.keyring},
		Policy: connector.Policy{Allow: []connector.Operation{
			connector.OpBrowse, connector.OpImport, connector.OpLookup,
			connector.OpCredentials, connector.OpKeys,
		}},
		OnStatus: func(s tunnel.Status) {
			if s.State == tunnel.StateConnected {
				once.Do(func() { close(connected) })
			}
			if s.Err != nil {
				select {
				case ps.failures <- s.Err:
				default:
				}
			}
		},
	})
	require.NoError(ps.t, err)
	done := make(chan error, 1)
	ps.mu.Lock()
	ps.agent, ps.done = agent, done
	ps.mu.Unlock()
	go func() { done <- agent.Run(context.Background()) }()
	return connected
}

func (ps *proxiedStack) stopConnector() {
	ps.mu.Lock()
	agent, done := ps.agent, ps.done
	ps.agent = nil
	ps.mu.Unlock()
	if agent != nil {
		agent.Close()
		<-done
	}
}

// status asks a live connector of the tenant for its status through the
// tunnel, as the cloud would.
func (ps *proxiedStack) status(ctx context.Context) (connector.StatusResponse, error) {
	return statusVia(ctx, ps.cloud.Gateway().RoundTripper(ps.tenant))
}

// waitRoutable waits until the cloud routes requests to the enrolled
// connector.
func (ps *proxiedStack) waitRoutable(ctx context.Context) error {
	for {
		st, err := ps.status(ctx)
		if err == nil {
			if st.ConnectorID != ps.id {
				return fmt.Errorf("the tunnel reached connector %q, want %q", st.ConnectorID, ps.id)
			}
			return nil
		}
		if !errors.Is(err, tunnel.ErrNotConnected) {
			return err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("the connector never became routable: %w", err)
		}
	}
}

func statusVia(ctx context.Context, rt http.RoundTripper) (connector.StatusResponse, error) {
	var s connector.StatusResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cloudapp.ConnectorStatusURL, nil)
	if err != nil {
		return s, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("connector status: %s", resp.Status)
	}
	return s, decodeJSON(resp, &s)
}

// kekSecrets returns the keyring's secret material as an administrator's
// escrow export shows it, decrypted with Debian's age: the escrow line and
// every 32-byte window of its binary form (the KEK is somewhere in it).
func kekSecrets(t *testing.T, k *keyenvelope.Keyring) [][]byte {
	t.Helper()
	escrow := ageEscrow(t, k)
	out := [][]byte{escrow}
	bin, err := keyenvelope.DecodeText(string(escrow))
	require.NoError(t, err, "the escrow line decodes")
	for i := 0; i+32 <= len(bin); i++ {
		out = append(out, bin[i:i+32])
	}
	return out
}

// skipOrFail skips a test that needs something the machine lacks, and
// fails it under CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// ageEscrow exports k to a fresh age identity and decrypts it with the age
// command-line tool.
func ageEscrow(t *testing.T, k *keyenvelope.Keyring) []byte {
	t.Helper()
	for _, tool := range []string{"age", "age-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			skipOrFail(t, "%s not installed (scripts/install-deps installs Debian's age): the KEK cannot be read to search for it", tool)
		}
	}
	dir := t.TempDir()
	id := filepath.Join(dir, "id.txt")
	out, err := exec.Command("age-keygen", "-o", id).CombinedOutput()
	require.NoError(t, err, "age-keygen: %s", out)
	pub, err := exec.Command("age-keygen", "-y", id).Output()
	require.NoError(t, err)
	var enc bytes.Buffer
	require.NoError(t, k.ExportAge(&enc, strings.TrimSpace(string(pub))))
	cmd := exec.Command("age", "-d", "-i", id)
	cmd.Stdin = &enc
	plain, err := cmd.Output()
	require.NoError(t, err, "age -d")
	return bytes.TrimSpace(plain)
}

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

// tlsConfigFor trusts caPEM only.
func tlsConfigFor(t *testing.T, caPEM []byte) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
}
