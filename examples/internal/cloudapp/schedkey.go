package cloudapp

import (
	"context"
	"crypto/ed25519"

	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
)

// SchedulerKeys are the public halves of the job-ticket signing keys, as
// served at PathSchedulerKey and GET /v1/admin/scheduler-keys.
type SchedulerKeys = keyrelease.SchedulerKeys

// SchedulerKeys returns the current, next and previous ticket-signing
// public keys.
func (s *Server) SchedulerKeys(ctx context.Context) (SchedulerKeys, error) {
	return s.tickets.Keys(ctx)
}

// PrepareSchedulerKey starts a rotation of the ticket-signing key (see the
// package doc, "Rotating the ticket signing key").
func (s *Server) PrepareSchedulerKey(ctx context.Context) (ed25519.PublicKey, error) {
	return s.tickets.Prepare(ctx)
}

// RetireSchedulerKey forgets the previous ticket-signing key, ending a
// rotation once every connector pins the current one.
func (s *Server) RetireSchedulerKey(ctx context.Context) error { return s.tickets.Retire(ctx) }
