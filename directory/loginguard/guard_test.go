package loginguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/loginguard"
)

// fakeDir resolves several names to one account, as a directory does, and
// counts the binds that reach it. It is a plain Checker (no CheckAccount)
// unless wrapped in accountDir.
type fakeDir struct {
	mu       sync.Mutex
	names    map[string]directory.User // lower-cased, trimmed name -> account
	password map[string]string         // account ID -> password
	binds    atomic.Int32
	lookups  atomic.Int32
	gate     chan struct{} // when set, CheckCredentials waits on it
	inCheck  atomic.Int32
	checkErr error // when set, CheckCredentials returns it (after counting the bind)
}

func newFakeDir() *fakeDir {
	alice := directory.User{ID: "guid-alice", Login: "alice.martin", UPN: "alice.martin@acme.example", Email: "alice@acme.example"}
	bob := directory.User{ID: "guid-bob", Login: "bob"}
	d := &fakeDir{names: map[string]directory.User{}, password: map[string]string{alice.ID: "right", bob.ID: "right"}}
	for _, n := range []string{alice.Login, alice.UPN, alice.Email} {
		d.names[n] = alice
	}
	d.names["bob"] = bob
	d.names["shared"] = directory.User{} // marker: ambiguous
	return d
}

func (d *fakeDir) resolve(name string) (directory.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.names[strings.ToLower(strings.TrimSpace(name))]
	switch {
	case !ok:
		return directory.User{}, directory.ErrNotFound
	case u.ID == "":
		return directory.User{}, directory.ErrAmbiguous
	}
	return u, nil
}

func (d *fakeDir) Lookup(_ context.Context, _ directory.Mapping, name string) (directory.User, error) {
	d.lookups.Add(1)
	return d.resolve(name)
}

func (d *fakeDir) CheckCredentials(ctx context.Context, _ directory.Mapping, name, password string) (directory.User, error) {
	u, err := d.resolve(name)
	if err != nil {
		return directory.User{}, err
	}
	d.binds.Add(1)
	if d.gate != nil {
		d.inCheck.Add(1)
		<-d.gate
	}
	if d.checkErr != nil {
		return directory.User{}, d.checkErr
	}
	if d.password[u.ID] != password {
		return directory.User{}, &directory.CredentialError{Reason: directory.ReasonBadPassword}
	}
	return u, nil
}

// accountDir adds CheckAccount, as *directory.Client has.
type accountDir struct{ *fakeDir }

func (d accountDir) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	u, err := d.resolve(name)
	if err != nil {
		return directory.User{}, err
	}
	if u.ID != id {
		return directory.User{}, directory.ErrAccountChanged
	}
	return d.CheckCredentials(ctx, m, name, password)
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newGuard(t *testing.T, cfg loginguard.Config) (*loginguard.Guard, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)}
	if cfg.Store == nil {
		cfg.Store = loginguard.NewMemoryStore(loginguard.MemoryConfig{Now: c.Now})
	}
	g, err := loginguard.New(cfg)
	require.NoError(t, err)
	return g, c
}

// The attack of issue 9: spellings of one account, each under its own
// budget, used to add up to a lockout.
func TestEveryFormOfOneNameSharesOneCounter(t *testing.T) {
	d := newFakeDir()
	g, _ := newGuard(t, loginguard.Config{MaxFailures: 4, Window: 10 * time.Minute})
	forms := []string{"alice.martin", "alice.martin@acme.example", "alice@acme.example", "ALICE.MARTIN",
		"  alice.martin ", "Alice.Martin@ACME.example", "\talice@acme.example\n"}
	var failed, throttled int
	for i := range 35 {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: forms[i%len(forms)], Password: "wrong"})
		switch {
		case errors.Is(err, loginguard.ErrThrottled):
			throttled++
			var te *loginguard.ThrottledError
			require.ErrorAs(t, err, &te)
			assert.Greater(t, te.RetryAfter, 9*time.Minute, "the oldest failure leaves the window in about 10 min")
		case errors.Is(err, loginguard.ErrFailed):
			failed++
			assert.Equal(t, directory.ReasonBadPassword, directory.ReasonOf(err))
		default:
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	assert.Equal(t, 4, failed)
	assert.Equal(t, 31, throttled)
	assert.EqualValues(t, 4, d.binds.Load(), "4 binds reach the directory for 35 attempts")

	_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: "alice.martin", Password: "right"})
	assert.ErrorIs(t, err, loginguard.ErrThrottled, "even the right password waits")
	u, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: "bob", Password: "right"})
	require.NoError(t, err, "other accounts are not affected")
	assert.Equal(t, "guid-bob", u.ID)
	_, err = g.Login(context.Background(), d, loginguard.Attempt{Realm: "other-tenant", Name: "alice.martin", Password: "right"})
	assert.NoError(t, err, "counters are per realm: another directory's account with the same ID is not throttled")
}

