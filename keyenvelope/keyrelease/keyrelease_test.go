package keyrelease_test

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/internal/sqlstore"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
	"github.com/liaisonhq/liaison/keyenvelope"
	"github.com/liaisonhq/liaison/keyenvelope/keyrelease"
)

// memSecrets is a SecretStore and Rotator in memory.
type memSecrets struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memSecrets) Secret(_ context.Context, name string, n int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[name]; ok {
		return append([]byte(nil), v...), nil
	}
	v := make([]byte, n)
	_, _ = rand.Read(v)
	s.m[name] = v
	return append([]byte(nil), v...), nil
}

func (s *memSecrets) Existing(_ context.Context, name string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[name]
	return append([]byte(nil), v...), ok, nil
}

func (s *memSecrets) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, name)
	return nil
}

func (s *memSecrets) Rotate(_ context.Context, next, cur, prev string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.m[next]
	if !ok {
		return false, nil
	}
	if c, ok := s.m[cur]; ok {
		s.m[prev] = c
	}
	s.m[cur] = n
	delete(s.m, next)
	return true, nil
}

// connector is Keys over a real keyring and releaser that checks tickets
// against the pinned scheduler key, as a connector does.
type connector struct {
	kr        *keyenvelope.Keyring
	rel       *keyenvelope.Releaser
	generated int
}

func newConnector(t *testing.T, sched *keyrelease.Scheduler) *connector {
	kr, err := keyenvelope.NewKeyring(nil)
	require.NoError(t, err)
	rel, err := keyenvelope.NewReleaser(keyenvelope.ReleaserConfig{Keyring: kr, Policy: keyenvelope.TicketPolicy{SchedulerKey: sched.PublicKey()}})
	require.NoError(t, err)
	return &connector{kr: kr, rel: rel}
}

func (c *connector) GenerateWrapped(_ context.Context, kc keyenvelope.Context) ([]byte, keyenvelope.EkeyID, error) {
	c.generated++
	return c.kr.GenerateWrapped(kc)
}

func (c *connector) Release(_ context.Context, ticket, wrapped []byte) ([]byte, error) {
	return c.rel.Release(ticket, wrapped)
}

func TestRelease(t *testing.T) {
	sqlstoretest.Dialects(t, func(t *testing.T, d sqlstore.Dialect, db *sql.DB) {
		ctx := context.Background()
		sched, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: &memSecrets{m: map[string][]byte{}}})
		require.NoError(t, err)
		ekeys, err := keyrelease.NewSQLEkeys(keyrelease.SQLEkeysConfig{DB: db, Dialect: d})
		require.NoError(t, err)
		require.NoError(t, ekeys.Migrate(ctx))
		r, err := keyrelease.New(keyrelease.Config{Scheduler: sched, Ekeys: ekeys})
		require.NoError(t, err)
		conn := newConnector(t, sched)
		worker, err := ecdh.X25519().GenerateKey(rand.Reader)
		require.NoError(t, err)
		req := keyrelease.Request{Tenant: "acme", UserID: "u1", JobID: "job-1", WorkerKey: worker.PublicKey().Bytes()}

		_, err = r.Release(ctx, conn, keyrelease.Request{Tenant: "acme", UserID: "u1", JobID: "job-1", Job: keyenvelope.JobRestore, WorkerKey: req.WorkerKey})
		assert.ErrorIs(t, err, keyrelease.ErrNoEkey, "a restore never creates an ekey")
		assert.Zero(t, conn.generated)

		first, err := r.Release(ctx, conn, req)
		require.NoError(t, err, "the connector accepts the ticket signed by the scheduler")
		assert.Equal(t, 1, conn.generated)
		again, err := r.Release(ctx, conn, req)
		require.NoError(t, err)
		assert.Equal(t, first.EkeyID, again.EkeyID, "one ekey per user")
		assert.Equal(t, 1, conn.generated)
		restore, err := r.Release(ctx, conn, keyrelease.Request{Tenant: "acme", UserID: "u1", JobID: "job-2", Job: keyenvelope.JobRestore, WorkerKey: req.WorkerKey})
		require.NoError(t, err)
		assert.Equal(t, first.EkeyID, restore.EkeyID)

		refused := errors.New("disabled")
		bad := req
		bad.Check = func(context.Context) error { return refused }
		_, err = r.Release(ctx, conn, bad)
		assert.ErrorIs(t, err, refused, "the caller's check refuses a backup")

		for name, mod := range map[string]func(*keyrelease.Request){
			"job ID with a slash": func(q *keyrelease.Request) { q.JobID = "a/b" },
			"no user":             func(q *keyrelease.Request) { q.UserID = "" },
			"short worker key":    func(q *keyrelease.Request) { q.WorkerKey = q.WorkerKey[:10] },
			"unknown purpose":     func(q *keyrelease.Request) { q.Job = "exfiltrate" },
		} {
			q := req
			mod(&q)
			_, err := r.Release(ctx, conn, q)
			assert.ErrorIs(t, err, keyrelease.ErrInvalid, name)
		}
	})
}

func TestSchedulerRotation(t *testing.T) {
	ctx := context.Background()
	secrets := &memSecrets{m: map[string][]byte{}}
	_, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets, Promote: true})
	assert.ErrorIs(t, err, keyrelease.ErrNothingToPromote, "promote without a prepared key fails")
	s1, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets})
	require.NoError(t, err)
	old := s1.PublicKey()
	next, err := s1.Prepare(ctx)
	require.NoError(t, err)
	keys, err := s1.Keys(ctx)
	require.NoError(t, err)
	assert.Equal(t, old, keys.Current, "preparing changes nothing yet")
	assert.Equal(t, next, keys.Next)

	s2, err := keyrelease.LoadScheduler(ctx, keyrelease.SchedulerConfig{Secrets: secrets, Promote: true})
	require.NoError(t, err)
	assert.Equal(t, next, s2.PublicKey())
	keys, err = s2.Keys(ctx)
	require.NoError(t, err)
	assert.Equal(t, old, keys.Previous)
	assert.Empty(t, keys.Next)
	require.NoError(t, s2.Retire(ctx))
	keys, err = s2.Keys(ctx)
	require.NoError(t, err)
	assert.Empty(t, keys.Previous)

	// A ticket signed by the retired key is refused by a connector pinning the new one.
	worker, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	wk, err := hpke.DHKEM(ecdh.X25519()).NewPublicKey(worker.PublicKey().Bytes())
	require.NoError(t, err)
	tk, err := s1.Issue(&keyenvelope.Ticket{JobID: "j", Tenant: "t", User: "u", Purpose: "backup", JobPurpose: keyenvelope.JobBackup,
		IssuedAt: time.Now(), Expires: time.Now().Add(time.Hour), WorkerKey: wk})
	require.NoError(t, err)
	_, err = keyenvelope.TicketPolicy{SchedulerKey: s2.PublicKey()}.VerifyTicket(tk, time.Now())
	assert.Error(t, err)
	_, err = keyenvelope.TicketPolicy{SchedulerKey: old}.VerifyTicket(tk, time.Now())
	assert.NoError(t, err, "the same ticket verifies under the key that signed it")
}
