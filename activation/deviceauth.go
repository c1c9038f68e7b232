package activation

import (
	"context"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DeviceAuthSkew is how far a device's clock may be from the service's: a
// [DeviceAuthRequest] signed further in the past or future is refused, and
// its nonce is remembered for twice this long.
const DeviceAuthSkew = 5 * time.Minute

const (
	minNonceLen = 16
	maxNonceLen = 64
	// maxNonces bounds the replay cache; past it the endpoint refuses with
	// a retry rather than forget a nonce that is still fresh.
	maxNonces = 1 << 20
)

// ErrReplay is returned by [Service.AuthenticateDeviceRequest] for a signed
// request that was already accepted, or one signed outside
// [DeviceAuthSkew] of the service's clock.
var ErrReplay = errors.New("activation: stale or replayed device request")

// DeviceAuthRequest is the JSON body of the device authentication
// endpoint ([Service.DeviceAuthHandler]): what an activated device sends
// before a backup, with no connector involved. Make it with
// [SignDeviceAuth]. Byte fields are standard base64.
type DeviceAuthRequest struct {
	Tenant     string `json:"tenant"`
	Credential string `json:"credential"` // from the activation answer
	Time       int64  `json:"time"`       // Unix seconds at signing
	Nonce      []byte `json:"nonce"`      // 16 to 64 random bytes, never reused
	Signature  []byte `json:"signature"`  // Ed25519 over DeviceAuthMessage
}

// DeviceAuthResponse is the JSON answer to an authenticated device.
type DeviceAuthResponse struct {
	Tenant   string `json:"tenant"`
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

// DeviceAuthMessage is what a device signs with its activation key to
// authenticate: a domain-separation line, the tenant, the signing time and
// the nonce, each on its own line.
func DeviceAuthMessage(tenant string, t int64, nonce []byte) []byte {
	return []byte("liaison-device-auth-v1\n" + tenant + "\n" + strconv.FormatInt(t, 10) + "\n" +
		base64.RawURLEncoding.EncodeToString(nonce))
}

// SignDeviceAuth makes a fresh [DeviceAuthRequest] for a device holding key
// (the private half of the public key it activated with) and the
// credential [Service.Activate] returned. rand supplies the nonce; nil means
// crypto/rand.
func SignDeviceAuth(key ed25519.PrivateKey, tenant, credential string, now time.Time, rand io.Reader) (DeviceAuthRequest, error) {
	if len(key) != ed25519.PrivateKeySize {
		return DeviceAuthRequest{}, fmt.Errorf("%w: device key is not an Ed25519 private key", ErrInvalidRequest)
	}
	if rand == nil {
		rand = cryptorand.Reader
	}
	nonce := make([]byte, minNonceLen)
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return DeviceAuthRequest{}, fmt.Errorf("activation: device nonce: %w", err)
	}
	t := now.Unix()
	return DeviceAuthRequest{
		Tenant: tenant, Credential: credential, Time: t, Nonce: nonce,
		Signature: ed25519.Sign(key, DeviceAuthMessage(tenant, t, nonce)),
	}, nil
}

// AuthenticateDeviceRequest checks a signed [DeviceAuthRequest]: the
// credential and signature as [Service.AuthenticateDevice] does, a signing
// time within [DeviceAuthSkew] of the service's clock, and a nonce never
// accepted before. It needs no connector. Errors wrap [ErrBadProof],
// [ErrReplay], [ErrInvalidRequest] or, when the replay cache is full,
// a [*RetryError] wrapping [ErrRateLimited].
func (s *Service) AuthenticateDeviceRequest(ctx context.Context, req DeviceAuthRequest) (Device, error) {
	if req.Tenant == "" || req.Credential == "" || len(req.Nonce) < minNonceLen || len(req.Nonce) > maxNonceLen ||
		len(req.Signature) != ed25519.SignatureSize || len(req.Tenant) > maxFieldLen {
		return Device{}, fmt.Errorf("%w: device authentication fields", ErrInvalidRequest)
	}
	now := s.now()
	signed := time.Unix(req.Time, 0)
	if d := now.Sub(signed); d > DeviceAuthSkew || d < -DeviceAuthSkew {
		return Device{}, fmt.Errorf("%w: signed at %s, %s from this server's clock (allowed %s)",
			ErrReplay, signed.UTC().Format(time.RFC3339), d.Round(time.Second), DeviceAuthSkew)
	}
	d, err := s.AuthenticateDevice(ctx, req.Tenant, req.Credential, DeviceAuthMessage(req.Tenant, req.Time, req.Nonce), req.Signature)
	if err != nil {
		return Device{}, err
	}
	// Only a verified request reaches the cache: nobody can fill it with
	// nonces of requests that were never signed.
	key := req.Tenant + "\x00" + d.ID + "\x00" + string(req.Nonce)
	switch s.nonces.add(key, now, now.Add(2*DeviceAuthSkew)) {
	case nonceSeen:
		return Device{}, fmt.Errorf("%w: nonce already used", ErrReplay)
	case nonceFull:
		return Device{}, &RetryError{Err: fmt.Errorf("%w: device replay cache full", ErrRateLimited), RetryAfter: time.Second}
	}
	return d, nil
}

// DeviceAuthHandler returns the endpoint an activated device calls before a
// backup: POST a JSON [DeviceAuthRequest], get a JSON [DeviceAuthResponse],
// or 401 with an [ErrorResponse] for every authentication failure (one
// message, whatever the reason). It needs no connector, so devices keep
// working while a tenant has none. Mount it at any path.
func (s *Service) DeviceAuthHandler() http.Handler {
	return http.HandlerFunc(s.serveDeviceAuth)
}

func (s *Service) serveDeviceAuth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, ErrorResponse{Error: "method not allowed"})
		return
	}
	var in DeviceAuthRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{Error: "invalid device authentication request"})
		return
	}
	d, err := s.AuthenticateDeviceRequest(r.Context(), in)
	var re *RetryError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, DeviceAuthResponse{Tenant: d.Tenant, UserID: d.UserID, DeviceID: d.ID})
	case errors.As(err, &re):
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, ErrorResponse{Error: "device authentication unavailable, retry later"})
	case errors.Is(err, ErrBadProof), errors.Is(err, ErrReplay), errors.Is(err, ErrInvalidRequest):
		writeJSON(w, http.StatusUnauthorized, ErrorResponse{Error: "device authentication failed"})
	default:
		s.log.Error("device authentication failed", "tenant", in.Tenant, "err", err)
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{Error: "internal error"})
	}
}

type nonceResult int

const (
	nonceNew nonceResult = iota
	nonceSeen
	nonceFull
)

// nonceCache remembers accepted nonces until they could no longer be
// fresh. It is per process: a service behind several nodes must route a
// device to one node or accept that a request replayed within the skew on
// another node passes there once.
type nonceCache struct {
	mu   sync.Mutex
	seen map[string]time.Time // nonce key -> forget after
}

func (c *nonceCache) add(key string, now, until time.Time) nonceResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = make(map[string]time.Time)
	}
	if exp, ok := c.seen[key]; ok && now.Before(exp) {
		return nonceSeen
	}
	if len(c.seen) >= maxNonces {
		for k, exp := range c.seen {
			if !now.Before(exp) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= maxNonces {
			return nonceFull
		}
	}
	c.seen[key] = until
	return nonceNew
}
