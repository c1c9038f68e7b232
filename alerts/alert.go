package alerts

import (
	"context"
	"errors"
	"time"
)

// Kind names what an alert is about.
type Kind string

const (
	// KindNotConnected: a tenant has had no live connector for the grace
	// period (or never had one). Subject is [SubjectConnectors].
	KindNotConnected Kind = "not_connected"
	// KindDirectoryAuthFailures: authentication against the directory
	// failed at least the threshold number of times within the window.
	// Subject is what failed (a connector ID or a service account).
	KindDirectoryAuthFailures Kind = "directory_auth_failures"
	// KindDirectoryUnavailable: real directory operations of a connected
	// connector fail because the directory cannot be used: no server
	// reachable, or the service account's bind refused. Subject is the
	// connector ID. The next successful operation resolves it.
	KindDirectoryUnavailable Kind = "directory_unavailable"
	// KindKeyReleaseFailed: a key release failed because no connector of
	// the tenant was connected, so a backup could not run. Subject names the
	// backup or user.
	KindKeyReleaseFailed Kind = "key_release_failed"
	// KindCredentialExpiring: a connector key or certificate expires soon
	// (or has expired). Subject names it.
	KindCredentialExpiring Kind = "credential_expiring"
)

// SubjectConnectors is the subject of [KindNotConnected] alerts: the
// tenant's connectors as a whole, since presence is per tenant.
const SubjectConnectors = "connectors"

// Severity ranks alerts.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Alert is one occurrence of a condition, from first seen to resolved.
// Open alerts are unique per (Tenant, Kind, Subject); raising an open alert
// again bumps LastSeen and Count. After it resolves, the same condition
// opens a new alert, so the store keeps the history.
type Alert struct {
	ID         string    `json:"id"`
	Kind       Kind      `json:"kind"`
	Tenant     string    `json:"tenant"`
	Subject    string    `json:"subject"`
	Severity   Severity  `json:"severity"`
	Message    string    `json:"message"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"` // zero while open
	Count      int       `json:"count"`
}

// Open reports whether the alert is not resolved.
func (a Alert) Open() bool { return a.ResolvedAt.IsZero() }

// Event says what happened to an alert in a [Notification].
type Event string

const (
	EventRaised   Event = "raised"
	EventResolved Event = "resolved"
)

// Notification is what a [Notifier] receives: once when an alert opens and
// once when it resolves, not on every repeat.
type Notification struct {
	Event Event `json:"event"`
	Alert Alert `json:"alert"`
}

// Notifier delivers notifications. The monitor calls it on its own
// goroutine; an implementation that may block must queue, as [Webhook] does.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Notifiers sends each notification to every notifier in order and returns
// their errors joined.
type Notifiers []Notifier

var _ Notifier = Notifiers(nil)

// Notify implements [Notifier].
func (ns Notifiers) Notify(ctx context.Context, n Notification) error {
	var errs []error
	for _, x := range ns {
		if err := x.Notify(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Filter selects alerts from a [Store]. Zero fields match everything.
type Filter struct {
	Tenant   string
	Kind     Kind
	OpenOnly bool
	Limit    int // most recent first; 0 means no limit
}

// Store keeps alerts and their history.
//
// Raise opens an alert for (a.Tenant, a.Kind, a.Subject) with FirstSeen and
// LastSeen set to at, or, if one is open, sets its LastSeen to at, its
// Severity and Message to a's, and increments its Count. It returns the
// stored alert and whether it was opened by this call.
//
// Resolve closes the open alert for the key at the given time and returns
// it, with false if none was open.
//
// List returns alerts matching f, most recently first seen first.
type Store interface {
	Raise(ctx context.Context, a Alert, at time.Time) (Alert, bool, error)
	Resolve(ctx context.Context, tenant string, kind Kind, subject string, at time.Time) (Alert, bool, error)
	List(ctx context.Context, f Filter) ([]Alert, error)
}
