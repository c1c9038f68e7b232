package directorytest

import (
	"os"
	"strconv"
	"testing"
)

// Flavors of test server.
const (
	FlavorOpenLDAP = "openldap"
	FlavorSamba    = "samba"
)

// startHint is the message a test skips with when no server is configured.
const startHint = "start the test servers: scripts/testbed/start DIR && set -a && . DIR/env"

// Server describes one running test directory server.
type Server struct {
	Flavor        string // FlavorOpenLDAP or FlavorSamba
	URL           string // ldap:// URL; StartTLS is available
	LDAPSURL      string // ldaps:// URL
	CAFile        string // PEM of the CA that signed the server certificate
	BaseDN        string
	BindDN        string // service account: an ordinary account, subject to size limits
	BindPassword  string
	AdminDN       string // rootdn / Administrator, for tests that modify data
	AdminPassword string
	Seed          int64 // generator seed the data was loaded with
	Users         int   // generated user count the data was loaded with
}

// Dataset returns the data loaded into s: Generate(s.Seed, s.Users).
func (s Server) Dataset() *Dataset { return Generate(s.Seed, s.Users) }

// OpenLDAP returns the OpenLDAP test server named by the LIAISON_TEST_OPENLDAP_*
// variables. It skips t when they are unset, or fails t when CI=true.
func OpenLDAP(t testing.TB) Server {
	t.Helper()
	return fromEnv(t, "TEST", "OPENLDAP", FlavorOpenLDAP)
}

// Samba returns the Samba AD test server named by the LIAISON_TEST_SAMBA_*
// variables. It skips t when they are unset, or fails t when CI=true.
func Samba(t testing.TB) Server {
	t.Helper()
	return fromEnv(t, "TEST", "SAMBA", FlavorSamba)
}

// Servers returns both test servers, OpenLDAP first. Like [OpenLDAP] and
// [Samba], it skips (or fails under CI=true) when either is not configured.
func Servers(t testing.TB) []Server {
	t.Helper()
	return []Server{OpenLDAP(t), Samba(t)}
}

// BenchOpenLDAP returns the big OpenLDAP server started by scripts/bench,
// named by the LIAISON_BENCH_OPENLDAP_* variables. It skips when they are
// unset, or fails when CI=true.
func BenchOpenLDAP(t testing.TB) Server {
	t.Helper()
	return fromEnv(t, "BENCH", "OPENLDAP", FlavorOpenLDAP)
}

func fromEnv(t testing.TB, kind, flavorVar, flavor string) Server {
	t.Helper()
	get := func(name string) string { return os.Getenv("LIAISON_" + kind + "_" + name) }
	pre := flavorVar + "_"
	s := Server{
		Flavor:        flavor,
		URL:           get(pre + "URL"),
		LDAPSURL:      get(pre + "LDAPS_URL"),
		CAFile:        get("CA_FILE"),
		BaseDN:        get(pre + "BASE"),
		BindDN:        get(pre + "BIND_DN"),
		BindPassword:  get(pre + "BIND_PASSWORD"),
		AdminDN:       get(pre + "ADMIN_DN"),
		AdminPassword: get(pre + "ADMIN_PASSWORD"),
		Seed:          1,
		Users:         DefaultUsers,
	}
	if s.URL == "" {
		msg := "directorytest: LIAISON_" + kind + "_" + pre + "URL is not set; " + startHint
		if kind == "BENCH" {
			msg = "directorytest: LIAISON_BENCH_OPENLDAP_URL is not set; run scripts/bench"
		}
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if v := get("SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("directorytest: LIAISON_%s_SEED=%q: %v", kind, v, err)
		}
		s.Seed = n
	}
	if v := get("USERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("directorytest: LIAISON_%s_USERS=%q: %v", kind, v, err)
		}
		s.Users = n
	}
	return s
}
