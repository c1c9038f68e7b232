package directorytest

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recordTB records how a helper ended a test: Skip and Fatal stop the
// goroutine, as the real ones do.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper() {}
func (r *recordTB) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatal(args ...any) {
	r.failed = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recordTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func run(f func(testing.TB) Server) (Server, *recordTB) {
	r := &recordTB{}
	var s Server
	done := make(chan struct{})
	go func() {
		defer close(done)
		s = f(r)
	}()
	<-done
	return s, r
}

func TestFromEnv(t *testing.T) {
	const pre = "LIAISON_TEST_OPENLDAP_"
	clearEnv := func(t *testing.T) {
		for _, k := range []string{"URL", "LDAPS_URL", "BASE", "BIND_DN", "BIND_PASSWORD", "ADMIN_DN", "ADMIN_PASSWORD"} {
			t.Setenv(pre+k, "")
		}
		t.Setenv("LIAISON_TEST_SEED", "")
		t.Setenv("LIAISON_TEST_USERS", "")
		t.Setenv("LIAISON_TEST_SAMBA_URL", "")
	}
	t.Run("unset skips with the start command", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("CI", "")
		_, r := run(OpenLDAP)
		assert.Contains(t, r.skipped, "scripts/testbed/start DIR")
		assert.Empty(t, r.failed)
	})
	t.Run("unset fails under CI", func(t *testing.T) {
		clearEnv(t)
		t.Setenv("CI", "true")
		_, r := run(Samba)
		assert.Contains(t, r.failed, "LIAISON_TEST_SAMBA_URL is not set")
		assert.Empty(t, r.skipped)
	})
	t.Run("bench names", func(t *testing.T) {
		t.Setenv("LIAISON_BENCH_OPENLDAP_URL", "")
		t.Setenv("CI", "")
		_, r := run(BenchOpenLDAP)
		assert.Contains(t, r.skipped, "scripts/bench")
	})
	t.Run("set", func(t *testing.T) {
		clearEnv(t)
		t.Setenv(pre+"URL", "ldap://127.0.0.1:10389")
		t.Setenv(pre+"LDAPS_URL", "ldaps://127.0.0.1:10636")
		t.Setenv(pre+"BASE", "dc=liaison,dc=test")
		t.Setenv(pre+"BIND_DN", "cn=svc")
		t.Setenv(pre+"BIND_PASSWORD", "pw")
		t.Setenv("LIAISON_TEST_CA_FILE", "/tmp/ca.pem")
		t.Setenv("LIAISON_TEST_SEED", "7")
		t.Setenv("LIAISON_TEST_USERS", "300")
		s, r := run(OpenLDAP)
		require.Empty(t, r.skipped+r.failed)
		assert.Equal(t, Server{Flavor: FlavorOpenLDAP, URL: "ldap://127.0.0.1:10389", LDAPSURL: "ldaps://127.0.0.1:10636",
			CAFile: "/tmp/ca.pem", BaseDN: "dc=liaison,dc=test", BindDN: "cn=svc", BindPassword: "pw", Seed: 7, Users: 300}, s)
		assert.Len(t, s.Dataset().Users, 300)
	})
	t.Run("bad number fails", func(t *testing.T) {
		clearEnv(t)
		t.Setenv(pre+"URL", "ldap://x")
		t.Setenv("LIAISON_TEST_USERS", "many")
		_, r := run(OpenLDAP)
		assert.Contains(t, r.failed, `LIAISON_TEST_USERS="many"`)
	})
	t.Run("defaults", func(t *testing.T) {
		clearEnv(t)
		t.Setenv(pre+"URL", "ldap://x")
		s, r := run(OpenLDAP)
		require.Empty(t, r.skipped+r.failed)
		assert.Equal(t, int64(1), s.Seed)
		assert.Equal(t, DefaultUsers, s.Users)
	})
}
