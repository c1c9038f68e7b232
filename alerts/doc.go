// Package alerts raises, deduplicates, stores and notifies alerts on the
// cloud side, above all "Not Connected": a tenant that has had no live
// connector for a grace period.
//
// Use [New] with a [Config], run [Monitor.Run] in a goroutine, and feed
// the monitor events: [Monitor.Connected] and [Monitor.Disconnected] from
// the tunnel's presence callbacks, [Monitor.Register] for every tenant that
// should have a connector, and [Monitor.DirectoryAuthFailed],
// [Monitor.KeyReleaseFailed], [Monitor.CredentialExpires],
// [Monitor.DirectoryFailed] and [Monitor.DirectoryOK] from the services
// that see those conditions ([KindDirectoryUnavailable] follows the
// outcome of real directory operations: raised by a failure to reach or
// bind the directory, resolved by the next success). Event methods never block.
//
// The package does not know about tunnels, directories or keys (the
// composition wires them), does not page anyone itself, and does not
// evaluate arbitrary rules: each [Kind] has its own small detector.
//
// # Presence and grace
//
// Presence is per tenant, not per socket. Each connector may have several
// live sessions at once (a make-before-break move between nodes), so a
// disconnect on the old node after a connect on the new one changes
// nothing. When the last session of a tenant ends, a grace timer starts
// (default 60 s); a connect within it cancels it, so reconnects and node
// moves raise nothing. When it fires, [KindNotConnected] opens; the next
// connect resolves it. A registered tenant that never connects is alerted
// after the same grace period.
//
// # Alerts, dedupe and history
//
// An [Alert] has a kind, tenant, subject, severity, first and last seen
// times, resolution time and count. At most one alert per (tenant, kind,
// subject) is open; raising it again increments its count. Once resolved,
// the same condition opens a new alert, so the [Store] keeps the history.
// [MemoryStore] and [SQLStore] (database/sql; tested on SQLite, written
// for PostgreSQL too) implement it.
//
// # Notifiers
//
// A [Notifier] hears each alert open and resolve (not each repeat), on the
// Run goroutine. [Webhook] POSTs signed JSON (HMAC-SHA256 over a timestamp
// and the body, see [VerifySignature]) with retries and exponential
// backoff from a bounded queue, so a slow or failing receiver never delays
// detection: a full queue drops and counts. [LogNotifier] logs through
// log/slog. [Notifiers] fans out.
//
// # Time
//
// Timestamps and timers come from the runtime clock. Tests run the monitor
// inside testing/synctest, which makes that clock fake and deterministic.
package alerts
