package tunnel

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// connectorProxy returns the Transport.Proxy function for
// ConnectorConfig.ProxyURL: the environment's (HTTPS_PROXY / NO_PROXY) when
// raw is empty. Its errors never include the URL (it may carry a
// password).
func connectorProxy(raw string) (func(*http.Request) (*url.URL, error), error) {
	if raw == "" {
		return http.ProxyFromEnvironment, nil
	}
	pu, err := url.Parse(raw)
	if err != nil || pu.Host == "" || pu.Hostname() == "" {
		return nil, errors.New("tunnel: bad ConnectorConfig.ProxyURL: want http://, https://, socks5:// or socks5h://[user:pass@]host:port")
	}
	// url.Parse lowercases the scheme. http and https reach an HTTP proxy
	// (in clear or over TLS); socks5 resolves the gateway's name locally,
	// socks5h lets the proxy resolve it. All take user:password@.
	switch pu.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("tunnel: ConnectorConfig.ProxyURL scheme %q is not supported: want http://, https://, socks5:// or socks5h://[user:pass@]host:port", pu.Scheme)
	}
	return http.ProxyURL(pu), nil
}

// ErrProxyRefused reports that a SOCKS5 proxy refused the connector: bad
// credentials in ConnectorConfig.ProxyURL, none where the proxy wants
// some, or a rule of the proxy that does not let the connector reach the
// gateway. [Connector.Run] reports it in its Status.Err, wrapped in an
// error that says which.
var ErrProxyRefused = errors.New("tunnel: SOCKS5 proxy refused the connection")

// proxyRefusedError is an ErrProxyRefused that says why. It prints without
// the sentinel's "tunnel:" prefix, since it travels inside a "tunnel:
// connect" error.
type proxyRefusedError struct {
	why string
	err error // net/http's SOCKS error
}

func (e *proxyRefusedError) Error() string {
	return "SOCKS5 proxy refused the connection: " + e.why + ": " + e.err.Error()
}
func (e *proxyRefusedError) Unwrap() error        { return e.err }
func (e *proxyRefusedError) Is(target error) bool { return target == ErrProxyRefused }

// socksHints wraps the connector's transport so that the errors of Go's
// SOCKS5 client (net/http's internal one, whose error types are not
// exported) name what fixes them.
type socksHints struct{ rt http.RoundTripper }

func (h socksHints) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		err = socksHint(err)
	}
	return resp, err
}

// socksHint maps the errors of net/http's SOCKS5 client (a *net.OpError
// whose Op starts with "socks", wrapping plain errors.New texts) to one
// naming the setting to fix. Anything else is returned unchanged.
func socksHint(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || !strings.HasPrefix(op.Op, "socks") || op.Err == nil {
		return err
	}
	msg := op.Err.Error()
	var why string
	switch {
	case strings.Contains(msg, "username/password authentication failed"):
		why = "it rejected the user name or password in ConnectorConfig.ProxyURL (socks5://user:password@host:port)"
	case strings.Contains(msg, "no acceptable authentication methods"):
		why = "it accepts none of the authentication methods offered; if it wants a user name and password, put them in ConnectorConfig.ProxyURL (socks5://user:password@host:port)"
	case strings.Contains(msg, "connection not allowed by ruleset"):
		why = "its rules do not let this host reach the gateway (ask the proxy's administrator)"
	default:
		return err
	}
	return &proxyRefusedError{why: why, err: err}
}
