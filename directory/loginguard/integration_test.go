package loginguard_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/directory/loginguard"
)

// These tests lock accounts on purpose, so they use only the lockout-test
// users of directorytest.LockoutUsers (made by scripts/testbed/lockout,
// under a policy of their own: 5 failures within 10 minutes lock until an
// administrator unlocks), and unlock them when done.

func eachServer(t *testing.T, fn func(t *testing.T, s directorytest.Server)) {
	t.Run("openldap", func(t *testing.T) { fn(t, directorytest.OpenLDAP(t)) })
	t.Run("samba", func(t *testing.T) { fn(t, directorytest.Samba(t)) })
}

// lockoutBed is one server's lockout-test set-up: a service client, an
// administrator connection to read and reset account state, the mapping.
type lockoutBed struct {
	s      directorytest.Server
	c      *directory.Client
	admin  *ldap.Conn
	m      directory.Mapping
	mu     sync.Mutex // admin is used from one goroutine at a time
	unlock func(t *testing.T, u directorytest.LockoutUser)
}

func newLockoutBed(t *testing.T, s directorytest.Server) *lockoutBed {
	t.Helper()
	ca, err := os.ReadFile(s.CAFile)
	require.NoError(t, err, "test CA")
	c, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca))
	admin, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	require.NoError(t, admin.Bind(s.AdminDN, s.AdminPassword))
	b := &lockoutBed{s: s, c: c, admin: admin, m: directory.Mapping{OUs: []string{directorytest.LockoutOUDN(s.BaseDN)}}}

	for _, u := range directorytest.LockoutUsers() {
		_, err := c.Lookup(t.Context(), b.m, u.Login)
		if errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("lockout-test user %s missing on %s: run scripts/testbed/lockout DIR (scripts/testbed/start runs it)", u.Login, s.Flavor)
		}
		require.NoError(t, err)
	}
	return b
}

// accountState is what the server itself says about an account.
type accountState struct {
	failures int  // AD badPwdCount; OpenLDAP: pwdFailureTime values
	locked   bool // AD lockoutTime != 0; OpenLDAP pwdAccountLockedTime present
	raw      string
}

