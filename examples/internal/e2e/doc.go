// Package e2e assembles a whole Liaison deployment in one process, for the
// quickstart and the end-to-end tests: the cloud endpoint
// (examples/internal/cloudapp) on a loopback TLS listener with a CA made
// at start-up, and a connector (examples/internal/connectorapp) enrolled
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
// with its CA in the connector's cloud.ca_file: it records every plaintext
// byte it relays (WebSocket payloads unmasked) and searches them for
// passwords, the released ekey, the KEK (read from an escrow export with
// Debian's age) and the connector's private keys in raw, hex and base64
// forms; it takes over the tunnel with a captured connect token and serves
// forged directory answers; it rewrites answers and keys in flight; it
// replays connect and enrollment tokens. The tests drive only public
// surfaces (cloudapp, connectorapp, tunnel's connector, HTTP), so they judge
// behaviour whatever the protocol inside the WebSocket is. They need no
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
