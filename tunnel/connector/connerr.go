package connector

import (
	"errors"
	"fmt"

	"github.com/liaisonhq/liaison/tunnel"
)

// warnFailures is how many consecutive failed connects are logged at WARN
// before the next ones are logged at ERROR: one failure is often a blip
// (a cloud restart), a run of them needs an operator.
const warnFailures = 3

// ConnectError is the tunnel's error of a failed connect with the fix in
// this program's settings (cloud.proxy_url, cloud.ca_file). It is the Err of
// the Status that Agent.Status and Config.OnStatus report when the tunnel
// classified the failure; errors.Is and errors.As see the tunnel's error
// (tunnel.ErrProxyAuth, tunnel.ErrUntrustedCertificate,
// tunnel.ErrUpgradeRefused, *tunnel.ConnectError).
type ConnectError struct {
	Fix string // what to do, naming the setting
	Err error  // the tunnel's error
}

func (e *ConnectError) Error() string { return "connector: " + e.Fix }
func (e *ConnectError) Unwrap() error { return e.Err }

// withFix returns err as a *ConnectError when the tunnel classified it,
// else err unchanged.
func withFix(err error) error {
	var ce *tunnel.ConnectError
	if !errors.As(err, &ce) {
		return err
	}
	var fix string
	switch {
	case errors.Is(ce, tunnel.ErrProxyAuth):
		fix = fmt.Sprintf("the proxy %s refused the credentials (HTTP 407 Proxy Authentication Required): check the user and password in cloud.proxy_url (or HTTPS_PROXY when cloud.proxy_url is empty)", ce.Proxy)
	case errors.Is(ce, tunnel.ErrUntrustedCertificate):
		fix = fmt.Sprintf("the certificate presented for the cloud was issued by %q, which this connector does not trust: if a TLS-inspecting proxy is in the path, add that CA's certificate (%s) to cloud.ca_file", ce.Issuer, ce.Issuer)
	case errors.Is(ce, tunnel.ErrUpgradeRefused):
		fix = fmt.Sprintf("the WebSocket upgrade was answered with HTTP %d instead of 101: a proxy or firewall between the connector and the cloud removed the WebSocket upgrade; allow WebSocket (the Upgrade: websocket and Connection: Upgrade headers) to %s", ce.Status, ce.URL)
	default:
		return err
	}
	return &ConnectError{Fix: fix, Err: err}
}
