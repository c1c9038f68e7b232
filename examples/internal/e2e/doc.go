// Package e2e assembles a whole Liaison deployment in one process, for the
// quickstart and the end-to-end tests: the cloud endpoint
// (examples/internal/cloudapp) on a loopback TLS listener with a CA made
// at start-up, and a connector (package tunnel/connector) enrolled
// with a one-time token and reaching the cloud through the real tunnel,
// serving a directory and a keyring. Certificates are verified everywhere.
//
// Use [Start] with the connector's directory settings, then drive the cloud
// through [Stack.Cloud] as an administrator, a device or a web user would;
// [Stack.StopConnector] and [Stack.StartConnector] take the connector away
// and bring it back, and [Stack.Alerts] delivers the cloud's alert
// notifications in order.
//
// # Tests
//
// The tests in this package run the "must show" list through the
// tunnel against the real OpenLDAP and Samba AD test servers
// (directory/directorytest): they skip when the servers are not started,
// and fail under CI=true.
//
// The attacker suite of issue 9 (attack_test.go) puts a hostile
// TLS-inspecting HTTP CONNECT proxy in process between connector and cloud,
// with its CA in the connector's cloud.ca_file. The connector is set up as
// a deployment is: enrolled through the proxy with a lenr2_ token from the
// cloud, pinning the cloud key and keeping the job-ticket key the cloud
// signed with it in its identity file. The proxy records every plaintext
// byte it relays (WebSocket payloads unmasked) and the tests search them
// for passwords, the released ekey, the KEK (read from an escrow export
// with Debian's age), the connector's private keys, and the logins, mail
// addresses, DNs and directory IDs of an import, in raw, hex and base64
// forms. The proxy also knows the cloud's public key and tries, through
// tunnel protocol v2 (tunnel/SPEC.md, section 9): to take over the tunnel
// with a captured connect token (its own tunnel client, and a
// hand-made v2 handshake over the captured token signed by its own key,
// which the gateway must close with 1008 and register nothing); to rewrite
// keys, verdicts, import data and lookups in flight (the plaintext is never
// there to rewrite; a blind bit flip must kill the session, the caller get
// tunnel.ErrSessionLost or a truthful answer over a new session, and the
// cloud import or bind nothing forged); to replay connect tokens (401) and
// recorded enrollments, as they were (a spent token: 401) or with its own
// key (the sealed token does not open: 400); and to enroll its own key.
// The tests drive only public surfaces (cloudapp, tunnel/connector, tunnel's
// connector, HTTP, and the WebSocket as SPEC.md defines it). They need no
// server.
//
// squid_test.go runs a connector through the test bed's Squid
// (scripts/testbed/squid-up: Basic auth, ssl_bump with its own CA, WebSocket
// upgrades passed) trusting only Squid's CA, and checks enrollment, web
// login, import and key release; and that the second Squid, which strips
// upgrades, lets enrollment through and stops the tunnel. They skip when
// LIAISON_TEST_SQUID_URL is not set, and fail under CI=true.
//
// socks_test.go does the same through the test bed's SOCKS5 proxy
// (scripts/testbed/socks-up: Dante with RFC 1929 username/password), with
// TLS end to end to the cloud, checks that a wrong proxy password is refused
// at enrollment and for the tunnel with an error naming the option, and
// reads danted's log for the relayed connections. It skips when
// LIAISON_TEST_SOCKS_URL is not set, and fails under CI=true.
//
// # What it won't do
//
// It runs one cloud node and one connector per Stack, keeps the cloud's
// database in a temporary directory, and is not an API for products: the
// packages it composes are.
package e2e
