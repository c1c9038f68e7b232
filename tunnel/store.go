package tunnel

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"sync"
	"time"
)

// ConnectorRecord is what a gateway knows about an enrolled connector.
type ConnectorRecord struct {
	ID        string
	Tenant    string
	PublicKey ed25519.PublicKey
	Enrolled  time.Time
	Revoked   bool
}

// EnrollmentRecord is an issued enrollment token, kept only as a hash.
type EnrollmentRecord struct {
	Hash    [32]byte // SHA-256 of the token
	Tenant  string
	Expires time.Time
}

// Store keeps enrollment tokens and connectors for a [Gateway]. It is
// declared here because the gateway consumes it; [MemoryStore] implements it
// and a product can back it with SQL.
type Store interface {
	// PutEnrollment saves an issued enrollment token.
	PutEnrollment(ctx context.Context, rec EnrollmentRecord) error
	// ConsumeEnrollment atomically removes the token with hash h and
	// returns it; it returns ErrBadEnrollmentToken if there is none or it
	// expired before now.
	ConsumeEnrollment(ctx context.Context, h [32]byte, now time.Time) (EnrollmentRecord, error)
	// PutConnector creates or replaces a connector record.
	PutConnector(ctx context.Context, rec ConnectorRecord) error
	// Connector returns a connector record, or ErrUnknownConnector.
	Connector(ctx context.Context, id string) (ConnectorRecord, error)
}

// MemoryStore is an in-memory [Store] for tests and single-node setups.
type MemoryStore struct {
	mu          sync.Mutex
	enrollments map[[32]byte]EnrollmentRecord
	connectors  map[string]ConnectorRecord
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		enrollments: make(map[[32]byte]EnrollmentRecord),
		connectors:  make(map[string]ConnectorRecord),
	}
}

// PutEnrollment implements [Store].
func (m *MemoryStore) PutEnrollment(_ context.Context, rec EnrollmentRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enrollments[rec.Hash] = rec
	return nil
}

// ConsumeEnrollment implements [Store].
func (m *MemoryStore) ConsumeEnrollment(_ context.Context, h [32]byte, now time.Time) (EnrollmentRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.enrollments[h]
	if !ok || subtle.ConstantTimeCompare(rec.Hash[:], h[:]) != 1 {
		return EnrollmentRecord{}, ErrBadEnrollmentToken
	}
	delete(m.enrollments, h)
	if !now.Before(rec.Expires) {
		return EnrollmentRecord{}, ErrBadEnrollmentToken
	}
	return rec, nil
}

// PutConnector implements [Store].
func (m *MemoryStore) PutConnector(_ context.Context, rec ConnectorRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connectors[rec.ID] = rec
	return nil
}

// Connector implements [Store].
func (m *MemoryStore) Connector(_ context.Context, id string) (ConnectorRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.connectors[id]
	if !ok {
		return ConnectorRecord{}, ErrUnknownConnector
	}
	return rec, nil
}