func (b *lockoutBed) state(t *testing.T, u directorytest.LockoutUser) accountState {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	attrs := []string{"pwdFailureTime", "pwdAccountLockedTime"}
	if b.s.Flavor == directorytest.FlavorSamba {
		attrs = []string{"badPwdCount", "lockoutTime", "msDS-User-Account-Control-Computed"}
	}
	res, err := b.admin.Search(ldap.NewSearchRequest(u.DN(b.s.BaseDN), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", attrs, nil))
	require.NoError(t, err)
	require.Len(t, res.Entries, 1)
	e := res.Entries[0]
	var st accountState
	for _, a := range e.Attributes {
		st.raw += fmt.Sprintf("%s=%v ", a.Name, a.Values)
	}
	if b.s.Flavor == directorytest.FlavorSamba {
		st.failures, _ = strconv.Atoi(e.GetAttributeValue("badPwdCount"))
		lt := e.GetAttributeValue("lockoutTime")
		uac, _ := strconv.Atoi(e.GetAttributeValue("msDS-User-Account-Control-Computed"))
		st.locked = lt != "" && lt != "0" || uac&0x10 != 0 // UF_LOCKOUT
	} else {
		st.failures = len(e.GetAttributeValues("pwdFailureTime"))
		st.locked = e.GetAttributeValue("pwdAccountLockedTime") != ""
	}
	return st
}

// reset is an administrator's unlock, then a good bind (which clears the
// failure count on both servers), so every run starts clean.
func (b *lockoutBed) reset(t *testing.T, u directorytest.LockoutUser) {
	t.Helper()
	b.mu.Lock()
	dn := u.DN(b.s.BaseDN)
	mod := ldap.NewModifyRequest(dn, nil)
	if b.s.Flavor == directorytest.FlavorSamba {
		mod.Replace("lockoutTime", []string{"0"})
	} else {
		// A password set by the rootdn clears pwdFailureTime and
		// pwdAccountLockedTime (ppolicy).
		mod.Replace("userPassword", []string{u.Password})
	}
	err := b.admin.Modify(mod)
	b.mu.Unlock()
	require.NoError(t, err, "unlock %s", dn)
	_, err = b.c.CheckCredentials(context.WithoutCancel(t.Context()), b.m, u.Login, u.Password)
	require.NoError(t, err, "the right password after the unlock")
	st := b.state(t, u)
	require.False(t, st.locked, "after reset: %s", st.raw)
	require.Zero(t, st.failures, "after reset: %s", st.raw)
}

// spellings returns 12 ways to type u's name: login, UPN, mail, case
// variants, surrounding spaces, the NFD form of the login.
func spellings(u directorytest.LockoutUser) []string {
	nfd := strings.ReplaceAll(u.Login, "\u00eb", "e\u0308")
	return []string{
		u.Login, strings.ToUpper(u.Login), u.UPN, strings.ToUpper(u.UPN), u.Mail, strings.ToUpper(u.Mail),
		" " + u.Login, u.Login + " ", "\t" + u.Mail + " ", nfd, strings.ToUpper(nfd),
		strings.ToUpper(u.Login[:1]) + u.Login[1:],
	}
}

// countingDir counts the credential checks that reach the directory.
type countingDir struct {
	*directory.Client
	checks atomic.Int32
}

func (d *countingDir) CheckCredentials(ctx context.Context, m directory.Mapping, name, password string) (directory.User, error) {
	d.checks.Add(1)
	return d.Client.CheckCredentials(ctx, m, name, password)
}

func (d *countingDir) CheckAccount(ctx context.Context, m directory.Mapping, name, id, password string) (directory.User, error) {
	d.checks.Add(1)
	return d.Client.CheckAccount(ctx, m, name, id, password)
}

const attempts = 36 // 12 spellings, sequentially, then two parallel bursts of 12

// Issue 9: 36 wrong passwords over every spelling of one account, in
// sequence and in parallel bursts, through the guard, never lock it on a
// real server whose policy locks at 5, and the right password still works.
func TestIntegrationGuardNeverLocks(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		b := newLockoutBed(t, s)
		u, _ := directorytest.LockoutUserByKey("guarded")
		b.reset(t, u)
		t.Cleanup(func() { b.reset(t, u) })

		clk := &clock{t: time.Now()}
		g, err := loginguard.New(loginguard.Config{
			MaxFailures: directorytest.LockoutThreshold - 1, Window: directorytest.LockoutWindow,
			Store: loginguard.NewMemoryStore(loginguard.MemoryConfig{Now: clk.Now}),
		})
		require.NoError(t, err)
		d := &countingDir{Client: b.c}
		var failed, throttled atomic.Int32
		try := func(name string, i int) {
			_, err := g.Login(t.Context(), d, loginguard.Attempt{Realm: s.Flavor, Mapping: b.m, Name: name,
				Password: "wrong-" + strconv.Itoa(i), Source: "192.0.2." + strconv.Itoa(i%7)})
			switch {
			case errors.Is(err, loginguard.ErrThrottled):
				throttled.Add(1)
			case errors.Is(err, loginguard.ErrFailed):
				failed.Add(1)
				assert.NotEqual(t, directory.ReasonLocked, directory.ReasonOf(err), "%q: the directory says locked", name)
			default:
				t.Errorf("%q: %v", name, err)
			}
		}
		forms := spellings(u)
		for i, f := range forms {
			try(f, i)
		}
		for burst := range 2 {
			var wg sync.WaitGroup
			for i, f := range forms {
				wg.Go(func() { try(f, 100*(burst+1)+i) })
			}
			wg.Wait()
		}
		require.EqualValues(t, attempts, failed.Load()+throttled.Load())
		t.Logf("%s: %d attempts, %d checks reached the directory, %d refused (bad password or unknown spelling), %d throttled",
			s.Flavor, attempts, d.checks.Load(), failed.Load(), throttled.Load())
		assert.EqualValues(t, directorytest.LockoutThreshold-1, d.checks.Load(), "binds that reached the directory")

		st := b.state(t, u)
		assert.False(t, st.locked, "the account is not locked: %s", st.raw)
		assert.LessOrEqual(t, st.failures, directorytest.LockoutThreshold-1, "the server counted: %s", st.raw)
		assert.Positive(t, st.failures, "the server did see the failures that reached it: %s", st.raw)

		_, err = g.Login(t.Context(), d, loginguard.Attempt{Realm: s.Flavor, Mapping: b.m, Name: u.Mail, Password: u.Password})
		assert.ErrorIs(t, err, loginguard.ErrThrottled, "within the window even the right password waits")
		_, err = b.c.CheckCredentials(t.Context(), b.m, u.Login, u.Password)
		require.NoError(t, err, "the directory still accepts the right password: not locked")

		clk.Add(directorytest.LockoutWindow)
		got, err := g.Login(t.Context(), d, loginguard.Attempt{Realm: s.Flavor, Mapping: b.m, Name: strings.ToUpper(u.Mail), Password: u.Password})
		require.NoError(t, err, "after the window the right password works through the guard")
		assert.Equal(t, u.Login, got.Login)
		st = b.state(t, u)
		assert.Zero(t, st.failures, "a success reset the server's count: %s", st.raw)
	})
}

