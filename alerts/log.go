package alerts

import (
	"context"
	"log/slog"
)

// LogNotifier is a [Notifier] that logs each notification: raised at Warn,
// resolved at Info.
type LogNotifier struct {
	logger *slog.Logger
}

var _ Notifier = (*LogNotifier)(nil)

// NewLogNotifier returns a LogNotifier writing to logger (nil discards).
func NewLogNotifier(logger *slog.Logger) *LogNotifier {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LogNotifier{logger: logger}
}

// Notify implements [Notifier]; it never fails.
func (l *LogNotifier) Notify(ctx context.Context, n Notification) error {
	level := slog.LevelWarn
	if n.Event == EventResolved {
		level = slog.LevelInfo
	}
	a := n.Alert
	l.logger.Log(ctx, level, "alert "+string(n.Event),
		"alert_id", a.ID, "kind", a.Kind, "tenant", a.Tenant, "subject", a.Subject,
		"severity", a.Severity, "message", a.Message, "count", a.Count,
		"first_seen", a.FirstSeen, "resolved_at", a.ResolvedAt)
	return nil
}
