package keyshare

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// maxSyncBody caps a Sync body.
const maxSyncBody = 8 << 20

// Config configures a [Handler]: a connector's side of the rounds.
type Config struct {
	// StateFile is the state file (members, requests, the last round's
	// peers), 0600. Required.
	StateFile string
	// Identity returns this connector's share identity: its tenant and ID,
	// its Ed25519 key (shares are signed with it) and its X25519 share key
	// (shares to it are sealed to it). It is called once per round.
	// Required.
	Identity func() (keyenvelope.ShareIdentity, error)
	// Keyring returns the keyring the connector serves now, or nil while
	// it waits for the tenant's (after Join). Required.
	Keyring func() *keyenvelope.Keyring
	// Install is called with the keyring a joining connector received,
	// after Store saved it: the connector starts serving it. Required.
	Install func(*keyenvelope.Keyring) error
	// Store keeps what rounds receive and tells about versions added by
	// another process. Nil: the received versions are merged into the
	// live keyring only (lost at restart).
	Store Store
	// Logger receives refused shares and failures (nil: discard). No
	// key material is logged.
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Handler answers the relay's rounds: it opens the shares addressed to
// this connector (trusting only approved members, or the approver typed at
// Join), records the pending requests and the live peers in the state
// file, and seals the keyring to every approved, non-revoked member the
// relay lists as live that lacks a version or has a lower primary. Keys to
// seal to come from the state file, never from the relay.
type Handler struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // one round at a time
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.StateFile == "":
		return nil, errors.New("keyshare: Config.StateFile is required")
	case cfg.Identity == nil || cfg.Keyring == nil || cfg.Install == nil:
		return nil, errors.New("keyshare: Config.Identity, Keyring and Install are required")
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.cfg.Now == nil {
		h.cfg.Now = time.Now
	}
	return h, nil
}

// ServeHTTP answers a POST of a [Sync] with a [Reply]: 400 for a body that
// is not a Sync, 503 when the round failed (logged).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in Sync
	if err := json.NewDecoder(io.LimitReader(r.Body, maxSyncBody)).Decode(&in); err != nil {
		http.Error(w, "bad key-share request", http.StatusBadRequest)
		return
	}
	out, err := h.Round(in)
	if err != nil {
		h.log.Warn("key share round failed", slog.String("err", err.Error()))
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

// Round runs one round on in, under the state file's [Lock], and returns
// the reply. Shares that do not open or are not trusted are skipped
// (logged); an error means the state or the keyring could not be read or
// written.
func (h *Handler) Round(in Sync) (Reply, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	self, err := h.cfg.Identity()
	if err != nil {
		return Reply{}, err
	}
	unlock, err := Lock(h.cfg.StateFile)
	if err != nil {
		return Reply{}, err
	}
	defer unlock()
	st, err := readState(h.cfg.StateFile)
	if err != nil {
		return Reply{}, err
	}
	me := self.Member()
	st.setMembers(keyenvelope.MergeMembers(st.members(), []keyenvelope.Member{me}))
	kr := h.cfg.Keyring()
	if kr != nil {
		h.reload(kr)
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
			h.log.Warn("keyring share refused", slog.String("err", err.Error()))
			continue
		}
		if joining {
			if err := h.save(o.Keyring); err != nil {
				return Reply{}, err
			}
			if err := h.cfg.Install(o.Keyring); err != nil {
				return Reply{}, err
			}
			kr = o.Keyring
			st.JoinApprover = ""
			h.log.Info("keyring received", slog.String("from", o.Header.From.ConnectorID),
				slog.String("from_fingerprint", o.Header.From.Fingerprint()), slog.Any("versions", o.Header.Versions))
		} else {
			added, err := kr.Merge(o.Keyring)
			if err != nil {
				h.log.Warn("keyring share refused", slog.String("err", err.Error()))
				continue
			}
			if err := h.save(o.Keyring); err != nil {
				return Reply{}, err
			}
			if len(added) > 0 {
				h.log.Info("kek versions received", slog.String("from", o.Header.From.ConnectorID), slog.Any("versions", added))
			}
		}
		st.setMembers(keyenvelope.MergeMembers(st.members(), o.Members))
	}

	// Pending requests from others, for Requests.
	st.Requests = st.Requests[:0]
	for _, r := range in.Requests {
		m := r.Member()
		if m.ConnectorID == me.ConnectorID || len(m.SignKey) != ed25519.PublicKeySize || len(m.SealKey) != 32 {
			continue
		}
		if slices.ContainsFunc(st.members(), func(x keyenvelope.Member) bool { return x.MatchFingerprint(m.Fingerprint()) }) {
			continue
		}
		r.Fingerprint = m.Fingerprint()
		st.Requests = append(st.Requests, r)
	}
	st.Peers, st.Synced = in.Peers, h.cfg.Now().UTC()

	out := Reply{}
	if kr == nil {
		r := RequestOf(me)
		out.Request = &r
	} else {
		id := kr.ID()
		out.KeyringID, out.Versions, out.Primary = hex.EncodeToString(id[:]), versionsOf(kr), kr.Primary()
		out.Shares = h.seal(kr, self, st.members(), in.Peers, out)
	}
	if err := writeState(h.cfg.StateFile, st); err != nil {
		return Reply{}, err
	}
	return out, nil
}

// seal seals kr to every approved, non-revoked member the relay lists as
// live that lacks one of our versions or our primary. Keys come from our
// member list, never from the relay.
func (h *Handler) seal(kr *keyenvelope.Keyring, self keyenvelope.ShareIdentity, members []keyenvelope.Member, peers []Peer, out Reply) [][]byte {
	var shares [][]byte
	for _, m := range members {
		if m.Revoked || m.ConnectorID == self.ConnectorID {
			continue
		}
		i := slices.IndexFunc(peers, func(p Peer) bool { return p.ConnectorID == m.ConnectorID })
		if i < 0 {
			continue // revoked or unknown at the relay: no longer listed
		}
		p := peers[i]
		if p.KeyringID != "" && p.KeyringID != out.KeyringID {
			h.log.Warn("approved connector holds another keyring; not sharing", slog.String("connector", m.ConnectorID))
			continue
		}
		if p.KeyringID == out.KeyringID && p.Primary >= out.Primary &&
			!slices.ContainsFunc(out.Versions, func(v uint32) bool { return !slices.Contains(p.Versions, v) }) {
			continue // has every version and our primary
		}
		b, err := keyenvelope.SealKeyring(kr, self, m, members)
		if err != nil {
			h.log.Warn("sealing keyring share failed", slog.String("connector", m.ConnectorID), slog.String("err", err.Error()))
			continue
		}
		shares = append(shares, b)
	}
	return shares
}

// reload merges into kr what another process added to the store (new
// versions, a promotion): no restart after a rotation.
func (h *Handler) reload(kr *keyenvelope.Keyring) {
	if h.cfg.Store == nil {
		return
	}
	disk, err := h.cfg.Store.Changed()
	if err != nil {
		h.log.Warn("re-reading the stored keyring failed", slog.String("err", err.Error()))
		return
	}
	if disk == nil {
		return
	}
	if _, err := kr.Merge(disk); err != nil {
		h.log.Warn("the stored keyring is another keyring than the running one; restart the connector", slog.String("err", err.Error()))
	}
}

func (h *Handler) save(in *keyenvelope.Keyring) error {
	if h.cfg.Store == nil {
		return nil
	}
	if err := h.cfg.Store.Save(in); err != nil {
		return fmt.Errorf("keyshare: storing the keyring: %w", err)
	}
	return nil
}
