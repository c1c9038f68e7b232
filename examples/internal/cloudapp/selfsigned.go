package cloudapp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// Lifetimes of the self-signed certificates. The CA is what connectors and
// devices trust (cloud.ca_file), so it lives long and is never replaced by
// the cloud; the server certificate is re-issued from it at every start and
// renewed while serving once less than a third of its life remains.
const (
	selfSignedCALife   = 10 * 365 * 24 * time.Hour
	selfSignedLeafLife = 90 * 24 * time.Hour
	// secretSelfSignedCA names the sealed PEM (certificate and PKCS #8
	// key) of the self-signed CA.
	secretSelfSignedCA = "self_signed_ca"
)

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
	bundle, err := s.secrets.Generated(ctx, secretSelfSignedCA, func() ([]byte, error) { return newSelfSignedCA(time.Now()) })
	if err != nil {
		return nil, nil, err
	}
	ca, err := parseSelfSignedCA(bundle, publicHost, time.Now)
	clear(bundle)
	if err != nil {
		return nil, nil, err
	}
	if _, err := ca.current(); err != nil {
		return nil, nil, err
	}
	if left := time.Until(ca.cert.NotAfter); left < selfSignedLeafLife {
		s.log.Warn("cloudapp: the self-signed CA expires soon; give the cloud a certificate (CertFile, KeyFile) and connectors its CA (cloud.ca_file)", "not_after", ca.cert.NotAfter)
	}
	return ca.getCertificate, ca.pem, nil
}

// newSelfSignedCA makes a CA and returns its certificate and key as PEM.
func newSelfSignedCA(now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Liaison example cloud CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedCALife),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: make CA: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})...)
	clear(pk)
	return out, nil
}

// selfSignedCA issues the server certificate and renews it when a
// handshake finds less than a third of its life left.
type selfSignedCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte // the CA certificate
	host string
	now  func() time.Time

	mu   sync.Mutex
	leaf *tls.Certificate
}

func parseSelfSignedCA(bundle []byte, host string, now func() time.Time) (*selfSignedCA, error) {
	ca := &selfSignedCA{host: host, now: now}
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cloudapp: stored self-signed CA: %w", err)
			}
			ca.cert = c
			ca.pem = pem.EncodeToMemory(b)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cloudapp: stored self-signed CA key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("cloudapp: stored self-signed CA key is not ECDSA")
			}
			ca.key = ek
		}
	}
	if ca.cert == nil || ca.key == nil {
		return nil, errors.New("cloudapp: stored self-signed CA is incomplete")
	}
	if !ca.key.PublicKey.Equal(ca.cert.PublicKey) {
		return nil, errors.New("cloudapp: stored self-signed CA key does not match its certificate")
	}
	return ca, nil
}

func (ca *selfSignedCA) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return ca.current()
}

// current returns the server certificate, issuing a new one when there is
// none or less than a third of its life remains.
func (ca *selfSignedCA) current() (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := ca.now()
	if l := ca.leaf; l != nil {
		life := l.Leaf.NotAfter.Sub(l.Leaf.NotBefore)
		if l.Leaf.NotAfter.Sub(now) > life/3 {
			return l, nil
		}
	}
	leaf, err := ca.issue(now)
	if err != nil {
		return nil, err
	}
	ca.leaf = leaf
	return leaf, nil
}

// issue makes a server certificate for loopback and the public host.
func (ca *selfSignedCA) issue(now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(selfSignedLeafLife)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "liaison cloud"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(ca.host); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if ca.host != "" && ca.host != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, ca.host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("cloudapp: make certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
