package keyenvelope

import (
	"crypto/ed25519"
	"crypto/hpke"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ReleaserConfig configures a [Releaser].
type ReleaserConfig struct {
	// Keyring unwraps the ekeys. Required.
	Keyring *Keyring
	// Policy checks tickets; Policy.SchedulerKey is required.
	Policy TicketPolicy
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Releaser releases ekeys to backup workers against scheduler-signed tickets.
// It is safe for concurrent use.
type Releaser struct {
	keyring *Keyring
	policy  TicketPolicy
	now     func() time.Time
}

// NewReleaser validates cfg and returns a Releaser.
func NewReleaser(cfg ReleaserConfig) (*Releaser, error) {
	if cfg.Keyring == nil {
		return nil, errors.New("keyenvelope: releaser needs a keyring")
	}
	if len(cfg.Policy.SchedulerKey) != 32 {
		return nil, errors.New("keyenvelope: releaser needs a 32-byte Ed25519 scheduler key")
	}
	for _, k := range cfg.Policy.ExtraSchedulerKeys {
		if len(k) != 32 {
			return nil, errors.New("keyenvelope: every extra scheduler key must be a 32-byte Ed25519 key")
		}
	}
	if cfg.Policy.MaxLifetime < 0 || cfg.Policy.ClockSkew < 0 {
		return nil, errors.New("keyenvelope: negative ticket lifetime or skew")
	}
	for _, jp := range cfg.Policy.JobPurposes {
		if !jp.known() {
			return nil, fmt.Errorf("keyenvelope: Policy.JobPurposes: %q is neither %q nor %q", jp, JobBackup, JobRestore)
		}
	}
	r := &Releaser{keyring: cfg.Keyring, policy: cfg.Policy, now: cfg.Now}
	r.policy.SchedulerKey = append([]byte(nil), cfg.Policy.SchedulerKey...)
	r.policy.ExtraSchedulerKeys = nil
	for _, k := range cfg.Policy.ExtraSchedulerKeys {
		r.policy.ExtraSchedulerKeys = append(r.policy.ExtraSchedulerKeys, append(ed25519.PublicKey(nil), k...))
	}
	r.policy.JobPurposes = slices.Clone(cfg.Policy.JobPurposes)
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// Release verifies ticket, unwraps wrapped with the context the ticket names
// (tenant, user, purpose, ekey ID) and seals the ekey to the ticket's worker
// key with HPKE, binding the ticket's SHA-256 hash. It returns the
// KindRelease envelope in binary form.
//
// It returns [ErrInvalidTicket] or [ErrTicketExpired] for a ticket that does
// not verify (including one without a job purpose, or with one the policy
// does not list), and [ErrUnwrap] when wrapped does not unwrap for the ticket's
// context: a ticket for user A never releases user B's ekey.
func (r *Releaser) Release(ticket, wrapped []byte) ([]byte, error) {
	t, err := r.policy.VerifyTicket(ticket, r.now())
	if err != nil {
		return nil, err
	}
	env, ok := parseEnvelope(wrapped)
	if !ok || env.ekeyID != t.EkeyID {
		return nil, ErrUnwrap
	}
	c := Context{Tenant: t.Tenant, User: t.User, Purpose: t.Purpose}
	r.keyring.mu.RLock()
	e, err := r.keyring.unwrapLocked(c, &env)
	r.keyring.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	defer e.Zero()
	th := ticketHash(ticket)
	suite, _ := suiteForKEM(t.WorkerKey.KEM().ID())
	return sealRelease(t.WorkerKey, suite, th, e)
}

func releaseHeader(suite Suite, th [32]byte) Header {
	h := Header{Version: formatVersion, Kind: KindRelease, Suite: suite}
	copy(h.KeyID[:], th[:16])
	return h
}

func sealRelease(worker hpke.PublicKey, suite Suite, th [32]byte, e *Ekey) ([]byte, error) {
	raw := releaseHeader(suite, th).append(nil)
	enc, s, err := hpke.NewSender(worker, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelRelease, raw))
	if err != nil {
		// Only a degenerate (for example low-order) worker key gets here,
		// and the key came from the signed ticket.
		return nil, ErrInvalidTicket
	}
	ct, err := s.Seal(th[:], e.Key[:])
	if err != nil {
		return nil, ErrInvalidTicket
	}
	out := make([]byte, 0, len(raw)+len(enc)+len(ct))
	out = append(out, raw...)
	out = append(out, enc...)
	return append(out, ct...), nil
}

// OpenRelease is the backup worker's side: it opens a KindRelease envelope
// with the worker's one-time private key, for the ticket it was given, and
// returns the ekey (with the ticket's ekey ID). It parses the ticket but
// does not verify its signature: the worker got it from its own scheduler.
// Every failure returns [ErrUnwrap].
func OpenRelease(worker hpke.PrivateKey, ticket, release []byte) (*Ekey, error) {
	t, _, _, ok := parseTicket(ticket)
	if !ok {
		return nil, ErrUnwrap
	}
	env, ok := parseEnvelope(release)
	if !ok || env.h.Kind != KindRelease {
		return nil, ErrUnwrap
	}
	th := ticketHash(ticket)
	if env.h != releaseHeader(env.h.Suite, th) {
		return nil, ErrUnwrap
	}
	kem, _, _, _ := env.h.Suite.hpkeKEM()
	if worker.KEM().ID() != kem.ID() {
		return nil, ErrUnwrap
	}
	rc, err := hpke.NewRecipient(env.enc, worker, hpke.HKDFSHA256(), hpke.AES256GCM(), labeled(labelRelease, env.raw))
	if err != nil {
		return nil, ErrUnwrap
	}
	pt, err := rc.Open(th[:], env.ct)
	if err != nil {
		return nil, ErrUnwrap
	}
	e := &Ekey{ID: t.EkeyID}
	copy(e.Key[:], pt)
	clear(pt)
	return e, nil
}
