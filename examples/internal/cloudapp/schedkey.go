package cloudapp

import (
	"context"
	"crypto/ed25519"
)

// SchedulerKeys are the public halves of the job-ticket signing keys, as
// served at PathSchedulerKey and GET /v1/admin/scheduler-keys (standard
// base64 in JSON).
type SchedulerKeys struct {
	// Current signs job tickets (SchedulerPublicKey).
	Current ed25519.PublicKey `json:"ed25519"`
	// Next is prepared by PrepareSchedulerKey and signs from the first
	// start with Config.PromoteSchedulerKey; connectors must accept it
	// before then (keys.extra_scheduler_public_keys).
	Next ed25519.PublicKey `json:"next,omitempty"`
	// Signature is the tunnel identity's statement over Current
	// (SchedulerKeyStatement), set where the keys are served to connectors.
	Signature []byte `json:"signature,omitempty"`
	// Previous signed before the last promotion; it is kept (unused) until
	// RetireSchedulerKey.
	Previous ed25519.PublicKey `json:"previous,omitempty"`
}

// SchedulerKeys returns the current, next and previous ticket-signing
// public keys.
func (s *Server) SchedulerKeys(ctx context.Context) (SchedulerKeys, error) {
	k := SchedulerKeys{Current: s.SchedulerPublicKey()}
	for _, x := range []struct {
		name string
		out  *ed25519.PublicKey
	}{{secretSchedulerNext, &k.Next}, {secretSchedulerPrevious, &k.Previous}} {
		seed, ok, err := s.secrets.Existing(ctx, x.name)
		if err != nil {
			return SchedulerKeys{}, err
		}
		if ok {
			*x.out = ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
			clear(seed)
		}
	}
	return k, nil
}

// PrepareSchedulerKey starts a rotation of the ticket-signing key: it
// generates the next key (or returns the one already prepared) and returns
// its public half. Nothing changes for connectors until the cloud starts
// with Config.PromoteSchedulerKey; before that, every connector must accept
// the next key as well (keys.extra_scheduler_public_keys). See the package
// doc, "Rotating the ticket signing key".
func (s *Server) PrepareSchedulerKey(ctx context.Context) (ed25519.PublicKey, error) {
	seed, err := s.secrets.Secret(ctx, secretSchedulerNext, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

// RetireSchedulerKey forgets the previous ticket-signing key, ending a
// rotation once every connector pins the current one. Deleting a key that
// does not exist is not an error.
func (s *Server) RetireSchedulerKey(ctx context.Context) error {
	return s.secrets.Delete(ctx, secretSchedulerPrevious)
}
