package connectorapp

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// KeySharePath is the route the cloud's key-share relay posts a
// KeyShareSync to (policy operation "keys"). See "Sharing the keyring" in
// the package docs.
const KeySharePath = "/keyshare/sync"

// Key-share errors the CLI reports.
var (
	// ErrNoShareRequest: keys approve was given a fingerprint no pending
	// request has.
	ErrNoShareRequest = errors.New("connectorapp: no pending keyring request with that fingerprint (run: connector keys requests; requests appear after the cloud's next key-share round)")
	// ErrVersionMissing: keys promote found live connectors without the
	// version (override with --force).
	ErrVersionMissing = errors.New("connectorapp: kek version not yet on every live connector")
	// ErrNoMember: keys revoke was given a fingerprint no member has.
	ErrNoMember = errors.New("connectorapp: no approved connector with that fingerprint (run: connector keys members)")
)

// ShareRequest is a connector's request for the keyring: its ID and the
// public keys the keyring is sealed to and its shares are signed with.
type ShareRequest struct {
	ConnectorID string `json:"connector_id"`
	SignKey     []byte `json:"sign_key"` // Ed25519 public key
	SealKey     []byte `json:"seal_key"` // X25519 public key
	Revoked     bool   `json:"revoked,omitempty"`
	// Fingerprint is informational (recomputed from the keys, never trusted).
	Fingerprint string `json:"fingerprint,omitempty"`
}

func (r ShareRequest) member() keyenvelope.Member {
	return keyenvelope.Member{ConnectorID: r.ConnectorID, SignKey: ed25519.PublicKey(r.SignKey), SealKey: r.SealKey, Revoked: r.Revoked}
}

func requestOf(m keyenvelope.Member) ShareRequest {
	return ShareRequest{ConnectorID: m.ConnectorID, SignKey: m.SignKey, SealKey: m.SealKey, Revoked: m.Revoked, Fingerprint: m.Fingerprint()}
}

// SharePeer is a live connector of the tenant as the cloud reports it: the
// keyring ID (hex) and KEK version numbers it last published, never key
// material.
type SharePeer struct {
	ConnectorID string   `json:"connector_id"`
	KeyringID   string   `json:"keyring_id,omitempty"`
	Versions    []uint32 `json:"versions,omitempty"`
	Primary     uint32   `json:"primary,omitempty"`
}

// KeyShareSync is the cloud's POST to KeySharePath: the tenant's pending
// requests, the shares addressed to this connector, and the live
// (not revoked) connectors of the tenant.
type KeyShareSync struct {
	Requests []ShareRequest `json:"requests,omitempty"`
	Shares   [][]byte       `json:"shares,omitempty"`
	Peers    []SharePeer    `json:"peers,omitempty"`
}

// KeyShareReply is the connector's answer: its request while it waits for
// the keyring, else the keyring ID and versions it holds, and the shares it
// sealed for other connectors.
type KeyShareReply struct {
	Request   *ShareRequest `json:"request,omitempty"`
	KeyringID string        `json:"keyring_id,omitempty"`
	Versions  []uint32      `json:"versions,omitempty"`
	Primary   uint32        `json:"primary,omitempty"`
	Shares    [][]byte      `json:"shares,omitempty"`
}

// shareState is the key-share file (0600): what a person approved or typed
// and what the last round reported.
type shareState struct {
	// JoinApprover is the approver's fingerprint typed at "keys join";
	// cleared once the keyring arrived.
	JoinApprover string         `json:"join_approver,omitempty"`
	Members      []ShareRequest `json:"members,omitempty"`
	Requests     []ShareRequest `json:"requests,omitempty"`
	Peers        []SharePeer    `json:"peers,omitempty"`
	Synced       time.Time      `json:"synced,omitzero"`
}

func (s *shareState) members() []keyenvelope.Member {
	out := make([]keyenvelope.Member, len(s.Members))
	for i, m := range s.Members {
		out[i] = m.member()
	}
	return out
}

func (s *shareState) setMembers(ms []keyenvelope.Member) {
	s.Members = s.Members[:0]
	for _, m := range ms {
		s.Members = append(s.Members, requestOf(m))
	}
}

// trusts: a non-revoked member with the same ID and keys.
func (s *shareState) trusts(m keyenvelope.Member) bool {
	fp := m.Fingerprint()
	for _, x := range s.members() {
		if !x.Revoked && x.ConnectorID == m.ConnectorID && x.MatchFingerprint(fp) {
			return true
		}
	}
	return false
}

