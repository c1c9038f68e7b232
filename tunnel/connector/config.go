package connector

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/tunnel"
)

// ErrConfig is wrapped by every configuration error returned by LoadConfig,
// ParseConfig, Config.Validate and New.
var ErrConfig = errors.New("connector: invalid config")

// Config is a connector's configuration: the JSON config file, or a value
// built in code. Fields tagged json:"-" exist so a program can configure a
// connector without any file (secrets, CA bundles, keys in memory); when both
// a file field and its in-memory twin are set, the in-memory value wins.
type Config struct {
	Cloud Cloud `json:"cloud"`
	// Directory is optional: without it the connector serves keys only.
	Directory *Directory `json:"directory,omitempty"`
	// Keys is optional: without it the connector serves the directory only.
	Keys *Keys `json:"keys,omitempty"`
	// Policy lists what the cloud may ask this connector for. The connector
	// enforces it itself; the cloud cannot widen it.
	Policy Policy `json:"policy"`
	// Audit configures the local audit log of the cloud's requests (on by
	// default, beside the identity file).
	Audit Audit `json:"audit,omitzero"`

	// OnStatus, if set, receives the tunnel's status changes in order on
	// one goroutine (connected, disconnected with the reason and the retry
	// delay).
	OnStatus func(tunnel.Status) `json:"-"`
	// Logger receives the agent's logs, scoped with the connector ID (nil:
	// discard). Secrets are never logged.
	Logger *slog.Logger `json:"-"`
}

// Cloud says where the connector dials and who it is.
type Cloud struct {
	// URL is the cloud endpoint's base URL, https://host[:port]. The
	// tunnel is at wss://host[:port]/v1/tunnel and enrollment at
	// https://host[:port]/v1/enroll unless TunnelURL or EnrollURL say
	// otherwise. Required.
	URL       string `json:"url"`
	TunnelURL string `json:"tunnel_url,omitempty"`
	EnrollURL string `json:"enroll_url,omitempty"`
	// ProxyURL is an explicit proxy: HTTP (http://user:pass@proxy:3128, or
	// https:// to reach the proxy over TLS) or SOCKS5
	// (socks5://user:pass@proxy:1080; socks5h:// lets the proxy resolve the
	// cloud's name). Empty means HTTPS_PROXY / NO_PROXY from the
	// environment. Enrollment and the tunnel both use it.
	ProxyURL string `json:"proxy_url,omitempty"`
	// CAFile is a PEM bundle trusted in addition to the system roots: the
	// CA of a TLS-inspecting proxy, or a private cloud CA. CAPEM is its
	// in-memory twin.
	CAFile string `json:"ca_file,omitempty"`
	CAPEM  []byte `json:"-"`
	// IdentityFile is where enroll writes the connector's identity (a small
	// JSON file) and run reads it. The private key sits beside it in
	// IdentityFile + ".key" (PKCS #8 PEM, mode 0600). Required unless
	// ConnectorID and Key are set in code.
	IdentityFile string `json:"identity_file,omitempty"`
	// ConnectorID, Key and CloudKey are the identity in memory (CloudKey
	// is the cloud key pinned at enrollment, tunnel.Identity.CloudKey);
	// when ConnectorID is set, no identity file is read.
	ConnectorID string          `json:"-"`
	Key         crypto.Signer   `json:"-"`
	CloudKey    tunnel.CloudKey `json:"-"`
	// BackoffBase and BackoffMax shape reconnects (zero: the tunnel's
	// defaults, 1s and 30s; tunnel.ConnectorConfig).
	BackoffBase time.Duration `json:"-"`
	BackoffMax  time.Duration `json:"-"`
}

// Directory configures the directory service. Passwords come from a file or
// an environment variable, never from the config file itself.
type Directory struct {
	// URLs are the LDAP servers in failover order: ldaps://host or
	// ldap://host (upgraded with StartTLS). Required.
	URLs []string `json:"urls"`
	// BindDN is the service account. Required.
	BindDN string `json:"bind_dn"`
	// BindPasswordFile or BindPasswordEnv (the name of an environment
	// variable) holds the service account's password; exactly one, unless
	// BindPassword is set in code.
	BindPasswordFile string `json:"bind_password_file,omitempty"`
	BindPasswordEnv  string `json:"bind_password_env,omitempty"`
	BindPassword     string `json:"-"`
	// CAFile is the PEM bundle of the CAs that signed the servers'
	// certificates (default: system roots). CAPEM is its in-memory twin.
	CAFile string `json:"ca_file,omitempty"`
	CAPEM  []byte `json:"-"`
	// Profile is "auto" (default), "ad" or "openldap".
	Profile string `json:"profile,omitempty"`
	// InsecurePlaintext turns StartTLS off on ldap:// URLs: passwords
	// cross the network in clear. Only for in-process test servers.
	InsecurePlaintext bool `json:"insecure_plaintext,omitempty"`

	// Credential checks require the password sealed with HPKE to the
	// connector's X25519 key (package directoryhttp), a second layer inside
	// the tunnel's own encryption; plain passwords are always refused. The
	// public key is published in StatusResponse. (The former
	// insecure_plain_passwords option is gone: a config that sets it is
	// refused.)
	// CredentialsKey is the X25519 key passwords are sealed to. Nil: the
	// file Cloud.IdentityFile + ".x25519" (created on first use, mode
	// 0600), or a key made at start-up when there is no identity file.
	CredentialsKey *ecdh.PrivateKey `json:"-"`
}

