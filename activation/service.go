package activation

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
	"unicode/utf8"
)

// Defaults for [Config].
const (
	DefaultTokenRate   = 50.0 // activations per second per token
	DefaultTokenBurst  = 1000
	DefaultSourceRate  = 5.0 // activations per second per source address
	DefaultSourceBurst = 100
	// maxLimiterKeys bounds the memory of each rate limiter.
	maxLimiterKeys = 100_000
	maxFieldLen    = 256
)

// Config configures a [Service]. Directory, Store, Tokens and CredentialKey
// are required; every other zero field means the documented default.
type Config struct {
	Directory Directory
	Store     Store
	Tokens    TokenStore

	// CredentialKey authenticates device credentials (HMAC-SHA256). At
	// least 32 random bytes; keep it secret and stable, since changing it
	// invalidates every credential issued.
	CredentialKey []byte

	// Audit receives every decision; nil discards them.
	Audit Auditor
	// Logger logs internal failures only (never tokens): every activation
	// that [PublicError] maps to 500 is logged at error level with its
	// cause. Nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of token and user IDs; nil means crypto/rand.
	Rand io.Reader

	// Token bucket per token ID and per source address: refill rate per
	// second and burst. Zero means the Default* constants.
	TokenRate   float64
	TokenBurst  int
	SourceRate  float64
	SourceBurst int

	// SourceAddr extracts the client address from an HTTP request for the
	// per-source limit; nil uses the host of r.RemoteAddr. Set it when the
	// endpoint sits behind a trusted proxy.
	SourceAddr func(r *http.Request) string
}

// Service verifies mass-deployment tokens and activates devices. It is safe
// for concurrent use.
type Service struct {
	dir      Directory
	store    Store
	tokens   TokenStore
	key      []byte
	audit    Auditor
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	bySource *limiter
	byToken  *limiter
	srcAddr  func(*http.Request) string
	nonces   nonceCache // accepted device-authentication nonces
}

// New returns a Service for cfg; it does not retain or modify cfg.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Directory == nil:
		return nil, errors.New("activation: config: Directory is required")
	case cfg.Store == nil:
		return nil, errors.New("activation: config: Store is required")
	case cfg.Tokens == nil:
		return nil, errors.New("activation: config: Tokens is required")
	case len(cfg.CredentialKey) < 32:
		return nil, errors.New("activation: config: CredentialKey must be at least 32 bytes")
	case cfg.TokenRate < 0 || cfg.SourceRate < 0 || cfg.TokenBurst < 0 || cfg.SourceBurst < 0:
		return nil, errors.New("activation: config: negative rate limit")
	}
	s := &Service{
		dir: cfg.Directory, store: cfg.Store, tokens: cfg.Tokens,
		key:   append([]byte(nil), cfg.CredentialKey...),
		audit: cfg.Audit, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand, srcAddr: cfg.SourceAddr,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.srcAddr == nil {
		s.srcAddr = remoteHost
	}
	s.byToken = newLimiter(orDefault(cfg.TokenRate, DefaultTokenRate), orDefault(cfg.TokenBurst, DefaultTokenBurst), maxLimiterKeys)
	s.bySource = newLimiter(orDefault(cfg.SourceRate, DefaultSourceRate), orDefault(cfg.SourceBurst, DefaultSourceBurst), maxLimiterKeys)
	return s, nil
}