func TestParallelBurstNeverExceedsTheLimit(t *testing.T) {
	for _, withAccount := range []bool{false, true} {
		t.Run(map[bool]string{false: "Checker", true: "AccountChecker"}[withAccount], func(t *testing.T) {
			fd := newFakeDir()
			fd.gate = make(chan struct{})
			var d loginguard.Directory = fd
			if withAccount {
				d = accountDir{fd}
			}
			g, _ := newGuard(t, loginguard.Config{MaxFailures: 4, Window: time.Hour})
			forms := []string{"alice.martin", "ALICE.martin@acme.example", " alice@acme.example"}
			const n = 60
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "acme", Name: forms[i%3], Password: "wrong"})
					errs <- err
				})
			}
			// All but those in the directory return at once, throttled.
			throttled := 0
			for throttled < n-4 {
				err := <-errs
				require.ErrorIs(t, err, loginguard.ErrThrottled)
				throttled++
			}
			assert.EqualValues(t, 4, fd.inCheck.Load(), "4 in flight")
			close(fd.gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				assert.ErrorIs(t, err, loginguard.ErrFailed)
			}
			assert.EqualValues(t, 4, fd.binds.Load())
		})
	}
}

func TestSuccessResetsAndWindowExpires(t *testing.T) {
	d := newFakeDir()
	g, clk := newGuard(t, loginguard.Config{MaxFailures: 2, Window: time.Minute})
	login := func(name, pw string) error {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: name, Password: pw})
		return err
	}
	require.ErrorIs(t, login("alice.martin", "x"), loginguard.ErrFailed)
	require.NoError(t, login("alice.martin", "right"))
	require.ErrorIs(t, login("alice.martin", "x"), loginguard.ErrFailed, "a success reset the count")
	require.ErrorIs(t, login("alice.martin", "x"), loginguard.ErrFailed)
	require.ErrorIs(t, login("alice.martin", "right"), loginguard.ErrThrottled)
	clk.Add(59 * time.Second)
	require.ErrorIs(t, login("alice.martin", "right"), loginguard.ErrThrottled)
	clk.Add(time.Second)
	require.NoError(t, login("alice.martin", "right"), "failures age out after the window")
}

func TestUnknownNamesCountPerFoldedNameWithoutBinding(t *testing.T) {
	d := newFakeDir()
	g, _ := newGuard(t, loginguard.Config{MaxFailures: 3})
	forms := []string{"nobody", "NOBODY", "  NoBody ", "nobody\u00a0", "nobody"}
	var failed, throttled int
	for _, f := range forms {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: f, Password: "x"})
		switch {
		case errors.Is(err, loginguard.ErrFailed):
			failed++
			assert.ErrorIs(t, err, directory.ErrNotFound, "the cause stays in the chain for logs")
		case errors.Is(err, loginguard.ErrThrottled):
			throttled++
		}
	}
	assert.Equal(t, 3, failed)
	assert.Equal(t, 2, throttled, "an unknown name is throttled like an account: the answers look alike")
	assert.EqualValues(t, 3, d.lookups.Load(), "a throttled unknown name does not even reach a search")
	assert.Zero(t, d.binds.Load())

	for range 3 {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "shared", Password: "x"})
		assert.ErrorIs(t, err, directory.ErrAmbiguous)
	}
	_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "SHARED", Password: "x"})
	assert.ErrorIs(t, err, loginguard.ErrThrottled, "an ambiguous name counts like an unknown one")
	assert.Zero(t, d.binds.Load())

	// Case folding beyond ASCII: the Kelvin sign folds with k, ſ with s.
	for range 3 {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "kate", Password: "x"})
		require.ErrorIs(t, err, loginguard.ErrFailed)
	}
	_, err = g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "\u212Aate", Password: "x"})
	assert.ErrorIs(t, err, loginguard.ErrThrottled)
}

