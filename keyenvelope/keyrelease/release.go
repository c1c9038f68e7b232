package keyrelease

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/liaisonhq/liaison/keyenvelope"
)

// Errors of Release, matched with errors.Is.
var (
	// ErrInvalid: a parameter of the Request is missing or malformed.
	ErrInvalid = errors.New("keyrelease: invalid request")
	// ErrNoEkey: a restore was asked for a user who has no ekey (never
	// backed up); also what an EkeyStore returns for a missing ekey.
	ErrNoEkey = errors.New("keyrelease: user has no ekey")
)

// Keys is what a release asks a tenant's connector (a keyhttp.Client
// through the tunnel is one).
type Keys interface {
	GenerateWrapped(ctx context.Context, c keyenvelope.Context) ([]byte, keyenvelope.EkeyID, error)
	Release(ctx context.Context, ticket, wrapped []byte) ([]byte, error)
}

// EkeyStore keeps users' wrapped ekeys ([SQLEkeys] is one).
type EkeyStore interface {
	// Ekey returns the wrapped ekey, or ErrNoEkey.
	Ekey(ctx context.Context, tenant, user, purpose string) ([]byte, keyenvelope.EkeyID, error)
	// AddEkey stores a wrapped ekey unless one exists already.
	AddEkey(ctx context.Context, tenant, user, purpose string, id keyenvelope.EkeyID, wrapped []byte) error
}

// Config configures a Releaser. Scheduler and Ekeys are required.
type Config struct {
	Scheduler *Scheduler
	Ekeys     EkeyStore
	// MaxTTL caps a ticket's validity and is its default; zero: 1h.
	MaxTTL time.Duration
	// Now is the clock of tickets; nil: time.Now.
	Now func() time.Time
}

// Releaser releases users' ekeys to backup workers.
type Releaser struct {
	cfg Config
}

// New validates cfg and returns a Releaser.
func New(cfg Config) (*Releaser, error) {
	if cfg.Scheduler == nil || cfg.Ekeys == nil {
		return nil, errors.New("keyrelease: Config.Scheduler and Config.Ekeys are required")
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Releaser{cfg: cfg}, nil
}

// EkeyPurpose is the purpose of the ekey a user's backups and restores
// share (the job's own purpose is in the ticket).
const EkeyPurpose = "backup"

// Request is one release.
type Request struct {
	Tenant, UserID string
	// JobID names the job: 1 to 128 characters, no '/', '\' or white space.
	JobID string
	// Job is keyenvelope.JobBackup (the zero value means it) or
	// keyenvelope.JobRestore. Only a backup may create the ekey.
	Job keyenvelope.JobPurpose
	// WorkerKey is the X25519 public key the ekey is sealed to.
	WorkerKey []byte
	// TTL is the ticket's validity; zero or above Config.MaxTTL: MaxTTL.
	TTL time.Duration
	// Check, when set, runs for a backup before any ekey is made or asked
	// for: the caller's own refusal (a user disabled in its user model or
	// in the directory). Its error is returned as is.
	Check func(ctx context.Context) error
}

// Release is an ekey released to a worker.
type Release struct {
	Ticket  []byte `json:"ticket"`  // the job ticket, signed by the scheduler
	Release []byte `json:"release"` // HPKE-sealed to the worker's key
	EkeyID  string `json:"ekey_id"`
}

// Release signs a ticket naming the worker key and asks keys (a connector)
// to release the user's ekey under it. A backup creates the ekey through
// the connector on first use; a restore never does (ErrNoEkey).
func (r *Releaser) Release(ctx context.Context, keys Keys, req Request) (Release, error) {
	if req.Job == "" {
		req.Job = keyenvelope.JobBackup
	}
	if req.Job != keyenvelope.JobBackup && req.Job != keyenvelope.JobRestore {
		return Release{}, fmt.Errorf("%w: job purpose %q", ErrInvalid, req.Job)
	}
	if !validJobID(req.JobID) || req.UserID == "" || req.Tenant == "" {
		return Release{}, fmt.Errorf("%w: tenant, job ID and user ID", ErrInvalid)
	}
	wk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(req.WorkerKey)
	if err != nil {
		return Release{}, fmt.Errorf("%w: worker key: %w", ErrInvalid, err)
	}
	ttl := req.TTL
	if ttl <= 0 || ttl > r.cfg.MaxTTL {
		ttl = r.cfg.MaxTTL
	}
	var wrapped []byte
	var id keyenvelope.EkeyID
	if req.Job == keyenvelope.JobBackup {
		if req.Check != nil {
			if err := req.Check(ctx); err != nil {
				return Release{}, err
			}
		}
		wrapped, id, err = r.ekey(ctx, keys, req.Tenant, req.UserID)
	} else {
		wrapped, id, err = r.cfg.Ekeys.Ekey(ctx, req.Tenant, req.UserID, EkeyPurpose)
	}
	if err != nil {
		return Release{}, err
	}
	now := r.cfg.Now()
	ticket, err := r.cfg.Scheduler.Issue(&keyenvelope.Ticket{JobID: req.JobID, Tenant: req.Tenant, User: req.UserID, Purpose: EkeyPurpose,
		JobPurpose: req.Job, EkeyID: id, IssuedAt: now, Expires: now.Add(ttl), WorkerKey: wk})
	if err != nil {
		return Release{}, err
	}
	rel, err := keys.Release(ctx, ticket, wrapped)
	if err != nil {
		return Release{}, err
	}
	return Release{Ticket: ticket, Release: rel, EkeyID: id.String()}, nil
}

// ekey returns the user's wrapped ekey, generating it through a connector
// the first time.
func (r *Releaser) ekey(ctx context.Context, keys Keys, tenant, user string) ([]byte, keyenvelope.EkeyID, error) {
	wrapped, id, err := r.cfg.Ekeys.Ekey(ctx, tenant, user, EkeyPurpose)
	if !errors.Is(err, ErrNoEkey) {
		return wrapped, id, err
	}
	wrapped, id, err = keys.GenerateWrapped(ctx, keyenvelope.Context{Tenant: tenant, User: user, Purpose: EkeyPurpose})
	if err != nil {
		return nil, id, err
	}
	if err := r.cfg.Ekeys.AddEkey(ctx, tenant, user, EkeyPurpose, id, wrapped); err != nil {
		return nil, id, err
	}
	return r.cfg.Ekeys.Ekey(ctx, tenant, user, EkeyPurpose) // the first one stored wins a race
}

func validJobID(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsAny(s, "/\\ \t\r\n")
}
