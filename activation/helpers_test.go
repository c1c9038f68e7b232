package activation_test

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

// fakeDirectory maps (mapping, domain, login) to a user or an error, and
// can be "disconnected" like a tenant whose connectors are all gone.
type fakeDirectory struct {
	mu           sync.Mutex
	users        map[[3]string]activation.DirectoryUser
	outOfScope   map[[3]string]bool
	disconnected bool
	calls        int
}

func newFakeDirectory() *fakeDirectory {
	return &fakeDirectory{users: map[[3]string]activation.DirectoryUser{}, outOfScope: map[[3]string]bool{}}
}

func (f *fakeDirectory) add(mapping, domain, login, stableID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[[3]string{mapping, domain, login}] = activation.DirectoryUser{
		StableID: stableID, Login: login, Domain: domain, Email: login + "@" + domain, DisplayName: "User " + login,
	}
}

func (f *fakeDirectory) setConnected(c bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.disconnected = !c
}

func (f *fakeDirectory) LookupUser(_ context.Context, q activation.Lookup) (activation.DirectoryUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	k := [3]string{q.MappingID, q.Domain, q.Login}
	switch {
	case f.disconnected:
		return activation.DirectoryUser{}, fmt.Errorf("tunnel: tenant %s: %w", q.Tenant, activation.ErrDirectoryUnavailable)
	case f.outOfScope[k]:
		return activation.DirectoryUser{}, fmt.Errorf("adapter: %w", activation.ErrOutOfScope)
	}
	u, ok := f.users[k]
	if !ok {
		return activation.DirectoryUser{}, fmt.Errorf("adapter: %w", activation.ErrUserNotFound)
	}
	return u, nil
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// auditLog records every event.
type auditLog struct {
	mu     sync.Mutex
	events []activation.Event
}

func (a *auditLog) Audit(_ context.Context, e activation.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) last() activation.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events[len(a.events)-1]
}

func (a *auditLog) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

type store interface {
	activation.Store
	activation.TokenStore
}

// stores returns a fresh store of every kind, by name.
func stores(t testing.TB) map[string]func(t testing.TB) store {
	return map[string]func(t testing.TB) store{
		"memory": func(testing.TB) store { return activation.NewMemoryStore() },
		"sqlite": func(t testing.TB) store { return newSQLiteStore(t) },
		"postgres": func(t testing.TB) store {
			s := activation.NewSQLStore(sqlstoretest.Open(t, activation.Postgres), activation.Postgres)
			require.NoError(t, s.Migrate(context.Background()))
			return s
		},
	}
}

func newSQLiteStore(t testing.TB) *activation.SQLStore {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "activation.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	db, err := sql.Open("sqlite", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	s := activation.NewSQLStore(db, activation.SQLite)
	require.NoError(t, s.Migrate(context.Background()))
	require.NoError(t, s.Migrate(context.Background()), "Migrate must be idempotent")
	return s
}

type harness struct {
	svc   *activation.Service
	dir   *fakeDirectory
	clock *fakeClock
	audit *auditLog
	store store
	token string // valid token of tenant "t1", mapping "m1"
	tokID string
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newHarness(t testing.TB, st store, mutate ...func(*activation.Config)) *harness {
	t.Helper()
	h := &harness{dir: newFakeDirectory(), clock: &fakeClock{now: t0}, audit: &auditLog{}, store: st}
	cfg := activation.Config{
		Directory: h.dir, Store: st, Tokens: st,
		CredentialKey: []byte("0123456789abcdef0123456789abcdef"),
		Audit:         h.audit, Now: h.clock.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	svc, err := activation.New(cfg)
	require.NoError(t, err)
	h.svc = svc
	tok, rec, err := svc.IssueToken(context.Background(), "t1", "m1", 24*time.Hour)
	require.NoError(t, err)
	h.token, h.tokID = tok, rec.ID
	h.dir.add("m1", "corp.example", "alice", "guid-alice")
	return h
}

type device struct {
	id   string
	priv ed25519.PrivateKey
}

func newDevice(t testing.TB, id string) device {
	_, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	return device{id: id, priv: priv}
}

func (d device) request(tenant, token, login, domain string) activation.Request {
	r := activation.Request{
		Tenant: tenant, Token: token, Login: login, Domain: domain,
		Hostname: "host-" + d.id, DeviceID: d.id, Source: "192.0.2.1",
	}
	r.Sign(d.priv)
	return r
}

func ed25519Sign(d device, msg []byte) []byte { return ed25519.Sign(d.priv, msg) }