func TestPerSourceLimit(t *testing.T) {
	d := newFakeDir()
	g, _ := newGuard(t, loginguard.Config{MaxFailures: 3, MaxSourceFailures: 5})
	login := func(name, src string) error {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: name, Password: "x", Source: src})
		return err
	}
	for i := range 5 {
		require.ErrorIs(t, login("spray"+strings.Repeat("x", i), "2001:db8:1:2::1"), loginguard.ErrFailed)
	}
	assert.ErrorIs(t, login("another", "2001:db8:1:2:ffff::9"), loginguard.ErrThrottled, "one /64 is one source")
	assert.ErrorIs(t, login("another", "[2001:db8:1:2::77]:443"), loginguard.ErrThrottled, "with a port too")
	assert.ErrorIs(t, login("another", "2001:db8:1:3::1"), loginguard.ErrFailed, "the next /64 is another source")
	assert.ErrorIs(t, login("another", "192.0.2.1"), loginguard.ErrFailed)
	_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "right", Source: "2001:db8:1:2::1"})
	assert.ErrorIs(t, err, loginguard.ErrThrottled, "the right password from a throttled source waits too")

	off, _ := newGuard(t, loginguard.Config{MaxFailures: 3, MaxSourceFailures: -1})
	for i := range 20 {
		_, err := off.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "n" + strings.Repeat("x", i), Password: "x", Source: "192.0.2.1"})
		require.ErrorIs(t, err, loginguard.ErrFailed)
	}
}

// A name that moves to another account between resolve and check must not
// be checked (AccountChecker) nor accepted (plain Checker).
func TestAccountChangedFailsClosed(t *testing.T) {
	for _, withAccount := range []bool{false, true} {
		t.Run(map[bool]string{false: "Checker", true: "AccountChecker"}[withAccount], func(t *testing.T) {
			fd := newFakeDir()
			var d loginguard.Directory = &renamingDir{fakeDir: fd}
			if withAccount {
				d = accountRenamingDir{&renamingDir{fakeDir: fd}}
			}
			g, _ := newGuard(t, loginguard.Config{})
			_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "alice.martin", Password: "right"})
			require.ErrorIs(t, err, loginguard.ErrFailed)
			assert.ErrorIs(t, err, directory.ErrAccountChanged)
			if withAccount {
				assert.Zero(t, fd.binds.Load(), "no bind reaches the other account")
			}
		})
	}
}

// renamingDir resolves "alice.martin" to alice, then gives the name to bob
// before the check, where bob's password is "right" too.
type renamingDir struct {
	*fakeDir
	once sync.Once
}

func (d *renamingDir) Lookup(ctx context.Context, m directory.Mapping, name string) (directory.User, error) {
	u, err := d.fakeDir.Lookup(ctx, m, name)
	d.once.Do(func() {
		d.mu.Lock()
		d.names["alice.martin"] = directory.User{ID: "guid-bob", Login: "bob"}
		d.mu.Unlock()
	})
	return u, err
}

type accountRenamingDir struct{ *renamingDir }

func (d accountRenamingDir) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	return accountDir{d.fakeDir}.CheckAccount(ctx, m, name, id, password)
}

func TestUnknownOutcomeCountsAgainstTheAccount(t *testing.T) {
	d := newFakeDir()
	g, _ := newGuard(t, loginguard.Config{MaxFailures: 2, MaxSourceFailures: 1})
	d.checkErr = fmt.Errorf("directory: %w", directory.ErrUnavailable)
	for range 5 {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "right", Source: "192.0.2.9"})
		require.ErrorIs(t, err, directory.ErrUnavailable, "no server dialled, no bind sent: not counted")
	}
	lost := errors.New("ldap: connection closed")
	d.checkErr = lost
	for range 2 {
		_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "right", Source: "192.0.2.9"})
		require.ErrorIs(t, err, lost)
		assert.NotErrorIs(t, err, loginguard.ErrFailed, "not a refusal: the directory could not answer")
	}
	d.checkErr = nil
	_, err := g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "bob", Password: "right"})
	assert.ErrorIs(t, err, loginguard.ErrThrottled, "the binds may have reached the directory: they count")
	_, err = g.Login(context.Background(), d, loginguard.Attempt{Realm: "r", Name: "alice.martin", Password: "right", Source: "192.0.2.9"})
	assert.NoError(t, err, "the source is not blamed for the directory's trouble")
}

func TestEmptyInputsNeverReachTheDirectory(t *testing.T) {
	d := newFakeDir()
	g, _ := newGuard(t, loginguard.Config{})
	for _, a := range []loginguard.Attempt{{Name: "bob"}, {Name: "   ", Password: "x"}, {Password: "x"}} {
		_, err := g.Login(context.Background(), d, a)
		assert.ErrorIs(t, err, loginguard.ErrFailed)
	}
	assert.Zero(t, d.lookups.Load())
	assert.Zero(t, d.binds.Load())
}

func TestNewRejectsNegativeSettings(t *testing.T) {
	_, err := loginguard.New(loginguard.Config{MaxFailures: -1})
	assert.ErrorContains(t, err, "Config.MaxFailures")
	_, err = loginguard.New(loginguard.Config{Window: -time.Second})
	assert.ErrorContains(t, err, "Config.Window")
}
