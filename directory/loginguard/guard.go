package loginguard

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/liaisonhq/liaison/directory"
)

// Errors of [Guard.Login], matched with errors.Is.
var (
	// ErrFailed: the login was refused (wrong password, unknown or
	// ambiguous name, or an account state the directory refused). The
	// directory's reason stays in the chain for logs; users see only this.
	ErrFailed = errors.New("loginguard: login failed")
	// ErrThrottled: too many failures recently for this account, name or
	// source; the directory was not asked. Returned as a *ThrottledError.
	ErrThrottled = errors.New("loginguard: too many failed logins, try later")
)

// ThrottledError is the error of a throttled attempt. It matches
// [ErrThrottled].
type ThrottledError struct {
	// RetryAfter is when one more attempt may be accepted, at the earliest.
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	return ErrThrottled.Error() + " (retry after " + strconv.Itoa(int(e.RetryAfter.Round(time.Second)/time.Second)) + "s)"
}

// Is makes a *ThrottledError match ErrThrottled.
func (e *ThrottledError) Is(target error) bool { return target == ErrThrottled }

// Resolver looks a login name up within a mapping, without binding: the
// Lookup of [*directory.Client] and of directory/directoryhttp's Client. It
// returns [directory.ErrNotFound] or [directory.ErrAmbiguous] when the name
// is not exactly one account.
type Resolver interface {
	Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
}

// FastResolver is an optional capability of a [Resolver]: Resolve finds
// the account as Lookup does without resolving its nested groups, which
// the guard does not need (they cost about 0.4 s a user on the Samba test
// bed). *directory.Client and directory/directoryhttp's Client implement it.
type FastResolver interface {
	Resolve(ctx context.Context, m directory.Mapping, name string) (directory.User, error)
}

// Checker checks a password: the CheckCredentials of [*directory.Client].
type Checker interface {
	CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error)
}

// AccountChecker is an optional capability of a [Checker]: it checks the
// password of the account whose stable ID is id, found by name, and refuses
// with [directory.ErrAccountChanged] before binding when name now resolves
// to another account. [*directory.Client] implements it.
type AccountChecker interface {
	CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error)
}

// Directory is what [Guard.Login] asks: a name resolver and a password
// checker, usually the same client.
type Directory interface {
	Resolver
	Checker
}

var (
	_ Directory      = (*directory.Client)(nil)
	_ AccountChecker = (*directory.Client)(nil)
	_ FastResolver   = (*directory.Client)(nil)
)

// Config configures a [Guard]. Every zero field takes the documented
// default; read the package doc for how to choose MaxFailures and Window.
type Config struct {
	// MaxFailures is how many failed attempts per account (and per unknown
	// name) within Window reach the directory; further attempts are
	// ErrThrottled until the oldest failure leaves the window. It must be
	// strictly below the directory's lockout threshold. Default 3.
	MaxFailures int
	// Window is how long a failure counts. It must be at least the
	// directory's lockout observation window. Default 30 minutes (Active
	// Directory's usual "reset account lockout counter after").
	Window time.Duration
	// MaxSourceFailures is how many failed attempts per source within
	// Window are accepted, over all names. Default 50; negative turns the
	// per-source limit off.
	MaxSourceFailures int
	// Store keeps the counters. Default: a [MemoryStore] with its defaults.
	Store Store
}

// Guard counts login failures per account and refuses attempts that could
// push an account towards the directory's lockout threshold. It is safe
// for concurrent use.
type Guard struct {
	max       int
	maxSource int
	window    time.Duration
	store     Store
}

// New returns a Guard. It returns an error naming the field when cfg holds
// a negative MaxFailures or Window.
func New(cfg Config) (*Guard, error) {
	if cfg.MaxFailures < 0 {
		return nil, fmt.Errorf("loginguard: Config.MaxFailures must not be negative (got %d)", cfg.MaxFailures)
	}
	if cfg.Window < 0 {
		return nil, fmt.Errorf("loginguard: Config.Window must not be negative (got %s)", cfg.Window)
	}
	g := &Guard{max: cfg.MaxFailures, maxSource: cfg.MaxSourceFailures, window: cfg.Window, store: cfg.Store}
	if g.max == 0 {
		g.max = 3
	}
	if g.window == 0 {
		g.window = 30 * time.Minute
	}
	if g.maxSource == 0 {
		g.maxSource = 50
	}
	if g.store == nil {
		g.store = NewMemoryStore(MemoryConfig{})
	}
	return g, nil
}

// Attempt is one login attempt.
type Attempt struct {
	// Realm scopes the counters: the tenant, or whatever names one
	// directory. Two directories may not share stable IDs' meaning, and a
	// hostile one must not throttle another's accounts.
	Realm   string
	Mapping directory.Mapping
	// Name is the login as typed; it is passed to the directory unchanged.
	Name     string
	Password string
	// Source is the client's address ("" for none: no per-source limit).
	// An IPv6 address counts by its /64.
	Source string
}

