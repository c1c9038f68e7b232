package connectorapp

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/tunnel"
)

// ErrNotEnrolled is returned by New when the identity file does not exist:
// run "connector enroll" first.
var ErrNotEnrolled = errors.New("connectorapp: not enrolled")

// ErrAlreadyEnrolled is returned by Enroll when the identity file exists.
var ErrAlreadyEnrolled = errors.New("connectorapp: already enrolled")

// identityFile is the content of Cloud.IdentityFile.
type identityFile struct {
	ConnectorID string    `json:"connector_id"`
	Tenant      string    `json:"tenant"`
	CloudURL    string    `json:"cloud_url,omitempty"`
	Enrolled    time.Time `json:"enrolled"`
	// SchedulerPublicKey is the cloud scheduler's key as fetched at
	// enrollment (base64), used when the config pins none.
	SchedulerPublicKey string `json:"scheduler_public_key,omitempty"`
	// CloudKey is the cloud's tunnel key pinned at enrollment: every
	// tunnel session must be signed by it.
	CloudKey tunnel.CloudKey `json:"cloud_key,omitempty"`
}

func readIdentity(path string) (identityFile, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return identityFile{}, fmt.Errorf("%w: no identity file %s (run: connector enroll --cloud URL --token T)", ErrNotEnrolled, path)
	}
	if err != nil {
		return identityFile{}, fmt.Errorf("%w: identity file: %w", ErrConfig, err)
	}
	var id identityFile
	if err := json.Unmarshal(b, &id); err != nil || id.ConnectorID == "" {
		return identityFile{}, fmt.Errorf("%w: identity file %s is corrupt", ErrConfig, path)
	}
	if len(id.CloudKey) == 0 {
		return identityFile{}, fmt.Errorf("%w: identity file %s pins no cloud key (enrolled before tunnel protocol v2): delete it and enroll again with a new enrollment token: %w", ErrConfig, path, tunnel.ErrCloudKeyMissing)
	}
	return id, nil
}

// loadKey reads an existing key file; it never creates one (only Enroll does).
func loadKey(path string) (crypto.Signer, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: key file %s is missing (enroll again)", ErrNotEnrolled, path)
		}
		return nil, fmt.Errorf("%w: key file: %w", ErrConfig, err)
	}
	key, err := (&tunnel.FileKeyStore{Path: path}).LoadOrCreate()
	if err != nil {
		return nil, fmt.Errorf("%w: key file %s: %w", ErrConfig, path, err)
	}
	return key, nil
}

// writeFileAtomic writes b to path with mode 0600 through a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// createFileAtomic is writeFileAtomic that never replaces: it fails with
// an error matching fs.ErrExist when path exists, and readers never see a
// partly written file.
func createFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".identity-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

func readFile(path, what string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, what, err)
	}
	return b, nil
}