func orDefault[T int | float64](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

// IssueToken creates a mass-deployment token for tenant, bound to
// mappingID and valid for ttl. The returned text is shown once to the admin;
// only its hash is stored. Older tokens stay valid.
func (s *Service) IssueToken(ctx context.Context, tenant, mappingID string, ttl time.Duration) (string, TokenRecord, error) {
	if tenant == "" || mappingID == "" || ttl <= 0 {
		return "", TokenRecord{}, fmt.Errorf("%w: tenant, mapping and a positive ttl are required", ErrInvalidRequest)
	}
	text, id, hash, err := newToken(s.rand)
	if err != nil {
		return "", TokenRecord{}, err
	}
	now := s.now()
	rec := TokenRecord{ID: id, Tenant: tenant, MappingID: mappingID, Hash: hash[:], CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := s.tokens.CreateToken(ctx, rec); err != nil {
		return "", TokenRecord{}, fmt.Errorf("activation: store token: %w", err)
	}
	s.record(ctx, Event{Time: now, Decision: DecisionTokenIssued, Tenant: tenant, TokenID: id})
	return text, rec, nil
}

// RevokeToken revokes the token with the given public ID in tenant, from
// now on. It returns an error wrapping [ErrNotFound] if tenant has no such
// token.
func (s *Service) RevokeToken(ctx context.Context, tenant, id string) error {
	now := s.now()
	if err := s.tokens.RevokeToken(ctx, tenant, id, now); err != nil {
		return fmt.Errorf("activation: revoke token: %w", err)
	}
	s.record(ctx, Event{Time: now, Decision: DecisionTokenRevoke, Tenant: tenant, TokenID: id})
	return nil
}

// Request is what a device sends to activate.
type Request struct {
	Tenant          string
	Token           string
	Login           string
	Domain          string
	Hostname        string
	DeviceID        string
	DevicePublicKey ed25519.PublicKey
	// Signature is the device's Ed25519 signature over
	// [Request.SignedMessage]: the proof that it holds the private key.
	Signature []byte
	// Source is the client address, for the per-source rate limit; set by
	// the server, not the device. Requests with an empty Source share one
	// bucket.
	Source string
}

const requestSigContext = "liaison activation request v1\x00"

// SignedMessage is the byte string a device signs: a domain-separated,
// length-prefixed encoding of every field except Signature and Source.
func (r *Request) SignedMessage() []byte {
	b := []byte(requestSigContext)
	for _, f := range []string{r.Tenant, r.Token, r.Login, r.Domain, r.Hostname, r.DeviceID, string(r.DevicePublicKey)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b
}

// Sign sets r.DevicePublicKey and r.Signature from the device's key.
func (r *Request) Sign(priv ed25519.PrivateKey) {
	r.DevicePublicKey = priv.Public().(ed25519.PublicKey)
	r.Signature = ed25519.Sign(priv, r.SignedMessage())
}

func (r *Request) validate() error {
	for _, f := range []struct{ name, v string }{
		{"tenant", r.Tenant}, {"login", r.Login}, {"device id", r.DeviceID},
	} {
		if f.v == "" {
			return fmt.Errorf("%w: %s is required", ErrInvalidRequest, f.name)
		}
	}
	for _, v := range []string{r.Tenant, r.Login, r.Domain, r.Hostname, r.DeviceID} {
		if len(v) > maxFieldLen || !utf8.ValidString(v) {
			return fmt.Errorf("%w: field too long or not UTF-8", ErrInvalidRequest)
		}
	}
	if len(r.DevicePublicKey) != ed25519.PublicKeySize || len(r.Signature) != ed25519.SignatureSize {
		return fmt.Errorf("%w: device public key and signature are required", ErrInvalidRequest)
	}
	return nil
}

// Result is a successful activation.
type Result struct {
	User          User
	Device        Device
	UserCreated   bool
	DeviceCreated bool
	// Credential authenticates the device later, with [Service.AuthenticateDevice],
	// without any connector. A retry returns the same credential.
	Credential string
}

// Activate runs one activation: rate limits, token, proof of possession,
// directory lookup within the token's mapping (a user disabled, locked or
// expired there is refused), then user and device in one store transaction
// (a user disabled in the store is refused). Errors wrap exactly one of the package's sentinels;
// a [*RetryError] means nothing was created and the device should retry.
// Every call is audited.
func (s *Service) Activate(ctx context.Context, req Request) (res Result, err error) {
	ev := Event{Tenant: req.Tenant, Source: req.Source, Login: req.Login, Domain: req.Domain, DeviceID: req.DeviceID}
	defer func() {
		ev.Time = s.now()
		ev.Err = err
		switch {
		case err == nil && res.UserCreated:
			ev.Decision = DecisionUserCreated
		case err == nil && res.DeviceCreated:
			ev.Decision = DecisionActivated
		case err == nil:
			ev.Decision = DecisionRepeated
		case errors.As(err, new(*RetryError)):
			ev.Decision = DecisionRetry
		default:
			ev.Decision = DecisionRefused
		}
		ev.UserID = res.User.ID
		s.record(ctx, ev)
		if status, _ := PublicError(err); status == http.StatusInternalServerError {
			// The device sees only "internal error": the cause goes to the
			// log, never the token (only its ID) nor the request's proof.
			s.log.ErrorContext(ctx, "activation: internal error", "tenant", req.Tenant, "token_id", ev.TokenID,
				"login", req.Login, "domain", req.Domain, "device_id", req.DeviceID, "err", err)
		}
	}()

	now := s.now()
	rec, err := s.admit(ctx, &req, &ev, now)
	if err != nil {
		return Result{}, err
	}
	// Checked after the token so that unauthenticated callers cannot make
	// the server verify signatures for free.
	if !ed25519.Verify(req.DevicePublicKey, req.SignedMessage(), req.Signature) {
		return Result{}, fmt.Errorf("%w: request signature", ErrBadProof)
	}
	return s.decide(ctx, &req, rec, now)
}

// admit applies the rate limits, validates req and verifies its token.
func (s *Service) admit(ctx context.Context, req *Request, ev *Event, now time.Time) (TokenRecord, error) {
	if ok, wait := s.bySource.allow(req.Source, now); !ok {
		return TokenRecord{}, &RetryError{Err: fmt.Errorf("%w: source %s", ErrRateLimited, req.Source), RetryAfter: wait}
	}
	if err := req.validate(); err != nil {
		return TokenRecord{}, err
	}
	tok, err := ParseToken(req.Token)
	if err != nil {
		return TokenRecord{}, err
	}
	ev.TokenID = tok.ID
	rec, err := s.tokens.Token(ctx, tok.ID)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return TokenRecord{}, fmt.Errorf("activation: load token: %w", err)
	}
	if err := checkToken(tok, rec, found, req.Tenant, now); err != nil {
		return TokenRecord{}, err
	}
	if ok, wait := s.byToken.allow(tok.ID, now); !ok {
		return TokenRecord{}, &RetryError{Err: fmt.Errorf("%w: token %s", ErrRateLimited, tok.ID), RetryAfter: wait}
	}
	return rec, nil
}

// decide looks the user up within the token's mapping and activates the
// device: everything after the token and the proof of possession.
func (s *Service) decide(ctx context.Context, req *Request, rec TokenRecord, now time.Time) (Result, error) {
	du, err := s.dir.LookupUser(ctx, Lookup{Tenant: req.Tenant, MappingID: rec.MappingID, Login: req.Login, Domain: req.Domain})
	switch {
	case errors.Is(err, ErrUserNotFound), errors.Is(err, ErrOutOfScope):
		return Result{}, err
	case err != nil && ctx.Err() != nil:
		return Result{}, ctx.Err()
	case err != nil && !errors.Is(err, ErrDirectoryUnavailable):
		err = fmt.Errorf("%w: %w", ErrDirectoryUnavailable, err)
		fallthrough
	case err != nil:
		return Result{}, &RetryError{Err: err, RetryAfter: 30 * time.Second}
	case du.StableID == "":
		return Result{}, &RetryError{Err: fmt.Errorf("%w: directory returned no stable id", ErrDirectoryUnavailable), RetryAfter: 30 * time.Second}
	case du.Disabled:
		return Result{}, &DisabledError{Where: "directory", Reason: "disabled"}
	case du.Locked:
		return Result{}, &DisabledError{Where: "directory", Reason: "locked"}
	case du.Expired:
		return Result{}, &DisabledError{Where: "directory", Reason: "expired"}
	}

	uid, err := s.newID()
	if err != nil {
		return Result{}, err
	}
	act, err := s.store.Activate(ctx,
		User{Tenant: req.Tenant, ID: uid, DirectoryID: du.StableID, Login: du.Login, Domain: du.Domain,
			UPN: du.UPN, Email: du.Email, DisplayName: du.DisplayName, CreatedAt: now},
		Device{Tenant: req.Tenant, ID: req.DeviceID, Hostname: req.Hostname,
			PublicKey: append(ed25519.PublicKey(nil), req.DevicePublicKey...), ActivatedAt: now},
	)
	if err != nil {
		if !errors.Is(err, ErrDeviceConflict) && !errors.Is(err, ErrUserDisabled) {
			err = fmt.Errorf("activation: store: %w", err)
		}
		return Result{}, err
	}
	return Result{
		User: act.User, Device: act.Device, UserCreated: act.UserCreated, DeviceCreated: act.DeviceCreated,
		Credential: issueCredential(s.key, act.Device),
	}, nil
}

// AuthenticateDevice authenticates an activated device without any
// connector: credential must be one [Service.Activate] issued for tenant,
// and signature the device's Ed25519 signature over message with the key the
// credential names. The caller chooses message (a fresh server challenge, or
// a request with a timestamp) and is responsible for its freshness. The
// device must still be in the store with that key and, when the [Store] is
// a [UserStatusStore], its user must be enabled there (a refusal then also
// matches [ErrUserDisabled], as a [*DisabledError]). Every failure is an
// error wrapping [ErrBadProof].
func (s *Service) AuthenticateDevice(ctx context.Context, tenant, credential string, message, signature []byte) (Device, error) {
	c, err := verifyCredential(s.key, credential)
	if err != nil {
		return Device{}, err
	}
	if c.Tenant != tenant || !ed25519.Verify(c.PublicKey, message, signature) {
		return Device{}, fmt.Errorf("%w: device signature", ErrBadProof)
	}
	d, err := s.store.Device(ctx, tenant, c.DeviceID)
	switch {
	case errors.Is(err, ErrNotFound):
		return Device{}, fmt.Errorf("%w: device no longer activated", ErrBadProof)
	case err != nil:
		return Device{}, fmt.Errorf("activation: load device: %w", err)
	case !d.PublicKey.Equal(c.PublicKey) || d.UserID != c.UserID:
		return Device{}, fmt.Errorf("%w: device re-keyed", ErrBadProof)
	}
	if us, ok := s.store.(UserStatusStore); ok {
		disabled, err := us.UserDisabled(ctx, tenant, d.UserID)
		switch {
		case errors.Is(err, ErrNotFound):
			return Device{}, fmt.Errorf("%w: %w", ErrBadProof, &DisabledError{Where: "cloud", Reason: "removed"})
		case err != nil:
			return Device{}, fmt.Errorf("activation: load user: %w", err)
		case disabled:
			return Device{}, fmt.Errorf("%w: %w", ErrBadProof, &DisabledError{Where: "cloud", Reason: "disabled"})
		}
	}
	return d, nil
}

func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("activation: read random: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (s *Service) record(ctx context.Context, e Event) {
	if s.audit != nil {
		s.audit.Audit(ctx, e)
	}
}

func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}
