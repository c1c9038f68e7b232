package activation

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryStore is an in-memory [Store] and [TokenStore], for tests, examples
// and single-process deployments that can lose their state. It is safe for
// concurrent use.
type MemoryStore struct {
	mu      sync.Mutex
	users   map[userKey]User
	devices map[deviceKey]Device
	tokens  map[string]TokenRecord
}

type userKey struct{ tenant, directoryID string }
type deviceKey struct{ tenant, id string }

var (
	_ Store           = (*MemoryStore)(nil)
	_ TokenStore      = (*MemoryStore)(nil)
	_ UserStatusStore = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{users: make(map[userKey]User), devices: make(map[deviceKey]Device), tokens: make(map[string]TokenRecord)}
}

// Activate implements [Store].
func (m *MemoryStore) Activate(_ context.Context, u User, d Device) (Activation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var a Activation
	uk := userKey{u.Tenant, u.DirectoryID}
	existing, ok := m.users[uk]
	if ok {
		if existing.Disabled {
			return Activation{}, &DisabledError{Where: "cloud", Reason: "disabled"}
		}
		u = existing
	}
	dk := deviceKey{d.Tenant, d.ID}
	if old, ok := m.devices[dk]; ok {
		if old.UserID != u.ID || !old.PublicKey.Equal(d.PublicKey) {
			return Activation{}, fmt.Errorf("%w: device %q", ErrDeviceConflict, d.ID)
		}
		return Activation{User: u, Device: cloneDevice(old)}, nil
	}
	if !ok {
		m.users[uk] = u
		a.UserCreated = true
	}
	d.UserID = u.ID
	d.PublicKey = slices.Clone(d.PublicKey)
	m.devices[dk] = d
	a.User, a.Device, a.DeviceCreated = u, cloneDevice(d), true
	return a, nil
}

// Device implements [Store].
func (m *MemoryStore) Device(_ context.Context, tenant, id string) (Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[deviceKey{tenant, id}]
	if !ok {
		return Device{}, fmt.Errorf("%w: device %q", ErrNotFound, id)
	}
	return cloneDevice(d), nil
}

// CreateToken implements [TokenStore].
func (m *MemoryStore) CreateToken(_ context.Context, rec TokenRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tokens[rec.ID]; ok {
		return fmt.Errorf("activation: token %s already exists", rec.ID)
	}
	rec.Hash = slices.Clone(rec.Hash)
	m.tokens[rec.ID] = rec
	return nil
}

// Token implements [TokenStore].
func (m *MemoryStore) Token(_ context.Context, id string) (TokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.tokens[id]
	if !ok {
		return TokenRecord{}, ErrNotFound
	}
	return rec, nil
}

// RevokeToken implements [TokenStore]. Revoking twice keeps the first time.
func (m *MemoryStore) RevokeToken(_ context.Context, tenant, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.tokens[id]
	if !ok || rec.Tenant != tenant {
		return fmt.Errorf("%w: token %s", ErrNotFound, id)
	}
	if rec.RevokedAt.IsZero() {
		rec.RevokedAt = at
		m.tokens[id] = rec
	}
	return nil
}

func cloneDevice(d Device) Device {
	d.PublicKey = ed25519.PublicKey(slices.Clone(d.PublicKey))
	return d
}

// ListTokens returns tenant's token records, oldest first, for an admin
// listing (not part of [TokenStore]: the service never lists).
func (m *MemoryStore) ListTokens(_ context.Context, tenant string) ([]TokenRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []TokenRecord
	for _, rec := range m.tokens {
		if rec.Tenant == tenant {
			out = append(out, rec)
		}
	}
	slices.SortFunc(out, func(a, b TokenRecord) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// SetUserDisabled disables (or enables again) the user of tenant with that
// directory ID: Activate then refuses it. It returns an error wrapping
// [ErrNotFound] for an unknown user.
func (m *MemoryStore) SetUserDisabled(_ context.Context, tenant, directoryID string, disabled bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	uk := userKey{tenant, directoryID}
	u, ok := m.users[uk]
	if !ok {
		return fmt.Errorf("%w: user %q", ErrNotFound, directoryID)
	}
	u.Disabled = disabled
	m.users[uk] = u
	return nil
}

// UserDisabled implements [UserStatusStore]: userID is the cloud user ID
// ([User].ID).
func (m *MemoryStore) UserDisabled(_ context.Context, tenant, userID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, u := range m.users {
		if k.tenant == tenant && u.ID == userID {
			return u.Disabled, nil
		}
	}
	return false, fmt.Errorf("%w: user %q", ErrNotFound, userID)
}
