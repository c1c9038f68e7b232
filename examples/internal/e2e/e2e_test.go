package e2e_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
	"github.com/liaisonhq/liaison/alerts"
	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
	"github.com/liaisonhq/liaison/examples/internal/e2e"
	"github.com/liaisonhq/liaison/keyenvelope"
)

const tenant = "acme"

// usersByLogin maps the cloud's users by lower-cased login; a login held by
// several users ("dupe" on OpenLDAP) maps to the last, so compare whole
// states with cloudUsers.
func usersByLogin(t *testing.T, st *e2e.Stack) map[string]cloudapp.User {
	t.Helper()
	out := map[string]cloudapp.User{}
	for _, u := range cloudUsers(t, st) {
		out[strings.ToLower(u.Login)] = u
	}
	return out
}

// cloudUsers returns every user the cloud holds, keyed by cloud ID.
func cloudUsers(t *testing.T, st *e2e.Stack) map[string]cloudapp.User {
	t.Helper()
	us, err := st.Cloud.Users(ctxT(t, time.Minute), tenant)
	require.NoError(t, err)
	out := make(map[string]cloudapp.User, len(us))
	for _, u := range us {
		out[u.ID] = u
	}
	return out
}

// equalUsers compares two states without printing thousands of users.
func equalUsers(a, b map[string]cloudapp.User) bool {
	return reflect.DeepEqual(a, b)
}

func TestImportCountsEqualLdapsearch(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp()}}))
		res, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		want := s.ldapsearchCount(t, s.corp())
		assert.Equal(t, want, res.Scanned, "users streamed through the tunnel")
		assert.Equal(t, want, res.Summary.Creates, "users created in the cloud")
		users, err := st.Cloud.Users(ctx, tenant)
		require.NoError(t, err)
		assert.Len(t, users, want, "users the cloud holds")
		assert.GreaterOrEqual(t, want, len(s.ds.Users), "ldapsearch sees at least the loaded dataset")
		t.Logf("%s: %d users through the tunnel in %s; ldapsearch counts %d", s.Flavor, res.Scanned,
			res.Finished.Sub(res.Started).Round(time.Millisecond), want)
	})
}

func TestDeltaImportSeesAddedModifiedDisabled(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		ou := s.e2eOU(t)
		modified, _, modDN := s.addUser(t, ou, "e2e.delta.mod")
		disabled, _, disDN := s.addUser(t, ou, "e2e.delta.dis")
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp(), ou}}))
		full, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		require.True(t, full.Full)
		require.False(t, usersByLogin(t, st)[disabled].Disabled)

		added, _, _ := s.addUser(t, ou, "e2e.delta.add")
		s.setAttr(t, modDN, "displayName", "E2E Modified")
		s.disable(t, disDN)

		delta, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		assert.False(t, delta.Full, "an incremental import")
		assert.Less(t, delta.Scanned, full.Scanned/10, "the delta scans the changes, not everything")
		assert.GreaterOrEqual(t, delta.Summary.Creates, 1)
		assert.GreaterOrEqual(t, delta.Summary.Updates, 1)
		assert.GreaterOrEqual(t, delta.Summary.Disables, 1)

		users := usersByLogin(t, st)
		a, ok := users[added]
		require.True(t, ok, "the added user is in the cloud")
		assert.Equal(t, "E2E "+added, a.DisplayName)
		assert.False(t, a.Disabled)
		assert.Equal(t, "E2E Modified", users[modified].DisplayName)
		assert.True(t, users[disabled].Disabled)
		all, err := st.Cloud.Users(ctx, tenant)
		require.NoError(t, err)
		assert.Equal(t, full.Scanned+1, len(all), "one user more than the full import") // not the map: "dupe" is two users on OpenLDAP
	})
}

func TestDeleteThresholdStopsNarrowedMapping(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp()}}))
		_, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		before := cloudUsers(t, st)

		// An administrator narrows the mapping to one small OU by mistake.
		narrow := directorytest.OUDN([]string{"Corp", "Engineering", "Backend", "Databases"}, s.BaseDN)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{narrow}}))
		_, err = st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{Full: true})
		var te *importer.ThresholdError
		require.ErrorAs(t, err, &te)
		assert.ErrorIs(t, err, importer.ErrThreshold)

		a, err := st.WaitAlert(ctxT(t, 10*time.Second), cloudapp.KindImportThreshold, alerts.EventRaised, time.Time{})
		require.NoError(t, err)
		assert.Equal(t, "corp", a.Subject)
		assert.True(t, equalUsers(before, cloudUsers(t, st)), "nothing applied")
	})
}

