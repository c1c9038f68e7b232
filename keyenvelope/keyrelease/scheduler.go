// Package keyrelease is the cloud side of ekey releases: the scheduler key
// that signs job tickets (kept sealed, rotated with an overlap), the store
// of users' wrapped ekeys, and the release itself, which issues a ticket
// and asks a connector to seal the ekey to a backup worker.
//
// Use it in a cloud endpoint beside a keyhttp client that reaches the
// tenant's connectors:
//
//	sched, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets})
//	ekeys, err := keyrelease.NewSQLEkeys(keyrelease.SQLEkeysConfig{DB: db, Dialect: keyrelease.Postgres})
//	r, err := keyrelease.New(keyrelease.Config{Scheduler: sched, Ekeys: ekeys})
//	rel, err := r.Release(ctx, keysClient, keyrelease.Request{Tenant: "acme", UserID: id, JobID: job, WorkerKey: pub})
//
// Connectors pin the scheduler's public key (served signed by the tunnel
// identity, see [SchedulerKeys.Signature]) and release an ekey only against
// a ticket it signed; the cloud never sees an ekey in the clear.
//
// # Rotating the ticket signing key
//
// Tickets carry no key ID; a connector accepts a set of keys, so old and
// new keys are both valid during an overlap: [Scheduler.Prepare] makes the
// next key (connectors add it to the keys they accept), a later
// [LoadScheduler] with SchedulerConfig.Promote signs with it and keeps the
// replaced key as "previous", and [Scheduler.Retire] forgets that one once
// every connector pins the new key. A Promote with nothing prepared fails
// ([ErrNothingToPromote]), so the setting cannot stay on by mistake.
//
// It won't decide who may have a key: the caller checks its own user
// model (disabled, deleted) before asking, through [Request.Check].
package keyrelease

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Names of the ticket-signing seeds in the SecretStore: the one in use,
// the one prepared for the next rotation, and the one replaced by the last
// (kept until retired).
const (
	SecretScheduler         = "scheduler_ed25519_seed"
	SecretSchedulerNext     = "scheduler_ed25519_seed_next"
	SecretSchedulerPrevious = "scheduler_ed25519_seed_previous"
)

// SecretStore keeps the signing seeds, sealed (masterkey.Secrets is one).
type SecretStore interface {
	// Secret returns the named secret, generating n random bytes on first use.
	Secret(ctx context.Context, name string, n int) ([]byte, error)
	// Existing returns the named secret if it exists.
	Existing(ctx context.Context, name string) ([]byte, bool, error)
	// Delete forgets the named secret.
	Delete(ctx context.Context, name string) error
}

// Rotator is the optional capability of a SecretStore that
// SchedulerConfig.Promote needs: next becomes current, current previous,
// in one transaction; false when next does not exist.
type Rotator interface {
	Rotate(ctx context.Context, next, current, previous string) (bool, error)
}

// ErrNothingToPromote: SchedulerConfig.Promote is set but no next key was
// prepared ([Scheduler.Prepare]).
var ErrNothingToPromote = errors.New("keyrelease: promote asked but no next scheduler key was prepared")

// SchedulerConfig configures LoadScheduler. Secrets is required.
type SchedulerConfig struct {
	Secrets SecretStore
	// Promote makes the prepared next key the signing one from this load
	// on (Secrets must implement Rotator).
	Promote bool
}

// Scheduler signs job tickets with the cloud's scheduler key.
type Scheduler struct {
	key     ed25519.PrivateKey
	secrets SecretStore
}

// LoadScheduler loads the signing key (made on first use), promoting the
// prepared one first when cfg.Promote is set.
func LoadScheduler(ctx context.Context, cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Secrets == nil {
		return nil, errors.New("keyrelease: SchedulerConfig.Secrets is required")
	}
	if cfg.Promote {
		r, ok := cfg.Secrets.(Rotator)
		if !ok {
			return nil, errors.New("keyrelease: SchedulerConfig.Promote needs a SecretStore that can Rotate")
		}
		promoted, err := r.Rotate(ctx, SecretSchedulerNext, SecretScheduler, SecretSchedulerPrevious)
		if err != nil {
			return nil, err
		}
		if !promoted {
			return nil, ErrNothingToPromote
		}
	}
	seed, err := cfg.Secrets.Secret(ctx, SecretScheduler, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return &Scheduler{key: ed25519.NewKeyFromSeed(seed), secrets: cfg.Secrets}, nil
}

// PublicKey is the key tickets are signed with: connectors pin it
// (keyenvelope.TicketPolicy.SchedulerKey).
func (s *Scheduler) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Issue signs a job ticket.
func (s *Scheduler) Issue(t *keyenvelope.Ticket) ([]byte, error) {
	return keyenvelope.IssueTicket(s.key, t)
}

// SchedulerKeys are the public halves of the ticket-signing keys (standard
// base64 in JSON).
type SchedulerKeys struct {
	// Current signs job tickets.
	Current ed25519.PublicKey `json:"ed25519"`
	// Next is prepared by Prepare and signs from the first load with
	// Promote; connectors must accept it before then.
	Next ed25519.PublicKey `json:"next,omitempty"`
	// Signature is the tunnel identity's statement over Current, set where
	// the keys are served to connectors (tunnel.Gateway.SignStatement).
	Signature []byte `json:"signature,omitempty"`
	// Previous signed before the last promotion; kept (unused) until Retire.
	Previous ed25519.PublicKey `json:"previous,omitempty"`
}

// Keys returns the current, next and previous public keys.
func (s *Scheduler) Keys(ctx context.Context) (SchedulerKeys, error) {
	k := SchedulerKeys{Current: s.PublicKey()}
	for _, x := range []struct {
		name string
		out  *ed25519.PublicKey
	}{{SecretSchedulerNext, &k.Next}, {SecretSchedulerPrevious, &k.Previous}} {
		seed, ok, err := s.secrets.Existing(ctx, x.name)
		if err != nil {
			return SchedulerKeys{}, err
		}
		if ok {
			if len(seed) != ed25519.SeedSize {
				return SchedulerKeys{}, fmt.Errorf("keyrelease: secret %s is %d bytes, want %d", x.name, len(seed), ed25519.SeedSize)
			}
			*x.out = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
			clear(seed)
		}
	}
	return k, nil
}

// Prepare starts a rotation: it makes the next key (or returns the one
// already prepared) and returns its public half. Nothing changes for
// connectors until a load with Promote.
func (s *Scheduler) Prepare(ctx context.Context) (ed25519.PublicKey, error) {
	seed, err := s.secrets.Secret(ctx, SecretSchedulerNext, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

// Retire forgets the previous key, ending a rotation. Retiring when there
// is none is not an error.
func (s *Scheduler) Retire(ctx context.Context) error {
	return s.secrets.Delete(ctx, SecretSchedulerPrevious)
}
