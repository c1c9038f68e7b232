package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Failures of the connect that something between the connector and the
// cloud causes, and that an operator fixes outside the connector's code.
// Connector.Run retries them (Status.Err carries a *ConnectError wrapping
// one of them); errors.Is matches them.
var (
	// ErrProxyAuth: the HTTP proxy answered 407 Proxy Authentication
	// Required: the credentials in ConnectorConfig.ProxyURL (or the
	// environment's proxy URL) are missing or wrong.
	ErrProxyAuth = errors.New("tunnel: proxy refused the credentials")
	// ErrUntrustedCertificate: the certificate presented for the cloud was
	// issued by a CA the connector does not trust, usually a
	// TLS-inspecting proxy's: trust that CA with
	// ConnectorConfig.ExtraRootCAs.
	ErrUntrustedCertificate = errors.New("tunnel: cloud certificate issued by an untrusted CA")
	// ErrUpgradeRefused: the WebSocket upgrade was answered with something
	// other than 101 Switching Protocols (and not by the gateway's own
	// refusals, ErrUnauthorized and ErrRevoked): a proxy or firewall
	// removed the Upgrade and Connection headers or answered itself.
	ErrUpgradeRefused = errors.New("tunnel: WebSocket upgrade refused")
)

// ConnectError is a failed connect classified as ErrProxyAuth,
// ErrUntrustedCertificate or ErrUpgradeRefused, with what the operator
// needs to fix it. It matches its Kind and its cause with errors.Is and
// errors.As.
type ConnectError struct {
	// Kind is ErrProxyAuth, ErrUntrustedCertificate or ErrUpgradeRefused.
	Kind error
	// Proxy is the proxy's host:port (ErrProxyAuth).
	Proxy string
	// Issuer and Subject name the certificate the connector was shown, in
	// RFC 2253 form (ErrUntrustedCertificate).
	Issuer, Subject string
	// Status is the HTTP status answered to the upgrade (ErrUpgradeRefused,
	// and 407 for ErrProxyAuth).
	Status int
	// URL is the tunnel URL the connector dialled.
	URL string
	// Err is the underlying error (nil for ErrProxyAuth during CONNECT).
	Err error
}

func (e *ConnectError) Error() string {
	var msg string
	switch e.Kind {
	case ErrProxyAuth:
		msg = fmt.Sprintf("proxy %s refused the credentials (HTTP 407 Proxy Authentication Required): check the user and password in the proxy URL (ProxyURL)", e.Proxy)
	case ErrUntrustedCertificate:
		msg = fmt.Sprintf("the certificate presented for %s was issued by %q, which this connector does not trust (subject %q): if a TLS-inspecting proxy is in the path, add its CA certificate to the trusted CAs (ExtraRootCAs)", e.host(), e.Issuer, e.Subject)
	case ErrUpgradeRefused:
		msg = fmt.Sprintf("the WebSocket upgrade to %s was answered with HTTP %d instead of 101: a proxy or firewall between the connector and the cloud removed the WebSocket upgrade; allow WebSocket (the Upgrade: websocket and Connection: Upgrade headers) to %s", e.URL, e.Status, e.URL)
	default:
		msg = fmt.Sprint(e.Kind)
	}
	return "tunnel: connect: " + msg
}

// Unwrap returns the Kind and the cause.
func (e *ConnectError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

func (e *ConnectError) host() string {
	if u, err := url.Parse(e.URL); err == nil && u.Host != "" {
		return u.Hostname()
	}
	return e.URL
}

// onProxyConnectResponse is the transport's http.Transport
// OnProxyConnectResponse: a 407 to the CONNECT becomes a ConnectError
// naming the proxy instead of net/http's bare "Proxy Authentication
// Required".
func onProxyConnectResponse(_ context.Context, proxyURL *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusProxyAuthRequired {
		return &ConnectError{Kind: ErrProxyAuth, Proxy: proxyURL.Host, Status: resp.StatusCode}
	}
	return nil
}

// protocolMismatchBody starts the body of the gateway's 426 for a connector
// that does not offer Subprotocol; connectError tells it from a 426 of a
// proxy or of the WebSocket library behind one that stripped the upgrade.
const protocolMismatchBody = "unsupported tunnel protocol: "

// connectError classifies the error of the WebSocket dial to tunnelURL (resp
// is the answer to the upgrade, if any).
func connectError(tunnelURL string, resp *http.Response, err error) error {
	var ce *ConnectError
	if errors.As(err, &ce) {
		ce.URL = tunnelURL
		return ce
	}
	if resp == nil {
		if issuer, subject, ok := untrustedCertificate(err); ok {
			return &ConnectError{Kind: ErrUntrustedCertificate, Issuer: issuer, Subject: subject, URL: tunnelURL, Err: err}
		}
		return fmt.Errorf("tunnel: connect: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrRevoked
	case http.StatusProxyAuthRequired: // a plain-HTTP proxy answering the upgrade itself
		proxy := ""
		if resp.Request != nil && resp.Request.URL != nil {
			proxy = resp.Request.URL.Host
		}
		return &ConnectError{Kind: ErrProxyAuth, Proxy: proxy, Status: resp.StatusCode, URL: tunnelURL, Err: err}
	case http.StatusUpgradeRequired:
		if resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if strings.HasPrefix(string(b), protocolMismatchBody) {
				return fmt.Errorf("tunnel: connect: the gateway does not speak %s (HTTP 426): upgrade the connector or the cloud so both speak the same major version", Subprotocol)
			}
		}
	}
	return &ConnectError{Kind: ErrUpgradeRefused, Status: resp.StatusCode, URL: tunnelURL, Err: err}
}

// untrustedCertificate reports the issuer and subject of the certificate
// whose CA is unknown, when err says so.
func untrustedCertificate(err error) (issuer, subject string, ok bool) {
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		return "", "", false
	}
	c := ua.Cert
	var cv *tls.CertificateVerificationError
	if c == nil && errors.As(err, &cv) && len(cv.UnverifiedCertificates) > 0 {
		c = cv.UnverifiedCertificates[0]
	}
	if c == nil {
		return "(unknown)", "(unknown)", true
	}
	return c.Issuer.String(), c.Subject.String(), true
}
