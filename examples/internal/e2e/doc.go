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
// # What it won't do
//
// It runs one cloud node and one connector per Stack, keeps the cloud's
// database in a temporary directory, and is not an API for products: the
// packages it composes are.
package e2e
