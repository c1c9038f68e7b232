// Package cloudapp is the cloud endpoint of the Liaison examples as a
// library: examples/cloud runs it from flags, and the quickstart and the
// end-to-end tests start it in-process.
//
// New(Config) opens the SQLite state, binds the TLS listener and wires the
// packages together; Run serves until its context ends; Close releases
// everything. The admin operations are Go methods (IssueEnrollmentToken,
// Connectors, PutMapping, RunImport, PreviewImport, IssueDeploymentToken,
// Login, ReleaseKey, RestoreKey, Alerts, ...) and the JSON admin API documented on
// Server.Handler (reference: docs/admin-api.md) calls the same methods.
//
// # What it wires
//
//   - tunnel: the gateway at PathTunnel and enrollment at PathEnroll, its
//     connector registry in tunnel/tunnelsql; presence (tunnel.Gateway.Live)
//     feeds the alerts monitor through alerts/alertstunnel (Not Connected
//     after Config.Grace) and the status page.
//   - directory/importer: imports per mapping through the tenant's
//     connector, the scheduler (a full import every 24 h with jitter,
//     incremental ones between with Config.ImportIncrementalInterval, next
//     runs kept in SQL, Config.ImportConcurrency tenants at once, each run
//     cut at Config.ImportTimeout and recorded as failed), users, mappings,
//     checkpoints and history in directory/importer/importersql (one run:
//     importersql.Store.Import), import-threshold and import-skipped
//     alerts. Users who left the directory or the mapping are disabled (or
//     deleted: the mapping's "removal" policy); the history and the status
//     page list each removal and its reason; a removed user's devices fail
//     authentication (activation.UserStatusStore, implemented by
//     importersql.ActivationStore) and backup releases are refused.
//     Every run is followed by an importer.Tracker: POST …/mappings/{id}/import
//     answers 202 Accepted with the run's ID and status URL (GET
//     …/imports/{run}: state, progress with phase, done, total, rate and
//     ETA, durations in seconds and as Go duration strings), through any
//     node: the tracker keeps runs in the database (importer.RunStore,
//     importersql); the status page shows the running ones.
//   - connector health: each connector's published info (tunnel
//     ConnectorInfo: version, host, its directory's last real operation)
//     in the admin API and on the status page; directory_unavailable
//     raised and resolved from it; POST …/connectors/{id}/check runs a
//     connection test through the connector.
//   - admin actions (every admin request but GET and HEAD) are logged with
//     the actor (the admin credential's kind and source address, plus an
//     unverified X-Liaison-Actor claim), tenant, path, status and time
//     taken; refused admin requests at WARN. Config.Logger decides the
//     format (the cloud program's --log-format json writes JSON lines).
//   - activation: the device endpoint at PathActivate, joined to the
//     cloud's users by importersql.ActivationStore (one transaction, or on
//     PostgreSQL for a user already stored a single write; a
//     refused activation leaves no user; a user disabled in the directory
//     or by the last import is refused with the public 403 of an unknown
//     user).
//   - keyenvelope/keyrelease: job tickets signed by the scheduler key
//     (served at PathSchedulerKey, signed by the tunnel identity, for
//     connectors to pin) and ekey releases through a connector; a release
//     without a connector raises an alert. ReleaseKey issues backup
//     tickets and refuses a user disabled in the cloud or, asked live, in
//     the directory (ErrUserDisabled); RestoreKey issues restore tickets
//     for the admin, disabled users included.
//   - alerts: SQLite store, log notifier unless Config.Notifier is set.
//   - metrics at PathMetrics (below, "Metrics").
//   - probes without authentication: PathHealthz answers 200 "ok" while the
//     process serves; PathReadyz answers 200 with a JSON Readiness when the
//     database answers and the server is not shutting down, 503 otherwise.
//
// The directory and key clients are built per tenant from a RoundTripper
// that reaches the tenant's connectors: by default directoryhttp and keyhttp
// clients of ConnectorDirectoryURL and ConnectorKeysURL, where
// tunnel/connector serves them; Config.NewDirectory and
// Config.NewKeys replace them (tests, other connectors). Every request they
// send has a deadline: the caller's, or Config.RequestTimeout (default 30 s;
// imports Config.ImportTimeout, default 1 h), so a connector that accepts a
// request and never answers cannot hold a caller, or the scheduler, forever.
//
// # SQLite under load
//
// SQLite has one writer at a time and its busy handler polls, so every write
// of the cloud's stores queues, in order, on one in-process gate (their
// Config.Writes) and SQLite's busy timeout (10 s) only arbitrates other
// writers. A request that still fails with an internal error is logged at
// error level with its cause; the device or admin sees a 500.
//
// # Web login and lockout
//
// Server.Login goes through a directory/loginguard Guard: the typed name is
// resolved to the account's stable ID before any bind, and failures are
// counted per account, so sAMAccountName, UPN, mail, case and spacing
// variants of one name share one count; the check is bound to that ID on
// the connector (a name that moved to another account meanwhile is refused
// before any bind). After Config.LoginMaxFailures (default 3) within
// Config.LoginWindow (default 30 minutes) the directory is not asked again:
// with the count below the domain's lockout threshold and the window at
// least its lockout observation window, the cloud can never lock an
// account, whatever is thrown at the login endpoint. Names that resolve to
// nothing count per typed name (folded) and get the same answers. The HTTP
// endpoint also limits failures per source address (IPv6 per /64,
// Config.LoginSourceMaxFailures), against sprays of a few guesses over many
// accounts. Attempts in flight count as failures until they end.
// The counters live in memory: a restart forgets them.
//
// Passwords cross the tunnel sealed (HPKE) to the key the chosen connector
// publishes at ConnectorStatusURL, through directoryhttp.SealedChecker: the
// check goes to that connector only, and a connector that publishes no key
// gets no password (ErrNoCredentialsKey).
//
// # Security
//
// TLS 1.3 only, and the tunnel does not rely on it (package tunnel's
// threat model): the gateway's identity is derived from the secret
// "tunnel_identity_seed", generated on first start and sealed like the
// others below; connectors pin its public key (shown as
// cloud_key_fingerprint beside each enrollment token), so it must survive
// restarts and be the same on every node. The scheduler key at
// PathSchedulerKey is served signed by it. The admin token is kept as a
// SHA-256 and compared in constant time. Enrollment and deployment tokens
// are stored hashed by their packages.
//
// Files. The database (Config.DBPath) is created with mode 0600 whatever the
// umask, and SQLite gives its -wal and -shm files the same mode; files of an
// existing database found readable by group or others are set to 0600 at
// start, with a warning in the log. The master key file is created 0600 and
// tightened the same way. Config.CAOut is a public certificate (0644).
//
// Self-signed mode. Without a configured certificate the cloud makes a CA on
// first start and keeps it in the database, its key sealed as the secret
// "self_signed_ca": restarts and other nodes on the same database serve
// certificates from the same CA, so connectors that trust it
// (cloud.ca_file) stay connected. The server certificate is issued from it
// at every start for 90 days and renewed during a TLS handshake once less
// than a third of that remains. The CA lasts 10 years and is never renewed
// by the cloud; a warning is logged at start when it has less than 90 days.
//
// Secrets. The secrets the cloud makes on first start (the scheduler's
// Ed25519 seed, the activation credential key, the tunnel identity seed, the
// self-signed CA) are sealed in the database under the master key file,
// Config.MasterKeyFile (default DBPath + ".key"; masterkey.LoadSecrets).
// The database file alone reveals none of them. Secrets an older version
// kept in the clear are sealed and erased at the first start
// (masterkey.Secrets.SealClearSettings; old backups still hold them:
// rotate the signing key if those backups were exposed). A start with a
// missing master key file over a database that holds sealed secrets fails
// instead of making new keys.
//
// Backups: the database and the master key file are both needed, and each
// is useless without the other. Back both up, and keep the copies apart (a
// backup holding both holds every secret).
//
// HTTP. Every endpoint has header, read, write and idle timeouts and a
// header size limit, and the listener a cap on open connections
// (Config.HTTP, package httpguard: 10s, 30s, 2m, 60s, 64 KiB, 4096 by
// default). A connection beyond the cap is closed at once. Tunnel sessions
// count against the cap and clear their deadlines once their connect token
// is verified, so they outlive every timeout; authenticated admin requests
// may take Config.AdminTimeout (1h) to answer.
//
// Admin API. Requests that change state (POST, PUT, DELETE under
// /v1/admin/) need "Authorization: Bearer <token>", a JSON Content-Type when
// they carry a body, and are refused when a browser marks them cross-origin
// (Sec-Fetch-Site, or an Origin that is not the Host): HTTP basic auth, which
// browsers cache and replay to any page's requests, never authorizes a
// change, and neither can an HTML form or a cross-site fetch. Reads (GET,
// the status page at /) also accept the token as the basic-auth password so
// an admin can open the status page in a browser; they change nothing.
//
// # Metrics
//
// PathMetrics (/metrics) serves Prometheus text format from the cloud's own
// registry (not the client library's global one, so no Go runtime or
// process series). It needs the admin token, as Bearer or, since it is a
// read, as the basic-auth password (Prometheus' authorization or
// basic_auth settings); Config.MetricsPublic (--metrics-public) serves it
// without authentication, for a scraper on a trusted network: the series
// carry tenant names and counts, never users, logins or keys. The series:
//
//   - liaison_connectors_live: connectors with a live tunnel session on
//     this node (a gauge read at scrape time).
//   - liaison_tenant_connectors_live{tenant}: the same per tenant, served
//     only while at most Config.MetricsTenantLabels tenants (default 100,
//     --metrics-tenant-labels; negative: never) have a live connector;
//     above the cap the per-tenant series disappear and only the total is
//     served, so the number of series stays bounded.
//   - liaison_tunnel_requests_total{operation,outcome} and
//     liaison_tunnel_request_duration_seconds{operation} (histogram, time
//     to the answer's headers): every request the cloud sends a connector,
//     operation from the path (directory/info, directory/naming-contexts,
//     directory/ous, directory/groups, directory/users, directory/changes,
//     directory/lookup, directory/credentials, keys/generate, keys/rewrap,
//     keys/release, keys/public-key, status, keyshare, other), outcome
//     "ok" (an HTTP answer below 500) or "error".
//   - liaison_import_runs_total{outcome} (ok, refused, skipped, failed)
//     and liaison_import_users_applied_total{op} (create, update, disable,
//     delete; successful runs only).
//   - liaison_activations_total{decision}: activation's audit decisions
//     (user_created, activated, repeated, refused, retry, token_issued,
//     token_revoked).
//   - liaison_web_logins_total{outcome}: ok, failed (wrong credentials,
//     unknown name or mapping), throttled, unavailable (no connector, the
//     directory failing).
//   - liaison_key_releases_total{purpose,outcome}: purpose backup or
//     restore; outcome ok, refused (disabled, unknown or invalid), unavailable
//     (no connector) or failed.
//   - liaison_alerts_open{kind}: open alerts, read from the alert store at
//     scrape time.
//
// Counters live in memory: a restart starts them at zero, which Prometheus'
// rate() handles. Each node of a cluster serves its own.
//
// # Key-share relay
//
// The connectors of a tenant share their keyring through the cloud without
// the cloud being able to read it (package keyenvelope, "Keyring
// sharing"; the runbook is in package tunnel/connector, "Sharing the
// keyring"). Each Config.KeyShareInterval (30s; negative: only on demand)
// Server.SyncKeyShares (keyenvelope/keyshare.Relay) posts to every live,
// non-revoked connector of each tenant the tenant's pending keyring
// requests, the sealed shares waiting for it and the list of live connectors with the KEK version numbers each
// reported, and queues the shares it answers with for their recipients. A
// request is relayed only when it carries the connector's enrolled tunnel
// key; a share only when its public header names this tenant, the sending
// connector and its enrolled key, and a live, non-revoked recipient of the
// tenant. These checks are hygiene, not the security of the scheme: the
// connectors trust only fingerprints a person compared. The relay's state
// is in memory and rebuilt from the connectors' answers after a restart.
// Server.KeySharePeers says which versions each connector holds (numbers
// only), for promotion; the admin API serves it at GET
// /v1/admin/tenants/{tenant}/key-share, and POST .../key-share/rounds runs
// a round now (two bring a new connector's request to the others).
//
// # Rotating the ticket signing key
//
// The scheme is keyenvelope/keyrelease's ("Rotating the ticket signing
// key"); here: prepare with POST /v1/admin/scheduler-keys/next
// (Server.PrepareSchedulerKey), add the next key to every connector's
// keys.extra_scheduler_public_keys, restart the cloud once with
// Config.PromoteSchedulerKey (--promote-scheduler-key; a start with it but
// no prepared key fails), set keys.scheduler_public_key on every connector
// and empty the extra keys, then retire with DELETE
// /v1/admin/scheduler-keys/previous (Server.RetireSchedulerKey). Connectors
// missed before the promotion answer key releases with invalid_ticket; the
// master key itself is not rotated.
//
// # What it won't do
//
// It is one node (the tunnel's MemoryRouter), has one admin token for every
// tenant, and no user-facing UI beyond the status page.
package cloudapp
