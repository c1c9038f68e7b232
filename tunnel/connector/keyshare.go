package connector

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/liaisonhq/liaison/internal/atomicfile"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyshare"
)

// KeySharePath is the route the cloud's key-share relay posts a
// KeyShareSync to (policy operation "keys"). See "Sharing the keyring" in
// the package docs.
const KeySharePath = keyshare.Path

// Key-share errors the CLI reports (package keyshare's).
var (
	// ErrNoShareRequest: keys approve was given a fingerprint no pending
	// request has.
	ErrNoShareRequest = keyshare.ErrNoRequest
	// ErrVersionMissing: keys promote found live connectors without the
	// version (override with --force).
	ErrVersionMissing = keyshare.ErrVersionMissing
	// ErrNoMember: keys revoke was given a fingerprint no member has.
	ErrNoMember = keyshare.ErrNoMember
)

// The key-share wire types, package keyshare's under the names this
// package has always used.
type (
	ShareRequest  = keyshare.Request
	SharePeer     = keyshare.Peer
	KeyShareSync  = keyshare.Sync
	KeyShareReply = keyshare.Reply
)

func (k *Keys) shareFile() string {
	if k.ShareFile != "" {
		return k.ShareFile
	}
	if k.KEKFile != "" {
		return k.KEKFile + ".share.json"
	}
	return ""
}

// LockShareFile takes the lock the agent holds while a key-share round
// reads and writes the KEK file, so that a CLI change to the KEK file is
// not lost to a concurrent round. Call the returned function to release it.
func LockShareFile(shareFile string) (func(), error) { return keyshare.Lock(shareFile) }

// shareKey returns the X25519 key shares are sealed to: Keys.ShareKey,
// else the file identity_file + ".share.x25519" (created on first use).
func shareKey(k *Keys, identityFile string) (*ecdh.PrivateKey, error) {
	if k.ShareKey != nil {
		if k.ShareKey.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("%w: keys share key must be X25519", ErrConfig)
		}
		return k.ShareKey, nil
	}
	if identityFile == "" {
		return nil, fmt.Errorf("%w: sharing the keyring needs cloud.identity_file (its .share.x25519 key)", ErrConfig)
	}
	return loadOrCreateX25519(identityFile+".share.x25519", "keyring share key")
}

func loadOrCreateX25519(path, what string) (*ecdh.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		// Created only if absent: a concurrent first use (the agent's
		// round and "keys fingerprint") that lost the race reads the
		// winner's key instead of overwriting it.
		err = atomicfile.Create(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateX25519(path, what)
		}
		if err != nil {
			return nil, fmt.Errorf("connector: writing %s: %w", what, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, what, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%w: %s %s is not PEM", ErrConfig, what, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrConfig, what, path, err)
	}
	ek, ok := k.(*ecdh.PrivateKey)
	if !ok || ek.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("%w: %s %s is not X25519", ErrConfig, what, path)
	}
	return ek, nil
}

// shareIdentityOf builds the share identity from a config: tenant and ID
// from the identity file (or tenant, id when given), the tunnel's Ed25519
// key, the share X25519 key.
func shareIdentityOf(cfg Config, tenant, id string) (keyenvelope.ShareIdentity, error) {
	c := cfg.Cloud
	if cfg.Keys == nil {
		return keyenvelope.ShareIdentity{}, fmt.Errorf("%w: no keys section: a directory-only connector holds no keyring", ErrConfig)
	}
	if tenant == "" || id == "" {
		if c.IdentityFile == "" {
			return keyenvelope.ShareIdentity{}, fmt.Errorf("%w: sharing the keyring needs cloud.identity_file (the tenant)", ErrConfig)
		}
		f, err := readIdentity(c.IdentityFile)
		if err != nil {
			return keyenvelope.ShareIdentity{}, err
		}
		tenant, id = f.Tenant, f.ConnectorID
	}
	signer := c.Key
	if signer == nil {
		var err error
		if signer, err = loadKey(c.keyFile()); err != nil {
			return keyenvelope.ShareIdentity{}, err
		}
	}
	sk, ok := signer.(ed25519.PrivateKey)
	if !ok {
		return keyenvelope.ShareIdentity{}, fmt.Errorf("%w: the connector key is not an Ed25519 key held in memory", ErrConfig)
	}
	xk, err := shareKey(cfg.Keys, c.IdentityFile)
	if err != nil {
		return keyenvelope.ShareIdentity{}, err
	}
	return keyenvelope.ShareIdentity{Tenant: tenant, ConnectorID: id, SignKey: sk, SealKey: xk}, nil
}

// LoadShareIdentity returns this connector's key-share identity (tenant and
// ID from the identity file, its Ed25519 key, its share X25519 key).
func LoadShareIdentity(cfg Config) (keyenvelope.ShareIdentity, error) {
	return shareIdentityOf(cfg, "", "")
}

// ShareFingerprint returns this connector's fingerprint as a person
// compares it ("connector keys fingerprint").
func ShareFingerprint(cfg Config) (string, error) {
	id, err := shareIdentityOf(cfg, "", "")
	if err != nil {
		return "", err
	}
	return id.Member().Fingerprint(), nil
}