// Keys configures the key service: the KEK file and how to unlock it, and the
// cloud scheduler's public key that signs release tickets.
type Keys struct {
	// KEKFile is the passphrase-protected keyring file. Required unless
	// Keyring is set in code.
	KEKFile string `json:"kek_file,omitempty"`
	// PassphraseFile or PassphraseEnv holds the KEK file's passphrase;
	// exactly one.
	PassphraseFile string `json:"passphrase_file,omitempty"`
	PassphraseEnv  string `json:"passphrase_env,omitempty"`
	// SchedulerPublicKey is the cloud scheduler's Ed25519 public key in
	// standard base64 (32 bytes): only tickets it signed release ekeys.
	// Default: the key fetched from the cloud at enrollment and kept in the
	// identity file. SchedulerKey is its in-memory twin.
	SchedulerPublicKey string `json:"scheduler_public_key,omitempty"`
	// ExtraSchedulerPublicKeys are further scheduler keys (standard
	// base64) whose tickets are accepted: during a rotation of the cloud's
	// ticket-signing key, its next key before the cloud switches, or its
	// previous key until every connector pins the new one. See the cloud's
	// rotation procedure (examples/internal/cloudapp, "Rotating the ticket
	// signing key"). Empty outside rotations.
	ExtraSchedulerPublicKeys []string `json:"extra_scheduler_public_keys,omitempty"`

	// ShareFile holds what sharing the keyring among the tenant's
	// connectors needs: approved connectors, pending requests, the last
	// round's view of the live connectors (0600). Default: KEKFile +
	// ".share.json". See "Sharing the keyring" in the package docs.
	ShareFile string `json:"share_file,omitempty"`

	Keyring      *keyenvelope.Keyring `json:"-"`
	SchedulerKey ed25519.PublicKey    `json:"-"`
	// ShareKey is the X25519 key keyring shares are sealed to. Nil: the
	// file Cloud.IdentityFile + ".share.x25519" (created on first use).
	ShareKey *ecdh.PrivateKey `json:"-"`
	// Argon2 is the cost of the KEK file the connector writes when it
	// receives the keyring or new versions; zero means keyenvelope's
	// defaults.
	Argon2 keyenvelope.Argon2Params `json:"-"`
}

// LoadConfig reads and validates a JSON config file. Unknown fields are
// errors, so a typo never silently disables a setting.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("%w (%s)", err, path)
	}
	return cfg, nil
}

