package directorytest

import "time"

// The lockout-test users: made by scripts/testbed/lockout (which
// scripts/testbed/start runs) under OU=Lockout, directly below the base and
// outside OU=Corp (so the dataset's counts are unchanged), under a policy
// of their own that no other account shares: Samba, the fine-grained
// password policy "liaison-lockout-test" applied to the group
// CN=lockout-test,OU=Lockout; OpenLDAP, the ppolicy entry
// cn=lockout-test,ou=Policies named by each user's pwdPolicySubentry.
// Tests may lock these users on purpose; they must unlock them after (an
// administrator's unlock: AD lockoutTime=0, OpenLDAP a password reset by
// the rootdn), so a rerun starts clean. No other test may use them.
const (
	// LockoutOU is the OU of the lockout-test users, below the base.
	LockoutOU = "Lockout"
	// LockoutGroup is the group (Samba) the lockout policy applies to.
	LockoutGroup = "lockout-test"
	// LockoutThreshold bad passwords within LockoutWindow lock a
	// lockout-test user until an administrator unlocks it.
	LockoutThreshold = 5
	LockoutWindow    = 10 * time.Minute
)

// LockoutUser is a lockout-test user.
type LockoutUser struct {
	Key      string
	Login    string // uid (OpenLDAP) and sAMAccountName (AD), in NFC
	CN       string
	Mail     string
	UPN      string // userPrincipalName on AD: Login@Domain
	Password string
}

// DN returns the user's DN under base.
func (u LockoutUser) DN(base string) string { return dnOf("cn", u.CN, []string{LockoutOU}, base) }

// LockoutOUDN returns the DN of OU=Lockout under base.
func LockoutOUDN(base string) string { return OUDN([]string{LockoutOU}, base) }

// LockoutUsers returns the lockout-test users: "guarded", whose login has a
// non-ASCII letter (NFC "ë") and whose mail differs from its login, for
// attempts through a login guard; "control", locked on purpose without one.
func LockoutUsers() []LockoutUser {
	return []LockoutUser{
		{Key: "guarded", Login: "zo\u00eb.lockout", CN: "Zo\u00eb Guarded", Mail: "zoe.g@" + Domain,
			UPN: "zo\u00eb.lockout@" + Domain, Password: "Pw-7qX!vT93\u00e9-K"},
		{Key: "control", Login: "lockout.control", CN: "Control Subject", Mail: "ctl.subject@" + Domain,
			UPN: "lockout.control@" + Domain, Password: "Pw-4mR!zH81c-J"},
	}
}

// LockoutUserByKey returns the lockout-test user with that key.
func LockoutUserByKey(key string) (LockoutUser, bool) {
	for _, u := range LockoutUsers() {
		if u.Key == key {
			return u, true
		}
	}
	return LockoutUser{}, false
}