// HTTPClient returns an HTTP client that reaches the cloud the way the
// tunnel does: TLS 1.3, the system roots plus Cloud.CAPEM (or CAFile),
// and Cloud.ProxyURL or the environment's proxy.
func (c Cloud) HTTPClient() (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	pem := c.CAPEM
	if pem == nil && c.CAFile != "" {
		if pem, err = readFile(c.CAFile, "cloud.ca_file"); err != nil {
			return nil, err
		}
	}
	if pem != nil && !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: cloud CA bundle holds no PEM certificate", ErrConfig)
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13},
		TLSHandshakeTimeout: 15 * time.Second,
	}
	if c.ProxyURL != "" {
		pu, err := parseProxyURL(c.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// SchedulerKeyStatement is the purpose under which the cloud signs its
// scheduler key with its tunnel identity (tunnel.CloudKey.VerifyStatement).
const SchedulerKeyStatement = "scheduler-key"

// fetchSchedulerKey reads the cloud scheduler's public key from
// SchedulerKeyPath and keeps it only if it is signed by the cloud key just
// pinned: a TLS-inspecting relay cannot substitute its own ticket-signing
// key. It is best effort: the token is already spent, so a failure leaves
// the key to the config (keys.scheduler_public_key) instead of failing
// enrollment.
func fetchSchedulerKey(ctx context.Context, client *http.Client, c Cloud, cloud tunnel.CloudKey) string {
	if c.URL == "" {
		return ""
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+SchedulerKeyPath, nil)
	if err != nil {
		return ""
	}
	resp, err := client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var body struct {
		Ed25519   string `json:"ed25519"`
		Signature []byte `json:"signature"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body) != nil {
		return ""
	}
	pub, err := parseEd25519(body.Ed25519)
	if err != nil || !cloud.VerifyStatement(SchedulerKeyStatement, pub, body.Signature) {
		return ""
	}
	return body.Ed25519
}

// Enroll registers this connector with the cloud using a one-time enrollment
// token and returns its identity. The key is c.Key, or the key file beside
// c.IdentityFile, created on first use (mode 0600). When c.IdentityFile is
// set the identity is written there (mode 0600) with the cloud scheduler's
// public key, fetched from SchedulerKeyPath, for a key service whose config
// pins none; Enroll refuses to overwrite
// an existing one (ErrAlreadyEnrolled: delete it to enroll again). A refused
// token is tunnel.ErrUnauthorized.
//
// Only c.URL (or c.EnrollURL), c.CAPEM/c.CAFile, c.ProxyURL, c.Key and
// c.IdentityFile are used.
func Enroll(ctx context.Context, c Cloud, token string) (tunnel.Identity, error) {
	if c.URL == "" && c.EnrollURL == "" {
		return tunnel.Identity{}, fmt.Errorf("%w: cloud url is required", ErrConfig)
	}
	if err := checkURL(c.enrollURL(), "https"); err != nil {
		return tunnel.Identity{}, fmt.Errorf("%w: enroll url: %v", ErrConfig, err)
	}
	if token == "" {
		return tunnel.Identity{}, fmt.Errorf("%w: enrollment token is required", ErrConfig)
	}
	if c.IdentityFile == "" && c.Key == nil {
		return tunnel.Identity{}, fmt.Errorf("%w: an identity file or a key is required", ErrConfig)
	}
	if c.IdentityFile != "" {
		if _, err := os.Stat(c.IdentityFile); err == nil {
			id, _ := readIdentity(c.IdentityFile)
			return tunnel.Identity{}, fmt.Errorf("%w as %s (tenant %s); delete %s to enroll again",
				ErrAlreadyEnrolled, id.ConnectorID, id.Tenant, c.IdentityFile)
		}
	}
	key := c.Key
	if key == nil {
		var err error
		key, err = (&tunnel.FileKeyStore{Path: c.keyFile()}).LoadOrCreate()
		if err != nil {
			return tunnel.Identity{}, fmt.Errorf("connectorapp: key file: %w", err)
		}
	}
	client, err := c.HTTPClient()
	if err != nil {
		return tunnel.Identity{}, err
	}
	id, err := tunnel.Enroll(ctx, client, c.enrollURL(), token, key)
	if err != nil {
		return tunnel.Identity{}, fmt.Errorf("connectorapp: enroll: %w", socksRefusal(err))
	}
	if c.IdentityFile != "" {
		b, _ := json.MarshalIndent(identityFile{
			ConnectorID: id.ConnectorID, Tenant: id.Tenant,
			CloudURL: c.URL, Enrolled: time.Now().UTC().Truncate(time.Second),
			SchedulerPublicKey: fetchSchedulerKey(ctx, client, c, id.CloudKey),
			CloudKey:           id.CloudKey,
		}, "", "  ")
		if err := writeFileAtomic(c.IdentityFile, append(b, '\n')); err != nil {
			return tunnel.Identity{}, fmt.Errorf("connectorapp: writing identity file: %w", err)
		}
	}
	return id, nil
}

// credentialsKey returns the X25519 key sealed passwords are opened with:
// d.CredentialsKey, else the file beside the identity file (created on first
// use), else a key made now.
func credentialsKey(d Directory, identityFile string) (*ecdh.PrivateKey, error) {
	if d.CredentialsKey != nil {
		if d.CredentialsKey.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("%w: directory credentials key must be X25519", ErrConfig)
		}
		return d.CredentialsKey, nil
	}
	if identityFile == "" {
		return ecdh.X25519().GenerateKey(rand.Reader)
	}
	return loadOrCreateX25519(identityFile+".x25519", "credentials key")
}

// socksRefusal names cloud.proxy_url when a SOCKS5 proxy failed the
// enrollment: net/http's SOCKS client reports its refusals (bad
// credentials, a rule) as a *net.OpError whose Op starts with "socks". A
// proxy that cannot be reached at all is a plain dial error, left as is.
func socksRefusal(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && strings.HasPrefix(op.Op, "socks") {
		return fmt.Errorf("the SOCKS5 proxy of cloud.proxy_url refused the connection (check the user name and password in it, and that the proxy may reach the cloud): %w", err)
	}
	return err
}