func sharePath(cfg Config) (string, error) {
	if cfg.Keys == nil || cfg.Keys.shareFile() == "" {
		return "", fmt.Errorf("%w: keys.kek_file or keys.share_file is required to share the keyring", ErrConfig)
	}
	return cfg.Keys.shareFile(), nil
}

// ShareRequests lists the pending keyring requests the last key-share
// round brought, each with its fingerprint ("connector keys requests").
func ShareRequests(cfg Config) ([]ShareRequest, error) {
	p, err := sharePath(cfg)
	if err != nil {
		return nil, err
	}
	rs, err := keyshare.Requests(p)
	return rs, shareFileErr(err)
}

// ShareMembers lists the connectors approved here or learnt from a trusted
// share ("connector keys members").
func ShareMembers(cfg Config) ([]ShareRequest, error) {
	p, err := sharePath(cfg)
	if err != nil {
		return nil, err
	}
	ms, err := keyshare.Members(p)
	return ms, shareFileErr(err)
}

// ApproveShare approves the pending request whose fingerprint a person
// compared with the one the new connector shows ("connector keys approve
// FINGERPRINT"): it becomes a member, and the running agent seals the
// keyring to it in the next key-share round. It returns the member.
func ApproveShare(cfg Config, fingerprint string) (ShareRequest, error) {
	p, err := sharePath(cfg)
	if err != nil {
		return ShareRequest{}, err
	}
	m, err := keyshare.Approve(p, fingerprint)
	return m, shareFileErr(err)
}

// RevokeShare marks an approved connector revoked here: no later version
// is sealed to it or accepted from it, and the revocation travels with this
// connector's next shares ("connector keys revoke FINGERPRINT"). Revoke it
// in the cloud too.
func RevokeShare(cfg Config, fingerprint string) (ShareRequest, error) {
	p, err := sharePath(cfg)
	if err != nil {
		return ShareRequest{}, err
	}
	m, err := keyshare.Revoke(p, fingerprint)
	return m, shareFileErr(err)
}

// JoinShare prepares a new connector to receive the keyring ("connector
// keys join APPROVER_FINGERPRINT"): it will accept the first keyring only
// from the connector with that fingerprint (read it on the approving
// connector with "connector keys fingerprint"). The KEK file must not exist
// yet; the agent writes it, under the configured passphrase, when the
// keyring arrives.
func JoinShare(cfg Config, approverFingerprint string) error {
	p, err := sharePath(cfg)
	if err != nil {
		return err
	}
	if cfg.Keys.KEKFile != "" {
		if _, err := os.Stat(cfg.Keys.KEKFile); err == nil {
			return fmt.Errorf("connector: keys.kek_file %s exists: a joining connector receives the tenant's keyring instead of having its own (move the file away first)", cfg.Keys.KEKFile)
		}
	}
	if _, err := shareIdentityOf(cfg, "", ""); err != nil {
		return err
	}
	return shareFileErr(keyshare.Join(p, approverFingerprint))
}

// CheckPromote reports whether every live connector of the tenant (as the
// last key-share round listed them) holds version: nil, or an error wrapping
// ErrVersionMissing that names the connectors without it.
func CheckPromote(cfg Config, version uint32) error {
	p, err := sharePath(cfg)
	if err != nil {
		return err
	}
	self := ""
	if cfg.Cloud.IdentityFile != "" {
		if f, err := readIdentity(cfg.Cloud.IdentityFile); err == nil {
			self = f.ConnectorID
		}
	}
	return shareFileErr(keyshare.CheckPromote(p, self, version))
}

// shareFileErr names keys.share_file, the setting, in an error about the
// key-share state file.
func shareFileErr(err error) error {
	var se *keyshare.StateFileError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Op {
	case "read":
		return fmt.Errorf("%w: keys.share_file: %w", ErrConfig, se.Err)
	case "parse":
		return fmt.Errorf("%w: keys.share_file %s is corrupt: %w", ErrConfig, se.Path, se.Err)
	}
	return fmt.Errorf("connector: writing keys.share_file: %w", se.Err)
}

// keyShareHandler is the agent's side of the key-share rounds: package
// keyshare over the KEK file, installing a keyring a joining connector
// receives.
func (a *Agent) keyShareHandler() (*keyshare.Handler, error) {
	k := a.cfg.Keys
	var store keyshare.Store
	if k.KEKFile != "" {
		f := &keyshare.KEKFile{Path: k.KEKFile, Argon2: k.Argon2, Passphrase: func() ([]byte, error) {
			return secret(k.PassphraseFile, k.PassphraseEnv, "kek passphrase")
		}}
		if a.kekRead {
			f.Seen() // openKeys just read it
		}
		store = f
	}
	return keyshare.New(keyshare.Config{
		StateFile: k.shareFile(),
		Identity: func() (keyenvelope.ShareIdentity, error) {
			return shareIdentityOf(a.cfg, a.identity.Tenant, a.identity.ConnectorID)
		},
		Keyring: a.Keyring,
		Install: a.installKeyring,
		Store:   store,
		Logger:  a.log,
	})
}