// ParseConfig parses and validates the JSON form of a Config.
func ParseConfig(b []byte) (Config, error) {
	var removed struct {
		Directory *struct {
			PlainPasswords json.RawMessage `json:"insecure_plain_passwords"`
		} `json:"directory"`
	}
	if json.Unmarshal(b, &removed) == nil && removed.Directory != nil && removed.Directory.PlainPasswords != nil {
		return Config{}, fmt.Errorf("%w: directory.insecure_plain_passwords was removed: passwords are always sealed to the connector's key; delete the option", ErrConfig)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate checks the configuration without touching files or the network.
// Every error wraps ErrConfig and names the offending field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...))
	}
	// Cloud.
	if c.Cloud.URL == "" && (c.Cloud.TunnelURL == "" || c.Cloud.EnrollURL == "") {
		bad("cloud.url is required")
	}
	for _, f := range []struct{ name, url string }{{"cloud.url", c.Cloud.URL}, {"cloud.enroll_url", c.Cloud.EnrollURL}} {
		if f.url != "" {
			if err := checkURL(f.url, "https"); err != nil {
				bad("%s: %v", f.name, err)
			}
		}
	}
	if c.Cloud.TunnelURL != "" {
		if err := checkURL(c.Cloud.TunnelURL, "wss"); err != nil {
			bad("cloud.tunnel_url: %v", err)
		}
	}
	if c.Cloud.ProxyURL != "" {
		if _, err := parseProxyURL(c.Cloud.ProxyURL); err != nil {
			bad("%v", err)
		}
	}
	if c.Cloud.IdentityFile == "" && (c.Cloud.ConnectorID == "" || c.Cloud.Key == nil) {
		bad("cloud.identity_file is required")
	}

	// Directory.
	if d := c.Directory; d != nil {
		if len(d.URLs) == 0 {
			bad("directory.urls is required (ldaps://host or ldap://host)")
		}
		for _, u := range d.URLs {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "ldap" && pu.Scheme != "ldaps") || pu.Host == "" {
				bad("directory.urls: %q is not an ldap:// or ldaps:// URL", u)
			}
		}
		if d.BindDN == "" {
			bad("directory.bind_dn is required")
		}
		if d.BindPassword == "" {
			switch {
			case d.BindPasswordFile == "" && d.BindPasswordEnv == "":
				bad("directory: one of bind_password_file or bind_password_env is required")
			case d.BindPasswordFile != "" && d.BindPasswordEnv != "":
				bad("directory: bind_password_file and bind_password_env are exclusive")
			}
		}
		if _, err := directory.ParseProfile(d.Profile); err != nil {
			bad("directory.profile %q: want auto, ad or openldap", d.Profile)
		}
	}

	// Keys.
	if k := c.Keys; k != nil {
		if k.Keyring == nil {
			if k.KEKFile == "" {
				bad("keys.kek_file is required")
			}
			switch {
			case k.PassphraseFile == "" && k.PassphraseEnv == "":
				bad("keys: one of passphrase_file or passphrase_env is required")
			case k.PassphraseFile != "" && k.PassphraseEnv != "":
				bad("keys: passphrase_file and passphrase_env are exclusive")
			}
		}
		if k.SchedulerKey == nil {
			if k.SchedulerPublicKey == "" {
				if c.Cloud.IdentityFile == "" {
					bad("keys.scheduler_public_key is required (base64 Ed25519 public key)")
				}
			} else if _, err := parseEd25519(k.SchedulerPublicKey); err != nil {
				bad("keys.scheduler_public_key: %v", err)
			}
		} else if len(k.SchedulerKey) != ed25519.PublicKeySize {
			bad("keys: scheduler key is %d bytes, want %d", len(k.SchedulerKey), ed25519.PublicKeySize)
		}
		for i, e := range k.ExtraSchedulerPublicKeys {
			if _, err := parseEd25519(e); err != nil {
				bad("keys.extra_scheduler_public_keys[%d]: %v", i, err)
			}
		}
	}
	if c.Directory == nil && c.Keys == nil {
		bad("neither a directory nor a keys section: the connector would serve nothing")
	}

	c.Audit.validate(bad)

	// Policy.
	if len(c.Policy.Allow) == 0 {
		bad("policy.allow is empty: list the operations the cloud may ask for (%s)", strings.Join(opNames(), ", "))
	}
	for _, op := range c.Policy.Allow {
		switch {
		case !slices.Contains(operations(), op):
			bad("policy.allow: unknown operation %q (want %s)", op, strings.Join(opNames(), ", "))
		case op.needsDirectory() && c.Directory == nil:
			bad("policy.allow: %q needs a directory section", op)
		case op == OpKeys && c.Keys == nil:
			bad("policy.allow: %q needs a keys section", op)
		}
	}
	return errors.Join(errs...)
}

func checkURL(s, scheme string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.Scheme != scheme {
		return fmt.Errorf("%q: want a %s:// URL (TLS is required)", s, scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials do not belong in this URL", redactURL(s))
	}
	return nil
}

// redactURL hides a password in a URL, for error messages.
// parseProxyURL checks cloud.proxy_url: an HTTP proxy (http:// or https://)
// or a SOCKS5 proxy (socks5://, or socks5h:// to let the proxy resolve the
// cloud's name), each with optional user:pass@ credentials (Basic for HTTP,
// RFC 1929 for SOCKS5). Errors print the URL without its password.
func parseProxyURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err == nil && u.Host != "" && u.Hostname() != "" {
		switch u.Scheme { // url.Parse lowercases it
		case "http", "https", "socks5", "socks5h":
			return u, nil
		}
	}
	return nil, fmt.Errorf("cloud.proxy_url %q: want http://, https://, socks5:// or socks5h://[user:pass@]host:port", redactURL(s))
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func parseEd25519(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// tunnelURL and enrollURL derive the endpoints from Cloud.URL.
func (c *Cloud) tunnelURL() string {
	if c.TunnelURL != "" {
		return c.TunnelURL
	}
	u, _ := url.Parse(c.URL)
	u.Scheme = "wss"
	u.Path = strings.TrimSuffix(u.Path, "/") + TunnelPath
	return u.String()
}

func (c *Cloud) enrollURL() string {
	if c.EnrollURL != "" {
		return c.EnrollURL
	}
	return strings.TrimSuffix(c.URL, "/") + EnrollPath
}

// keyFile is where the connector's private key lives.
func (c *Cloud) keyFile() string { return c.IdentityFile + ".key" }

// Paths of the cloud endpoint, relative to Cloud.URL.
const (
	TunnelPath       = "/v1/tunnel"
	EnrollPath       = "/v1/enroll"
	SchedulerKeyPath = "/v1/scheduler-key" // {"ed25519": base64, "signature": base64 (tunnel.CloudKey.VerifyStatement)}
)

// secret reads a secret from a file (one trailing newline dropped) or an
// environment variable.
func secret(file, env, what string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrConfig, what, err)
		}
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: %s: file %s is empty", ErrConfig, what, file)
		}
		return b, nil
	}
	v, ok := os.LookupEnv(env)
	if !ok || v == "" {
		return nil, fmt.Errorf("%w: %s: environment variable %s is not set", ErrConfig, what, env)
	}
	return []byte(v), nil
}