// Login checks a.Password for a.Name in d, within a.Mapping, unless the
// account, the name or the source has had too many failures within the
// window. See the package doc for the errors it returns.
func (g *Guard) Login(ctx context.Context, d Directory, a Attempt) (directory.User, error) {
	if a.Password == "" {
		return directory.User{}, fmt.Errorf("%w: %w", ErrFailed, &directory.CredentialError{Reason: directory.ReasonEmptyPassword})
	}
	norm := normalizeName(a.Name)
	if norm == "" {
		return directory.User{}, fmt.Errorf("%w: %w", ErrFailed, directory.ErrNotFound)
	}
	// The releases must run even when ctx is done: a reservation left open
	// counts as a failure until the store expires it. Their errors are
	// dropped for the same reason: a release that did not land leaves the
	// attempt counted as a failure, the safe side (see Store).
	bg := context.WithoutCancel(ctx)

	var srcKey string
	srcOutcome := Neutral
	if a.Source != "" && g.maxSource > 0 {
		srcKey = key("s", "", sourceKey(a.Source))
		if err := g.store.Reserve(ctx, srcKey, g.maxSource, g.window); err != nil {
			return directory.User{}, err
		}
		defer func() { _ = g.store.Release(bg, srcKey, srcOutcome) }()
	}

	// 1. Resolve, counting per typed name in case it resolves to nothing.
	nameKey := key("n", a.Realm, norm)
	if err := g.store.Reserve(ctx, nameKey, g.max, g.window); err != nil {
		return directory.User{}, err
	}
	u, err := resolve(ctx, d, a)
	switch {
	case err == nil && u.ID != "":
		_ = g.store.Release(bg, nameKey, Neutral)
	case err == nil: // an account without a stable ID cannot be counted: refuse
		_ = g.store.Release(bg, nameKey, Failure)
		srcOutcome = Failure
		return directory.User{}, fmt.Errorf("%w: account has no stable ID", ErrFailed)
	case errors.Is(err, directory.ErrNotFound), errors.Is(err, directory.ErrAmbiguous):
		_ = g.store.Release(bg, nameKey, Failure)
		srcOutcome = Failure
		return directory.User{}, fmt.Errorf("%w: %w", ErrFailed, err)
	default:
		_ = g.store.Release(bg, nameKey, Neutral)
		return directory.User{}, err
	}

	// 2. Reserve on the account, 3. check bound to it, 4. record.
	acctKey := key("a", a.Realm, u.ID)
	if err := g.store.Reserve(ctx, acctKey, g.max, g.window); err != nil {
		return directory.User{}, err
	}
	got, err := check(ctx, d, a, u.ID)
	switch {
	case err == nil && strings.EqualFold(got.ID, u.ID):
		_ = g.store.Release(bg, acctKey, Success)
		return got, nil
	case err == nil: // another account answered: fail closed
		err = directory.ErrAccountChanged
	case errors.Is(err, directory.ErrEmptyPassword):
		_ = g.store.Release(bg, acctKey, Neutral) // refused before any bind
		return directory.User{}, fmt.Errorf("%w: %w", ErrFailed, err)
	case errors.Is(err, directory.ErrUnavailable):
		_ = g.store.Release(bg, acctKey, Neutral) // no server could be dialled: no bind was sent
		return directory.User{}, err
	case errors.Is(err, directory.ErrInvalidCredentials), errors.Is(err, directory.ErrNotFound),
		errors.Is(err, directory.ErrAmbiguous), errors.Is(err, directory.ErrAccountChanged):
	default:
		// Lost connection or tunnel, timeout: the bind may have reached
		// the directory, so it costs the account one attempt; the source is
		// not blamed.
		_ = g.store.Release(bg, acctKey, Failure)
		return directory.User{}, err
	}
	_ = g.store.Release(bg, acctKey, Failure)
	srcOutcome = Failure
	return directory.User{}, fmt.Errorf("%w: %w", ErrFailed, err)
}

func resolve(ctx context.Context, d Directory, a Attempt) (directory.User, error) {
	if r, ok := d.(FastResolver); ok {
		return r.Resolve(ctx, a.Mapping, a.Name)
	}
	return d.Lookup(ctx, a.Mapping, a.Name)
}

func check(ctx context.Context, d Directory, a Attempt, id string) (directory.User, error) {
	if ac, ok := d.(AccountChecker); ok {
		return ac.CheckAccount(ctx, a.Mapping, a.Name, id, a.Password)
	}
	return d.CheckCredentials(ctx, a.Mapping, a.Name, a.Password)
}

// normalizeName folds a typed name for the per-name counter: surrounding
// spaces trimmed, inner runs of spaces made one, every letter case-folded
// (the smallest rune of its Unicode case orbit, as strings.EqualFold
// compares).
func normalizeName(s string) string {
	var b strings.Builder
	for i, f := range strings.Fields(s) {
		if i > 0 {
			b.WriteByte(' ')
		}
		for _, r := range f {
			b.WriteRune(foldRune(r))
		}
	}
	return b.String()
}

func foldRune(r rune) rune {
	m := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		if f < m {
			m = f
		}
	}
	return m
}

// sourceKey counts an IPv6 address by its /64 (one host usually holds a
// whole /64) and anything else as given.
func sourceKey(src string) string {
	if ap, err := netip.ParseAddrPort(src); err == nil {
		src = ap.Addr().String()
	}
	addr, err := netip.ParseAddr(src)
	if err != nil {
		return src
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// key makes a store key of fixed size out of untrusted parts: a kind
// letter, a dot and the SHA-256 of the parts (base64url), so a long name
// costs no more memory than a short one and keys fit any store's alphabet.
func key(kind, realm, v string) string {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(realm))))
	h.Write([]byte{0})
	h.Write([]byte(realm))
	h.Write([]byte{0})
	h.Write([]byte(v))
	return kind + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