// The control: the same attempts without the guard do lock the account,
// which proves the policy is live; it is unlocked after.
func TestIntegrationWithoutGuardLocks(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		b := newLockoutBed(t, s)
		u, _ := directorytest.LockoutUserByKey("control")
		b.reset(t, u)
		t.Cleanup(func() { b.reset(t, u) })

		forms := spellings(u)
		reached := 0
		var reasons []directory.Reason
		for i := range attempts {
			_, err := b.c.CheckCredentials(t.Context(), b.m, forms[i%len(forms)], "wrong-"+strconv.Itoa(i))
			if errors.Is(err, directory.ErrInvalidCredentials) {
				reached++
				reasons = append(reasons, directory.ReasonOf(err))
			}
		}
		t.Logf("%s: %d attempts without the guard, %d binds reached the directory", s.Flavor, attempts, reached)
		assert.Greater(t, reached, directorytest.LockoutThreshold)
		st := b.state(t, u)
		assert.True(t, st.locked, "the policy is live: the account is locked: %s", st.raw)
		_, err := b.c.CheckCredentials(t.Context(), b.m, u.Login, u.Password)
		require.ErrorIs(t, err, directory.ErrInvalidCredentials, "the right password is refused while locked")
		assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err))
		assert.Contains(t, reasons, directory.ReasonLocked)
	})
}

// A check bound to one account's ID, given a name of another account, is
// refused before any bind: the other account's count does not move.
func TestIntegrationCheckAccountRefusesAnotherAccount(t *testing.T) {
	eachServer(t, func(t *testing.T, s directorytest.Server) {
		b := newLockoutBed(t, s)
		guarded, _ := directorytest.LockoutUserByKey("guarded")
		control, _ := directorytest.LockoutUserByKey("control")
		b.reset(t, control)
		t.Cleanup(func() { b.reset(t, control) })
		g, err := b.c.Resolve(t.Context(), b.m, guarded.Mail)
		require.NoError(t, err)
		require.NotEmpty(t, g.ID)
		assert.Nil(t, g.Groups, "Resolve does not resolve groups")
		for range 3 {
			_, err = b.c.CheckAccount(t.Context(), b.m, control.Login, g.ID, "wrong")
			require.ErrorIs(t, err, directory.ErrAccountChanged)
		}
		st := b.state(t, control)
		assert.Zero(t, st.failures, "no bind reached the other account: %s", st.raw)
		u, err := b.c.CheckAccount(t.Context(), b.m, strings.ToUpper(guarded.Login), g.ID, guarded.Password)
		require.NoError(t, err, "the bound check of the right account works")
		assert.Equal(t, g.ID, u.ID)
	})
}
