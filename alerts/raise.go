package alerts

import (
	"context"
	"time"
)

// Raise opens (or repeats) an alert the [Monitor] has no method for (an
// import refused by its threshold, say) in store, and notifies n when it
// opened. A repeat only counts.
func Raise(ctx context.Context, store Store, n Notifier, a Alert, at time.Time) error {
	stored, opened, err := store.Raise(ctx, a, at)
	if err != nil || !opened {
		return err
	}
	return n.Notify(ctx, Notification{Event: EventRaised, Alert: stored})
}

// Resolve closes the open alert of a key, if any, and notifies n when it
// closed one.
func Resolve(ctx context.Context, store Store, n Notifier, tenant string, kind Kind, subject string, at time.Time) error {
	stored, closed, err := store.Resolve(ctx, tenant, kind, subject, at)
	if err != nil || !closed {
		return err
	}
	return n.Notify(ctx, Notification{Event: EventResolved, Alert: stored})
}
