package demoldap

import (
	"crypto/sha256"
	"fmt"
	"strings"
)

// Names of the demo directory.
const (
	// BaseDN is the naming context of the demo directory.
	BaseDN = "dc=acme,dc=example"
	// ServiceDN is the service account a connector binds as.
	ServiceDN = "cn=liaison-connector,ou=Services,dc=acme,dc=example"
	// ServicePassword is the service account's password. Demo data only.
	ServicePassword = "connector-demo-secret"
	// AdminDN is the directory administrator, the only account that may
	// change entries (through the Server methods, not over LDAP).
	AdminDN = "cn=admin,dc=acme,dc=example"
	// Password is every demo user's password. Demo data only.
	Password = "Liaison-demo-2026"
	// PeopleDN holds one OU per department.
	PeopleDN = "ou=People,dc=acme,dc=example"
	// GroupsDN holds the groups.
	GroupsDN = "ou=Groups,dc=acme,dc=example"
	// BackupGroupDN is the group a backup product would map: Engineering
	// and Finance (nested groups) plus one salesperson.
	BackupGroupDN = "cn=backup-users,ou=Groups,dc=acme,dc=example"
)

// User describes a demo account.
type User struct {
	Login       string // uid
	GivenName   string
	Surname     string
	Department  string // the OU under ou=People, e.g. "Engineering"
	Email       string // default login@acme.example
	Password    string // default [Password]
	Disabled    bool   // pwdAccountLockedTime 000001010000Z, as OpenLDAP's ppolicy marks it
	DN          string // set by the server
	DisplayName string // default "GivenName Surname"
}

// demoUsers are the 20 people of the demo directory; ivan.petrov is
// disabled.
func demoUsers() []User {
	people := []struct{ login, given, sur, dept string }{
		{"alice.martin", "Alice", "Martin", "Engineering"},
		{"bob.nguyen", "Bob", "Nguyen", "Engineering"},
		{"carol.smith", "Carol", "Smith", "Engineering"},
		{"dave.kim", "Dave", "Kim", "Engineering"},
		{"erin.lopez", "Erin", "López", "Engineering"},
		{"frank.muller", "Frank", "Müller", "Engineering"},
		{"grace.okafor", "Grace", "Okafor", "Engineering"},
		{"henry.walker", "Henry", "Walker", "Sales"},
		{"ivan.petrov", "Ivan", "Petrov", "Sales"},
		{"julia.rossi", "Julia", "Rossi", "Sales"},
		{"kenji.sato", "Kenji", "Sato", "Sales"},
		{"laura.chen", "Laura", "Chen", "Sales"},
		{"mohamed.ali", "Mohamed", "Ali", "Finance"},
		{"nina.berg", "Nina", "Berg", "Finance"},
		{"oscar.diaz", "Oscar", "Díaz", "Finance"},
		{"priya.patel", "Priya", "Patel", "Finance"},
		{"quentin.moreau", "Quentin", "Moreau", "Support"},
		{"rosa.silva", "Rosa", "Silva", "Support"},
		{"sam.taylor", "Sam", "Taylor", "Support"},
		{"zoe.angstrom", "Zoë", "Ångström", "Support"},
	}
	out := make([]User, len(people))
	for i, p := range people {
		out[i] = User{Login: p.login, GivenName: p.given, Surname: p.sur, Department: p.dept, Disabled: p.login == "ivan.petrov"}
	}
	return out
}

// Departments are the OUs under ou=People, in order.
func departments() []string { return []string{"Engineering", "Sales", "Finance", "Support"} }

// demoGroups: name -> members (logins or "cn=group" references).
func demoGroups() []struct {
	name    string
	members []string
} {
	return []struct {
		name    string
		members []string
	}{
		{"platform", []string{"alice.martin", "bob.nguyen", "carol.smith"}},
		{"engineering", []string{"cn=platform", "dave.kim", "erin.lopez", "frank.muller", "grace.okafor"}},
		{"sales", []string{"henry.walker", "ivan.petrov", "julia.rossi", "kenji.sato", "laura.chen"}},
		{"finance", []string{"mohamed.ali", "nina.berg", "oscar.diaz", "priya.patel"}},
		{"support", []string{"quentin.moreau", "rosa.silva", "sam.taylor", "zoe.angstrom"}},
		{"staff", []string{"cn=engineering", "cn=sales", "cn=finance", "cn=support"}},
		{"backup-users", []string{"cn=engineering", "cn=finance", "julia.rossi"}},
		{"admins", []string{"alice.martin"}},
	}
}

// uuidFor derives a stable, RFC 4122-shaped (version 4 layout) UUID from a
// name, so the demo's entryUUIDs are the same on every run.
func uuidFor(name string) string {
	h := sha256.Sum256([]byte("liaison-demoldap:" + strings.ToLower(name)))
	h[6] = h[6]&0x0f | 0x40
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
