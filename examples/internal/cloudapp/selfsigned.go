package cloudapp

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/liaisonhq/liaison/httpguard"
)

// secretSelfSignedCA names the sealed PEM (certificate and PKCS #8 key) of
// the self-signed CA (httpguard.LoadSelfSignedCA).
const secretSelfSignedCA = "self_signed_ca"

// certificate returns the listener's certificate source and, when
// self-signed, the CA's PEM.
func (s *Server) certificate(ctx context.Context, publicHost string) (func(*tls.ClientHelloInfo) (*tls.Certificate, error), []byte, error) {
	c := s.cfg
	switch {
	case c.Certificate != nil:
		cert := *c.Certificate
		return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, nil, nil
	case c.CertFile != "" || c.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("cloudapp: load certificate (CertFile, KeyFile): %w", err)
		}
		return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }, nil, nil
	}
	ca, err := httpguard.LoadSelfSignedCA(ctx, s.secrets, secretSelfSignedCA, publicHost, nil)
	if err != nil {
		return nil, nil, err
	}
	if left := time.Until(ca.NotAfter()); left < httpguard.SelfSignedLeafLife {
		s.log.Warn("cloudapp: the self-signed CA expires soon; give the cloud a certificate (CertFile, KeyFile) and connectors its CA (cloud.ca_file)", "not_after", ca.NotAfter())
	}
	return ca.GetCertificate, ca.PEM(), nil
}