func TestActivationOfExistingAndNewUser(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		ou := s.e2eOU(t)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp(), ou}}))
		_, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		existing := s.regularUsers(3)[2]
		newLogin, _, _ := s.addUser(t, ou, "e2e.act.new") // in the directory, not in the cloud

		token, _, err := st.Cloud.IssueDeploymentToken(ctx, tenant, "corp", time.Hour)
		require.NoError(t, err)
		act := st.Cloud.ActivationService()
		activate := func(login, device string) (activation.Result, error) {
			_, key, _ := ed25519.GenerateKey(rand.Reader)
			req := activation.Request{Tenant: tenant, Token: token, Login: login, DeviceID: device, Hostname: device, Source: "192.0.2.1"}
			req.Sign(key)
			return act.Activate(ctx, req)
		}
		cases := []struct {
			name, login string
			created     bool
		}{
			{"existing user", existing.LoginFor(s.Flavor), false},
			{"new user", newLogin, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				res, err := activate(tc.login, "dev-"+strings.ReplaceAll(tc.name, " ", "-"))
				require.NoError(t, err)
				assert.Equal(t, tc.created, res.UserCreated)
				assert.True(t, res.DeviceCreated)
				assert.NotEmpty(t, res.Credential)
				users := usersByLogin(t, st)
				assert.Equal(t, res.User.ID, users[strings.ToLower(tc.login)].ID)
			})
		}
		_, err = activate("no.such.user.e2e", "dev-ghost")
		assert.ErrorIs(t, err, activation.ErrUserNotFound)
	})
}

func TestWebLogin(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{LoginMaxFailures: 3})
		ctx := ctxT(t, 2*time.Minute)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp()}}))
		picked := s.regularUsers(6)
		good, throttled := picked[3], picked[4]
		locked, ok := s.ds.User("locked")
		require.True(t, ok)

		login := func(u directorytest.User, pw string) error {
			_, err := st.Cloud.Login(ctx, tenant, "corp", u.LoginFor(s.Flavor), pw)
			return err
		}
		t.Run("good", func(t *testing.T) {
			res, err := st.Cloud.Login(ctx, tenant, "corp", good.LoginFor(s.Flavor), good.Password)
			require.NoError(t, err)
			assert.True(t, directory.SameDN(good.DN(s.BaseDN), res.User.DN))
		})
		t.Run("bad", func(t *testing.T) {
			err := login(good, good.Password+"x")
			require.ErrorIs(t, err, cloudapp.ErrLoginFailed)
			var le *cloudapp.LoginError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, directory.ReasonBadPassword, le.Reason)
			require.NoError(t, login(good, good.Password), "and the right password still works")
		})
		t.Run("locked", func(t *testing.T) {
			err := login(locked, locked.Password)
			require.ErrorIs(t, err, cloudapp.ErrLoginFailed)
			var le *cloudapp.LoginError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, directory.ReasonLocked, le.Reason)
		})
		t.Run("throttled before the directory locks", func(t *testing.T) {
			for range 3 {
				require.ErrorIs(t, login(throttled, "wrong-"+throttled.Key), cloudapp.ErrLoginFailed)
			}
			err := login(throttled, throttled.Password)
			require.ErrorIs(t, err, cloudapp.ErrLoginThrottled, "the cloud stops asking the directory")
			// 3 failures < the servers' 5: the account is not locked; a
			// direct check with the right password proves it (and resets the
			// server's failure count for the next run).
			c, err := directory.Open(directory.Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: s.caPEM})
			require.NoError(t, err)
			defer c.Close()
			_, err = c.CheckCredentials(ctx, directory.Mapping{OUs: []string{s.corp()}}, throttled.LoginFor(s.Flavor), throttled.Password)
			assert.NoError(t, err, "the directory account is not locked")
		})
	})
}

