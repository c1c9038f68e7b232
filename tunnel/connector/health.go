package connector

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directoryhttp"
	"github.com/liaisonhq/liaison/keyenvelope/keyhttp"
	"github.com/liaisonhq/liaison/tunnel"
)

// Service names in the published tunnel.ConnectorInfo (the adapters'
// own, so a cloud reads them without linking this package).
const (
	ServiceDirectory = directoryhttp.Service
	ServiceKeys      = keyhttp.Service
)

// publisher keeps what the connector publishes about itself and the tunnel
// connector it goes to. The directory's health comes only from the
// operations the cloud asks for (directoryhttp.WithObserver): the
// connector never probes the directory on a timer.
type publisher struct {
	mu   sync.Mutex
	last *tunnel.Outcome // the directory's last real operation
	tc   *tunnel.Connector
}

// buildVersion is the module version and VCS revision this binary was
// built from.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// Info returns what the connector publishes to the cloud: version, OS,
// host, its services and the outcome of the directory's last real
// operation.
func (a *Agent) Info() tunnel.ConnectorInfo {
	host, _ := os.Hostname()
	info := tunnel.ConnectorInfo{
		Version:  buildVersion(),
		OS:       runtime.GOOS + "/" + runtime.GOARCH,
		Host:     host,
		Services: map[string]tunnel.ServiceInfo{},
	}
	a.pub.mu.Lock()
	last := a.pub.last
	a.pub.mu.Unlock()
	if a.dir != nil {
		info.Services[ServiceDirectory] = tunnel.ServiceInfo{Configured: true, Last: last}
	} else {
		info.Services[ServiceDirectory] = tunnel.ServiceInfo{}
	}
	if a.cfg.Keys != nil {
		ks := tunnel.ServiceInfo{Configured: true}
		if kr := a.Keyring(); kr != nil {
			for _, v := range kr.Versions() {
				ks.Versions = append(ks.Versions, v.Version)
			}
		}
		info.Services[ServiceKeys] = ks
	} else {
		info.Services[ServiceKeys] = tunnel.ServiceInfo{}
	}
	return info
}

// observeDirectory records the outcome of a real directory operation and
// publishes it.
func (a *Agent) observeDirectory(op string, err error) {
	o := &tunnel.Outcome{Op: op, At: time.Now().UTC().Truncate(time.Second), OK: true}
	switch {
	case err == nil, answered(err):
	case directory.Unavailable(err):
		o.OK, o.Unavailable, o.Error = false, true, directoryFix(err)+": "+err.Error()
	default:
		o.OK, o.Error = false, err.Error()
	}
	a.pub.mu.Lock()
	a.pub.last = o
	a.pub.mu.Unlock()
	a.publishInfo()
}

// answered reports whether err is the directory's answer (it was reached
// and answered), not a failure to use it.
func answered(err error) bool {
	for _, e := range []error{directory.ErrNotFound, directory.ErrAmbiguous, directory.ErrInvalidCredentials,
		directory.ErrAccountChanged} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// publishInfo sends the current info to the cloud when the tunnel runs
// (tunnel.Connector.SetInfo sends only changes).
func (a *Agent) publishInfo() {
	a.pub.mu.Lock()
	tc := a.pub.tc
	a.pub.mu.Unlock()
	if tc == nil {
		return
	}
	if err := tc.SetInfo(a.Info()); err != nil {
		a.log.Warn("publish connector info", "err", err)
	}
}

// attachTunnel makes tc the connector info goes to (nil: none) and
// publishes the current info to it.
func (a *Agent) attachTunnel(tc *tunnel.Connector) {
	a.pub.mu.Lock()
	a.pub.tc = tc
	a.pub.mu.Unlock()
	a.publishInfo()
}

// directoryFix says what to change when the directory cannot be used,
// naming this program's settings; "" for other errors.
func directoryFix(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	switch {
	case errors.Is(err, directory.ErrServiceBind):
		return "the directory refused the service account's bind: check directory.bind_dn and its password (directory.bind_password_file or directory.bind_password_env), and that the account is not locked, disabled or expired"
	case errors.As(err, &unknownCA), errors.As(err, &verify), errors.As(err, &hostname):
		return "the directory's TLS certificate is not trusted: put its CA certificate in directory.ca_file, and use the host name the certificate names in directory.urls"
	case errors.Is(err, directory.ErrUnavailable):
		return "no directory server in directory.urls could be reached: check the URLs and ports, DNS, and that a firewall lets this host reach them"
	}
	return ""
}
