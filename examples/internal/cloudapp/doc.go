// Package cloudapp is the cloud endpoint of the Liaison examples as a
// library: examples/cloud runs it from flags, and the quickstart and the
// end-to-end tests start it in-process.
//
// New(Config) opens the SQLite state, binds the TLS listener and wires the
// packages together; Run serves until its context ends; Close releases
// everything. The admin operations are Go methods (IssueEnrollmentToken,
// Connectors, PutMapping, RunImport, PreviewImport, IssueDeploymentToken,
// Login, ReleaseKey, RestoreKey, Alerts, ...) and the JSON admin API documented on
// Server.Handler calls the same methods.
//
// # What it wires
//
//   - tunnel: the gateway at PathTunnel and enrollment at PathEnroll, its
//     connector registry in SQLite (tunnel ships only a memory store);
//     presence events feed the alerts monitor (Not Connected after
//     Config.Grace) and the status page.
//   - directory/importer: imports per mapping through the tenant's
//     connector, the scheduler (every 24 h with jitter, next runs kept in
//     SQLite, Config.ImportConcurrency tenants at once, each run cut at
//     Config.ImportTimeout and recorded as failed), import-threshold and
//     import-skipped alerts.
//   - activation: the device endpoint at PathActivate, its SQL store joined
//     to the cloud's users so an imported user and an activated one are the
//     same user; the cloud user row is written in activation's transaction
//     (a refused activation leaves no user). A user disabled in the
//     directory (the connector's lookup) or in the cloud's table (the last
//     import) is refused with the public 403 of an unknown user.
//   - keyenvelope: job tickets signed by the cloud's scheduler key (served
//     at PathSchedulerKey for connectors to pin) and ekey releases through
//     a connector; a release without a connector raises an alert.
//     ReleaseKey issues backup tickets and refuses a user disabled in the
//     cloud or, asked live, in the directory (ErrUserDisabled); RestoreKey
//     issues restore tickets for the admin, disabled users included.
//   - alerts: SQLite store, log notifier unless Config.Notifier is set.
//
// The directory and key clients are built per tenant from a RoundTripper
// that reaches the tenant's connectors: by default directoryhttp and keyhttp
// clients of ConnectorDirectoryURL and ConnectorKeysURL, where
// examples/internal/connectorapp serves them; Config.NewDirectory and
// Config.NewKeys replace them (tests, other connectors). Every request they
// send has a deadline: the caller's, or Config.RequestTimeout (default 30 s;
// imports Config.ImportTimeout, default 1 h), so a connector that accepts a
// request and never answers cannot hold a caller, or the scheduler, forever.
//
// # SQLite under load
//
// SQLite has one writer at a time and its busy handler polls, so under a storm
// of concurrent activations waiting writers starve and time out. Every write of
// this package therefore queues, in order, on one in-process gate and SQLite's
// busy timeout (10 s) only arbitrates other writers (the alerts store, other
// processes). A request that still fails with an internal error is logged at
// error level with its cause; the device or admin sees a 500.
//
// # Web login and lockout
//
// Server.Login counts failed attempts per account and stops asking the
// directory after Config.LoginMaxFailures (default 3) within
// Config.LoginWindow (default 30 minutes): with the count below the domain's
// lockout threshold and the window at least its lockout observation window,
// the cloud can never lock an account, whatever is thrown at the login
// endpoint. The HTTP endpoint also limits failures per source address
// (Config.LoginSourceMaxFailures), against sprays of a few guesses over many
// accounts. Attempts in flight count as failures until they end.
// The counters live in memory: a restart forgets them.
//
// Passwords cross the tunnel sealed (HPKE) to the key the chosen connector
// publishes at ConnectorStatusURL, since a corporate proxy may inspect TLS;
// the check goes to that connector only (tunnel.Gateway.RoundTripperFor),
// because each connector has its own key. A connector that publishes no key
// gets the password inside TLS only.
//
// # Security
//
// TLS 1.3 only. The admin token is kept as a SHA-256 and compared in
// constant time. Enrollment and deployment tokens are stored hashed by their
// packages. The activation credential key and the scheduler's signing key
// are generated on first start and kept in the database: protect the file.
//
// # What it won't do
//
// It is one node (the tunnel's MemoryRouter), has one admin token for every
// tenant, and no user-facing UI beyond the status page.
package cloudapp