func (k *Keys) shareFile() string {
	if k.ShareFile != "" {
		return k.ShareFile
	}
	if k.KEKFile != "" {
		return k.KEKFile + ".share.json"
	}
	return ""
}

func readShareState(path string) (*shareState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &shareState{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: keys.share_file: %w", ErrConfig, err)
	}
	var s shareState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%w: keys.share_file %s is corrupt: %w", ErrConfig, path, err)
	}
	return &s, nil
}

func writeShareState(path string, s *shareState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("connectorapp: writing keys.share_file: %w", err)
	}
	return nil
}

// lockShare serialises the agent and the CLI on the share file (and the KEK
// file writes the share round makes) with an exclusive lock file. A lock
// older than a minute is taken to be left by a crash.
func lockShare(path string) (func(), error) {
	lock := path + ".lock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("connectorapp: lock %s: %w", lock, err)
		}
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > time.Minute {
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connectorapp: %s is held by another process (delete it if none runs)", lock)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LockShareFile takes the lock the agent holds while a key-share round
// reads and writes the KEK file, so that a CLI change to the KEK file is
// not lost to a concurrent round. Call the returned function to release it.
func LockShareFile(shareFile string) (func(), error) { return lockShare(shareFile) }

// updateShareState runs fn on the locked share state and writes it back.
func updateShareState(path string, fn func(*shareState) error) error {
	unlock, err := lockShare(path)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := readShareState(path)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	return writeShareState(path, s)
}

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
		err = createFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		if errors.Is(err, fs.ErrExist) {
			return loadOrCreateX25519(path, what)
		}
		if err != nil {
			return nil, fmt.Errorf("connectorapp: writing %s: %w", what, err)
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
	s, err := readShareState(p)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(s.Requests)
	for i := range out {
		out[i].Fingerprint = out[i].member().Fingerprint()
	}
	return out, nil
}

// ShareMembers lists the connectors approved here or learnt from a trusted
// share ("connector keys members").
func ShareMembers(cfg Config) ([]ShareRequest, error) {
	p, err := sharePath(cfg)
	if err != nil {
		return nil, err
	}
	s, err := readShareState(p)
	if err != nil {
		return nil, err
	}
	return s.Members, nil
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
	var got ShareRequest
	err = updateShareState(p, func(s *shareState) error {
		i := slices.IndexFunc(s.Requests, func(r ShareRequest) bool { return r.member().MatchFingerprint(fingerprint) })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoShareRequest, fingerprint)
		}
		req := s.Requests[i]
		req.Revoked = false
		m := req.member()
		for _, x := range s.members() {
			if x.Revoked && x.MatchFingerprint(m.Fingerprint()) {
				return fmt.Errorf("connectorapp: %s (%s) was revoked here; a revoked connector is never approved again: enroll it anew", m.ConnectorID, m.Fingerprint())
			}
		}
		s.setMembers(keyenvelope.MergeMembers(s.members(), []keyenvelope.Member{m}))
		s.Requests = slices.Delete(s.Requests, i, i+1)
		got = requestOf(m)
		return nil
	})
	return got, err
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
	var got ShareRequest
	err = updateShareState(p, func(s *shareState) error {
		i := slices.IndexFunc(s.Members, func(r ShareRequest) bool { return r.member().MatchFingerprint(fingerprint) })
		if i < 0 {
			return fmt.Errorf("%w: %s", ErrNoMember, fingerprint)
		}
		s.Members[i].Revoked = true
		got = s.Members[i]
		return nil
	})
	return got, err
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
	fp := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(approverFingerprint))
	if len(fp) != 32 || strings.Trim(fp, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		return fmt.Errorf("connectorapp: %q is not a fingerprint (eight groups of four letters and digits, from connector keys fingerprint on the approving connector)", approverFingerprint)
	}
	if cfg.Keys.KEKFile != "" {
		if _, err := os.Stat(cfg.Keys.KEKFile); err == nil {
			return fmt.Errorf("connectorapp: keys.kek_file %s exists: a joining connector receives the tenant's keyring instead of having its own (move the file away first)", cfg.Keys.KEKFile)
		}
	}
	if _, err := shareIdentityOf(cfg, "", ""); err != nil {
		return err
	}
	return updateShareState(p, func(s *shareState) error {
		s.JoinApprover = approverFingerprint
		return nil
	})
}