func TestEkeyReleaseOnlyOpensForItsWorker(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		st := startStack(t, s, e2e.Config{})
		ctx := ctxT(t, 5*time.Minute)
		sub := directorytest.OUDN([]string{"Corp", "Engineering"}, s.BaseDN)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "eng", directory.Mapping{OUs: []string{sub}}))
		_, err := st.Cloud.RunImport(ctx, tenant, "eng", cloudapp.ImportOptions{})
		require.NoError(t, err)
		users, err := st.Cloud.Users(ctx, tenant)
		require.NoError(t, err)
		require.NotEmpty(t, users)

		kem := hpke.DHKEM(ecdh.X25519())
		worker, err := kem.GenerateKey()
		require.NoError(t, err)
		intruder, err := kem.GenerateKey()
		require.NoError(t, err)
		rel, err := st.Cloud.ReleaseKey(ctx, tenant, users[0].ID, "job-e2e-1", worker.PublicKey().Bytes(), time.Minute)
		require.NoError(t, err)

		ek, err := keyenvelope.OpenRelease(worker, rel.Ticket, rel.Release)
		require.NoError(t, err)
		assert.NotEqual(t, [keyenvelope.EkeySize]byte{}, ek.Key)
		_, err = keyenvelope.OpenRelease(intruder, rel.Ticket, rel.Release)
		assert.ErrorIs(t, err, keyenvelope.ErrUnwrap, "a second worker cannot open it")

		// A release made for the intruder's key is another ticket: the same
		// ekey, but only the intruder opens it.
		rel2, err := st.Cloud.ReleaseKey(ctx, tenant, users[0].ID, "job-e2e-2", intruder.PublicKey().Bytes(), time.Minute)
		require.NoError(t, err)
		_, err = keyenvelope.OpenRelease(worker, rel2.Ticket, rel2.Release)
		assert.ErrorIs(t, err, keyenvelope.ErrUnwrap)
		ek2, err := keyenvelope.OpenRelease(intruder, rel2.Ticket, rel2.Release)
		require.NoError(t, err)
		assert.Equal(t, ek.Key, ek2.Key, "one ekey per user")
	})
}

func TestNotConnectedRaisedAndResolved(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		const grace = 500 * time.Millisecond
		st := startStack(t, s, e2e.Config{Grace: grace})
		ctx := ctxT(t, time.Minute)
		t0 := time.Now()
		require.NoError(t, st.StopConnector())
		a, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.KindNotConnected, alerts.EventRaised, t0)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(t0), grace, "not before the grace period")
		assert.Equal(t, tenant, a.Tenant)
		open, err := st.Cloud.Alerts(ctx, alerts.Filter{Tenant: tenant, Kind: alerts.KindNotConnected, OpenOnly: true})
		require.NoError(t, err)
		assert.Len(t, open, 1)

		require.NoError(t, st.StartConnector(ctx))
		r, err := st.WaitAlert(ctxT(t, 20*time.Second), alerts.KindNotConnected, alerts.EventResolved, t0)
		require.NoError(t, err)
		assert.Equal(t, a.ID, r.ID)
		open, err = st.Cloud.Alerts(ctx, alerts.Filter{Tenant: tenant, Kind: alerts.KindNotConnected, OpenOnly: true})
		require.NoError(t, err)
		assert.Empty(t, open)
	})
}

func TestConnectorKilledMidImportChangesNothing(t *testing.T) {
	forEachServer(t, func(t *testing.T, s server) {
		var st *e2e.Stack
		kill := make(chan struct{})
		killed := make(chan error, 1)
		var armed atomic.Bool
		st = startStack(t, s, e2e.Config{OnUser: func(n int) {
			if n == 300 && armed.CompareAndSwap(true, false) {
				close(kill)
				select { // the connector dies under the import
				case <-killed:
				case <-time.After(30 * time.Second):
				}
			}
		}})
		go func() {
			<-kill
			killed <- st.StopConnector()
		}()
		ctx := ctxT(t, 5*time.Minute)
		sub := directorytest.OUDN([]string{"Corp", "Engineering"}, s.BaseDN)
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{sub}}))
		first, err := st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{})
		require.NoError(t, err)
		before := cloudUsers(t, st)
		require.Len(t, before, first.Summary.Creates)

		// Widen the mapping: the next full import would create many users.
		require.NoError(t, st.Cloud.PutMapping(ctx, tenant, "corp", directory.Mapping{OUs: []string{s.corp()}}))
		armed.Store(true)
		_, err = st.Cloud.RunImport(ctx, tenant, "corp", cloudapp.ImportOptions{Full: true})
		require.ErrorIs(t, err, importer.ErrIncompleteScan, "the import cannot finish without its connector")
		select {
		case <-kill:
		default:
			t.Fatal("the import never reached user 300")
		}
		assert.True(t, equalUsers(before, cloudUsers(t, st)), "the cloud's users are exactly as before")
		t.Logf("import error: %v", err)
	})
}
