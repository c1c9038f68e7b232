package alerts

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"
)

// MemoryStore is an in-memory [Store] keeping the whole history. It is
// safe for concurrent use.
type MemoryStore struct {
	mu     sync.Mutex
	alerts []Alert     // in order of creation
	open   map[key]int // index into alerts
	next   int
}

type key struct {
	tenant  string
	kind    Kind
	subject string
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{open: make(map[key]int)} }

// Raise implements [Store].
func (m *MemoryStore) Raise(_ context.Context, a Alert, at time.Time) (Alert, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{a.Tenant, a.Kind, a.Subject}
	if i, ok := m.open[k]; ok {
		cur := &m.alerts[i]
		cur.LastSeen, cur.Severity, cur.Message = at, a.Severity, a.Message
		cur.Count++
		return *cur, false, nil
	}
	m.next++
	a.ID = strconv.Itoa(m.next)
	a.FirstSeen, a.LastSeen, a.ResolvedAt, a.Count = at, at, time.Time{}, 1
	m.alerts = append(m.alerts, a)
	m.open[k] = len(m.alerts) - 1
	return a, true, nil
}

// Resolve implements [Store].
func (m *MemoryStore) Resolve(_ context.Context, tenant string, kind Kind, subject string, at time.Time) (Alert, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{tenant, kind, subject}
	i, ok := m.open[k]
	if !ok {
		return Alert{}, false, nil
	}
	delete(m.open, k)
	m.alerts[i].ResolvedAt = at
	return m.alerts[i], true, nil
}

// List implements [Store].
func (m *MemoryStore) List(_ context.Context, f Filter) ([]Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for _, a := range slices.Backward(m.alerts) {
		if (f.Tenant != "" && a.Tenant != f.Tenant) || (f.Kind != "" && a.Kind != f.Kind) || (f.OpenOnly && !a.Open()) {
			continue
		}
		out = append(out, a)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}
