package httpguard

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

// Lifetimes of the self-signed certificates. The CA is what clients trust
// (a connector's cloud.ca_file), so it lives long and is never replaced;
// the server certificate is issued from it at every load and renewed while
// serving once less than a third of its life remains.
const (
	SelfSignedCALife   = 10 * 365 * 24 * time.Hour
	SelfSignedLeafLife = 90 * 24 * time.Hour
)

// SecretStore keeps the CA (certificate and PKCS #8 key, PEM) sealed,
// generating it on first use; masterkey.Secrets is one.
type SecretStore interface {
	Generated(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// LoadSelfSignedCA returns the CA kept under name in store (made on first
// use, so restarts and other nodes on the same database serve certificates
// from the same CA and clients that trust it stay connected), ready to
// issue server certificates for loopback and host. Use it when the server
// has no certificate of its own: serve [SelfSignedCA.GetCertificate] and
// hand clients [SelfSignedCA.PEM]. now may be nil (time.Now).
func LoadSelfSignedCA(ctx context.Context, store SecretStore, name, host string, now func() time.Time) (*SelfSignedCA, error) {
	if now == nil {
		now = time.Now
	}
	bundle, err := store.Generated(ctx, name, func() ([]byte, error) { return newSelfSignedCA(now()) })
	if err != nil {
		return nil, err
	}
	ca, err := parseSelfSignedCA(bundle, host, now)
	clear(bundle)
	if err != nil {
		return nil, err
	}
	if _, err := ca.current(); err != nil {
		return nil, err
	}
	return ca, nil
}

// PEM returns the CA certificate, for clients to trust.
func (ca *SelfSignedCA) PEM() []byte { return ca.pem }

// NotAfter is when the CA expires (it is never renewed: warn ahead).
func (ca *SelfSignedCA) NotAfter() time.Time { return ca.cert.NotAfter }

// GetCertificate is a tls.Config.GetCertificate: the current server
// certificate, renewed when less than a third of its life remains.
func (ca *SelfSignedCA) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return ca.current()
}

// newSelfSignedCA makes a CA and returns its certificate and key as PEM.
func newSelfSignedCA(now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Liaison cloud CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(SelfSignedCALife),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("httpguard: make CA: %w", err)
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

// SelfSignedCA issues the server certificate and renews it when a
// handshake finds less than a third of its life left.
type SelfSignedCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte // the CA certificate
	host string
	now  func() time.Time

	mu   sync.Mutex
	leaf *tls.Certificate
}

func parseSelfSignedCA(bundle []byte, host string, now func() time.Time) (*SelfSignedCA, error) {
	ca := &SelfSignedCA{host: host, now: now}
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
				return nil, fmt.Errorf("httpguard: stored self-signed CA: %w", err)
			}
			ca.cert = c
			ca.pem = pem.EncodeToMemory(b)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("httpguard: stored self-signed CA key: %w", err)
			}
			ek, ok := k.(*ecdsa.PrivateKey)
			if !ok {
				return nil, errors.New("httpguard: stored self-signed CA key is not ECDSA")
			}
			ca.key = ek
		}
	}
	if ca.cert == nil || ca.key == nil {
		return nil, errors.New("httpguard: stored self-signed CA is incomplete")
	}
	if !ca.key.PublicKey.Equal(ca.cert.PublicKey) {
		return nil, errors.New("httpguard: stored self-signed CA key does not match its certificate")
	}
	return ca, nil
}

// current returns the server certificate, issuing a new one when there is
// none or less than a third of its life remains.
func (ca *SelfSignedCA) current() (*tls.Certificate, error) {
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
func (ca *SelfSignedCA) issue(now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(SelfSignedLeafLife)
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
		return nil, fmt.Errorf("httpguard: make certificate: %w", err)
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