// CheckPromote reports whether every live connector of the tenant (as the
// last key-share round listed them) holds version: nil, or an error wrapping
// ErrVersionMissing that names the connectors without it.
func CheckPromote(cfg Config, version uint32) error {
	p, err := sharePath(cfg)
	if err != nil {
		return err
	}
	s, err := readShareState(p)
	if err != nil {
		return err
	}
	self := ""
	if cfg.Cloud.IdentityFile != "" {
		if f, err := readIdentity(cfg.Cloud.IdentityFile); err == nil {
			self = f.ConnectorID
		}
	}
	if s.Synced.IsZero() && len(s.Members) > 1 {
		return fmt.Errorf("%w: no key-share round has run on this connector yet (is it running and connected?); wait for one or pass --force", ErrVersionMissing)
	}
	var missing []string
	for _, peer := range s.Peers {
		if peer.ConnectorID != self && !slices.Contains(peer.Versions, version) {
			missing = append(missing, peer.ConnectorID)
		}
	}
	if len(missing) > 0 {
		when := "never"
		if !s.Synced.IsZero() {
			when = s.Synced.UTC().Format(time.RFC3339)
		}
		return fmt.Errorf("%w: version %d is missing on %s (last key-share round: %s); wait for the next round or pass --force", ErrVersionMissing, version, strings.Join(missing, ", "), when)
	}
	return nil
}

