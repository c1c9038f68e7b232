package importer

import (
	"context"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a Store, CheckpointStore and ScheduleStore in memory, for
// tests, examples and processes that may lose their state. It is safe for
// concurrent use.
type MemoryStore struct {
	mu          sync.Mutex
	users       map[Scope]map[string]Record
	checkpoints map[Scope]Checkpoint
	next        map[string]time.Time
}

var (
	_ Store           = (*MemoryStore)(nil)
	_ CheckpointStore = (*MemoryStore)(nil)
	_ ScheduleStore   = (*MemoryStore)(nil)
)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		users:       make(map[Scope]map[string]Record),
		checkpoints: make(map[Scope]Checkpoint),
		next:        make(map[string]time.Time),
	}
}

// Users implements Store, in directory ID order.
func (m *MemoryStore) Users(ctx context.Context, s Scope, fn func(Record) error) error {
	m.mu.Lock()
	recs := make([]Record, 0, len(m.users[s]))
	for _, r := range m.users[s] {
		recs = append(recs, r)
	}
	m.mu.Unlock()
	slices.SortFunc(recs, func(a, b Record) int {
		switch {
		case a.DirectoryID < b.DirectoryID:
			return -1
		case a.DirectoryID > b.DirectoryID:
			return 1
		}
		return 0
	})
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// User implements Store.
func (m *MemoryStore) User(_ context.Context, s Scope, id string) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.users[s][id]
	return r, ok, nil
}

// Apply implements Store; a batch is applied atomically.
func (m *MemoryStore) Apply(_ context.Context, s Scope, ops []Op) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[s]
	if u == nil {
		u = make(map[string]Record)
		m.users[s] = u
	}
	for _, op := range ops {
		if op.Kind == OpDelete {
			delete(u, op.Record.DirectoryID)
			continue
		}
		r := op.Record
		r.Groups = slices.Clone(r.Groups)
		u[r.DirectoryID] = r
	}
	return nil
}

// LoadCheckpoint implements CheckpointStore.
func (m *MemoryStore) LoadCheckpoint(_ context.Context, s Scope) (*Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.checkpoints[s]
	if !ok {
		return nil, nil
	}
	return &c, nil
}

// SaveCheckpoint implements CheckpointStore.
func (m *MemoryStore) SaveCheckpoint(_ context.Context, s Scope, c Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.Plan == nil {
		c.Plan = m.checkpoints[s].Plan
	}
	m.checkpoints[s] = c
	return nil
}

// ClearCheckpoint implements CheckpointStore.
func (m *MemoryStore) ClearCheckpoint(_ context.Context, s Scope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.checkpoints, s)
	return nil
}

// NextRun implements ScheduleStore.
func (m *MemoryStore) NextRun(_ context.Context, tenant string) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.next[tenant]
	return t, ok, nil
}

// SetNextRun implements ScheduleStore.
func (m *MemoryStore) SetNextRun(_ context.Context, tenant string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.next[tenant] = at
	return nil
}
