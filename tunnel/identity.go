package tunnel

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// KeyStore keeps a connector's Ed25519 private key. A product can plug in
// DPAPI, a TPM or a secrets manager; [FileKeyStore] writes a file.
type KeyStore interface {
	// LoadOrCreate returns the stored key, generating and saving one on
	// first use. The signer's Public() must be an ed25519.PublicKey.
	LoadOrCreate() (crypto.Signer, error)
}

// FileKeyStore keeps the key in a PEM (PKCS #8) file written atomically with
// mode 0600.
type FileKeyStore struct {
	Path string
	// Rand is the key generation entropy; nil means crypto/rand.
	Rand io.Reader
}

var _ KeyStore = (*FileKeyStore)(nil)

// LoadOrCreate implements [KeyStore].
func (f *FileKeyStore) LoadOrCreate() (crypto.Signer, error) {
	data, err := os.ReadFile(f.Path)
	if err == nil {
		blk, _ := pem.Decode(data)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("tunnel: key file %s: no PRIVATE KEY block", f.Path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("tunnel: key file %s: %w", f.Path, err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("tunnel: key file %s: not an Ed25519 key", f.Path)
		}
		return ek, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tunnel: read key: %w", err)
	}
	r := f.Rand
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return nil, fmt.Errorf("tunnel: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("tunnel: encode key: %w", err)
	}
	if err := writeFileAtomic(f.Path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return priv, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil && !isWindows() {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("tunnel: write key: %w", err)
	}
	ok = true
	return nil
}

func isWindows() bool { return os.PathSeparator == '\\' }

// connectClaims are the signed fields of a connect token.
type connectClaims struct {
	ConnectorID string `json:"cid"`
	Audience    string `json:"aud"`
	IssuedAt    int64  `json:"iat"`
	Expiry      int64  `json:"exp"`
	Nonce       string `json:"nonce"`
}

const (
	connectTokenPrefix = "lct1."
	maxConnectTokenLen = 1024
	// MaxConnectTokenLifetime caps exp - iat of a connect token.
	MaxConnectTokenLifetime = 60 * time.Second
	clockSkew               = 30 * time.Second
	authScheme              = "Liaison "
)

// signConnectToken makes the short-lived token a connector presents on
// every connect: lct1.<base64url claims>.<base64url Ed25519 signature>.
func signConnectToken(key crypto.Signer, connectorID, audience string, now time.Time, lifetime time.Duration, r io.Reader) (string, error) {
	var nonce [16]byte
	if _, err := io.ReadFull(r, nonce[:]); err != nil {
		return "", fmt.Errorf("tunnel: nonce: %w", err)
	}
	c := connectClaims{
		ConnectorID: connectorID,
		Audience:    audience,
		IssuedAt:    now.Unix(),
		Expiry:      now.Add(lifetime).Unix(),
		Nonce:       base64.RawURLEncoding.EncodeToString(nonce[:]),
	}
	js, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := connectTokenPrefix + base64.RawURLEncoding.EncodeToString(js)
	sig, err := key.Sign(r, []byte(signed), crypto.Hash(0))
	if err != nil {
		return "", fmt.Errorf("tunnel: sign connect token: %w", err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// parseConnectToken splits and decodes a token without verifying it.
func parseConnectToken(tok string) (claims connectClaims, signed string, sig []byte, err error) {
	bad := errors.New("tunnel: malformed connect token")
	if len(tok) > maxConnectTokenLen || !strings.HasPrefix(tok, connectTokenPrefix) {
		return claims, "", nil, bad
	}
	i := strings.LastIndexByte(tok, '.')
	if i < len(connectTokenPrefix) {
		return claims, "", nil, bad
	}
	signed = tok[:i]
	sig, err = base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return claims, "", nil, bad
	}
	js, err := base64.RawURLEncoding.DecodeString(signed[len(connectTokenPrefix):])
	if err != nil {
		return claims, "", nil, bad
	}
	if err := json.Unmarshal(js, &claims); err != nil {
		return claims, "", nil, bad
	}
	if claims.ConnectorID == "" || claims.Nonce == "" || len(claims.Nonce) > 64 {
		return claims, "", nil, bad
	}
	return claims, signed, sig, nil
}