// serveKeyShare answers the cloud's key-share round.
func (a *Agent) serveKeyShare(w http.ResponseWriter, r *http.Request) {
	var in KeyShareSync
	if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&in); err != nil {
		http.Error(w, "bad key-share request", http.StatusBadRequest)
		return
	}
	out, err := a.keyShareRound(in)
	if err != nil {
		a.log.Warn("key share round failed", slog.String("err", err.Error()))
		http.Error(w, "key share unavailable on this connector", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func versionsOf(k *keyenvelope.Keyring) []uint32 {
	var vs []uint32
	for _, v := range k.Versions() {
		vs = append(vs, v.Version)
	}
	return vs
}

func (a *Agent) keyShareRound(in KeyShareSync) (KeyShareReply, error) {
	a.shareMu.Lock()
	defer a.shareMu.Unlock()
	k := a.cfg.Keys
	path := k.shareFile()
	if path == "" {
		return KeyShareReply{}, fmt.Errorf("%w: keys.kek_file or keys.share_file is required to share the keyring", ErrConfig)
	}
	self, err := shareIdentityOf(a.cfg, a.identity.Tenant, a.identity.ConnectorID)
	if err != nil {
		return KeyShareReply{}, err
	}
	unlock, err := lockShare(path)
	if err != nil {
		return KeyShareReply{}, err
	}
	defer unlock()
	st, err := readShareState(path)
	if err != nil {
		return KeyShareReply{}, err
	}
	me := self.Member()
	st.setMembers(keyenvelope.MergeMembers(st.members(), []keyenvelope.Member{me}))
	kr := a.Keyring()
	if kr != nil {
		a.reloadKEKFile(kr)
	}

	// Shares addressed to us.
	for _, b := range in.Shares {
		joining := kr == nil
		trusted := func(m keyenvelope.Member) bool {
			if joining && st.JoinApprover != "" && m.MatchFingerprint(st.JoinApprover) {
				return true
			}
			return st.trusts(m)
		}
		o, err := keyenvelope.OpenKeyringShare(b, self, trusted)
		if err != nil {
			a.log.Warn("keyring share refused", slog.String("err", err.Error()))
			continue
		}
		if joining {
			if err := a.writeKEKFile(o.Keyring, nil); err != nil {
				return KeyShareReply{}, err
			}
			if err := a.installKeyring(o.Keyring); err != nil {
				return KeyShareReply{}, err
			}
			kr = o.Keyring
			st.JoinApprover = ""
			a.log.Info("keyring received", slog.String("from", o.Header.From.ConnectorID),
				slog.String("from_fingerprint", o.Header.From.Fingerprint()), slog.Any("versions", o.Header.Versions))
		} else {
			added, err := kr.Merge(o.Keyring)
			if err != nil {
				a.log.Warn("keyring share refused", slog.String("err", err.Error()))
				continue
			}
			if err := a.writeKEKFile(kr, o.Keyring); err != nil {
				return KeyShareReply{}, err
			}
			if len(added) > 0 {
				a.log.Info("kek versions received", slog.String("from", o.Header.From.ConnectorID), slog.Any("versions", added))
			}
		}
		st.setMembers(keyenvelope.MergeMembers(st.members(), o.Members))
	}

	// Pending requests from others, for "keys requests".
	st.Requests = st.Requests[:0]
	for _, r := range in.Requests {
		m := r.member()
		if m.ConnectorID == me.ConnectorID || len(m.SignKey) != ed25519.PublicKeySize || len(m.SealKey) != 32 {
			continue
		}
		if slices.ContainsFunc(st.members(), func(x keyenvelope.Member) bool { return x.MatchFingerprint(m.Fingerprint()) }) {
			continue
		}
		r.Fingerprint = m.Fingerprint()
		st.Requests = append(st.Requests, r)
	}
	st.Peers, st.Synced = in.Peers, time.Now().UTC()

	out := KeyShareReply{}
	if kr == nil {
		r := requestOf(me)
		out.Request = &r
	} else {
		id := kr.ID()
		out.KeyringID, out.Versions, out.Primary = hex.EncodeToString(id[:]), versionsOf(kr), kr.Primary()
		// Seal to every approved, non-revoked member the cloud lists as
		// live that lacks one of our versions. Keys come from our member
		// list, never from the cloud.
		members := st.members()
		for _, m := range members {
			if m.Revoked || m.ConnectorID == me.ConnectorID {
				continue
			}
			i := slices.IndexFunc(in.Peers, func(p SharePeer) bool { return p.ConnectorID == m.ConnectorID })
			if i < 0 {
				continue // revoked or unknown in the cloud: no longer listed
			}
			p := in.Peers[i]
			if p.KeyringID != "" && p.KeyringID != out.KeyringID {
				a.log.Warn("approved connector holds another keyring; not sharing", slog.String("connector", m.ConnectorID))
				continue
			}
			if p.KeyringID == out.KeyringID && p.Primary >= out.Primary &&
				!slices.ContainsFunc(out.Versions, func(v uint32) bool { return !slices.Contains(p.Versions, v) }) {
				continue // has every version and our primary
			}
			b, err := keyenvelope.SealKeyring(kr, self, m, members)
			if err != nil {
				a.log.Warn("sealing keyring share failed", slog.String("connector", m.ConnectorID), slog.String("err", err.Error()))
				continue
			}
			out.Shares = append(out.Shares, b)
		}
	}
	if err := writeShareState(path, st); err != nil {
		return KeyShareReply{}, err
	}
	return out, nil
}

// reloadKEKFile merges into kr what the CLI wrote to the KEK file since the
// last look (new versions, a promotion): no restart after keys rotate or
// promote.
func (a *Agent) reloadKEKFile(kr *keyenvelope.Keyring) {
	k := a.cfg.Keys
	if k.KEKFile == "" {
		return
	}
	fi, err := os.Stat(k.KEKFile)
	if err != nil || (a.kekStat != nil && os.SameFile(fi, a.kekStat) && fi.ModTime().Equal(a.kekStat.ModTime()) && fi.Size() == a.kekStat.Size()) {
		return // unchanged (every write renames a new file over it)
	}
	pass, err := secret(k.PassphraseFile, k.PassphraseEnv, "kek passphrase")
	if err != nil {
		return
	}
	disk, err := keyenvelope.ReadKEKFile(k.KEKFile, pass)
	clear(pass)
	if err != nil {
		a.log.Warn("re-reading keys.kek_file failed", slog.String("err", err.Error()))
		return
	}
	if _, err := kr.Merge(disk); err != nil {
		a.log.Warn("keys.kek_file holds another keyring than the running one; restart the connector", slog.String("err", err.Error()))
		return
	}
	a.kekStat = fi
}

// writeKEKFile writes the KEK file (when the keyring is file-backed): for a
// join, kr itself; otherwise the file's own content merged with in, so that
// a state change the CLI made on the file (disable, destroy) is never undone.
func (a *Agent) writeKEKFile(kr, in *keyenvelope.Keyring) error {
	k := a.cfg.Keys
	if k.KEKFile == "" {
		return nil
	}
	pass, err := secret(k.PassphraseFile, k.PassphraseEnv, "kek passphrase")
	if err != nil {
		return err
	}
	defer clear(pass)
	target := kr
	if in != nil {
		disk, err := keyenvelope.ReadKEKFile(k.KEKFile, pass)
		if err != nil {
			return fmt.Errorf("%w: keys.kek_file %s: %w", ErrConfig, k.KEKFile, err)
		}
		if _, err := disk.Merge(in); err != nil {
			return err
		}
		target = disk
	}
	if err := target.WriteKEKFile(k.KEKFile, pass, k.Argon2); err != nil {
		return err
	}
	if fi, err := os.Stat(k.KEKFile); err == nil {
		a.kekStat = fi
	}
	return nil
}
