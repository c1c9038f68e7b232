// Package directorytest gives tests the real directory servers started by
// scripts/testbed/start and the logical data loaded into them.
//
// Use [OpenLDAP], [Samba] or [Servers] in a test to get the connection
// details of a running test server; they skip the test, with a message saying
// how to start the servers, when the environment does not name one (and fail
// it when CI=true). Use [Generate] (or [Server.Dataset]) to compute what the
// server holds, so a test can compare what it reads with what was loaded
// instead of hard-coding counts.
//
// It does not start servers itself, does not import package directory, and
// never talks LDAP: it only describes data and writes LDIF.
//
// # Environment
//
// scripts/testbed/start DIR writes DIR/env with KEY=VALUE lines:
// LIAISON_TEST_CA_FILE, LIAISON_TEST_SEED, LIAISON_TEST_USERS and, for each
// flavor F in OPENLDAP and SAMBA, LIAISON_TEST_F_URL (ldap://, StartTLS),
// LIAISON_TEST_F_LDAPS_URL, LIAISON_TEST_F_BASE, LIAISON_TEST_F_BIND_DN,
// LIAISON_TEST_F_BIND_PASSWORD, LIAISON_TEST_F_ADMIN_DN and
// LIAISON_TEST_F_ADMIN_PASSWORD. Benchmarks read the same names with BENCH
// in place of TEST through [BenchOpenLDAP] (a separate, bigger server started
// by scripts/bench).
//
// # Data
//
// [Generate] is deterministic from its seed. Everything it makes lives under
// the OU "Corp" below the base (paths in [OU.Path] and [User.OUPath] start
// with "Corp"), so counts under OU=Corp equal the dataset's counts exactly;
// the service account sits outside it, in OU=Service. The data holds:
//
//   - OUs nested four levels deep, one OU whose name needs DN escaping;
//   - groups nested three levels (nest-l1 ∋ nest-l2 ∋ nest-l3), a cycle
//     (cycle-a ∋ cycle-b ∋ cycle-a) and "all-staff" with more than 1 500
//     members when there are enough users (forces AD range retrieval);
//   - disabled users (every 50th regular user and "disabled.user"), one
//     locked, two expired (account and password) and one must-change user;
//   - Unicode display names, CNs and logins (German, Chinese, Cyrillic);
//   - RDN values holding , + " \ < > ; = # * ( ), leading and trailing spaces;
//   - a known password for every user ([User.Password]);
//   - two users sharing one mail (shared@liaison.test);
//   - the same login "dupe" in two OUs (OpenLDAP; see below for AD).
//
// # Lockout-test users
//
// [LockoutUsers] are made by scripts/testbed/lockout (run by
// scripts/testbed/start) under OU=Lockout, outside Corp, with a policy of
// their own ([LockoutThreshold] failures within [LockoutWindow] lock until
// an administrator unlocks). Only tests that lock accounts on purpose use
// them, and they unlock them when done.
//
// # OpenLDAP conventions
//
// Users are inetOrgPerson + posixAccount entries named by cn, with the login
// in uid and the password in userPassword ({SSHA}). Groups are groupOfNames;
// users and groups carry memberOf for their direct groups (loaded with
// slapadd, so the memberof overlay only maintains later changes). The
// account state uses the ppolicy overlay (draft-behera), the only standard
// place for it:
//
//   - disabled: pwdAccountLockedTime=000001010000Z (the "permanently locked
//     by an administrator" value); binds fail with invalidCredentials (49);
//   - locked: pwdAccountLockedTime set to a real time and a policy
//     (cn=locked,ou=Policies) with pwdLockoutDuration 0, so it stays locked;
//     binds fail with 49 and the ppolicy response control says accountLocked;
//   - expired: pwdChangedTime long ago under a policy (cn=expiring) with a
//     short pwdMaxAge and no grace logins; binds fail with 49 and
//     passwordExpired;
//   - must change: pwdReset=TRUE under the default policy (pwdMustChange);
//     the bind succeeds, the ppolicy response says changeAfterReset, and
//     every other operation is refused until the password is changed.
//
// The default policy locks an account after 5 failures within 60 s for 300 s.
// The service account (policy cn=service) never locks.
//
// # Active Directory (Samba) conventions
//
// Users are user objects named by CN, with sAMAccountName ([User.SAMAccountName]),
// userPrincipalName ([User.UPN]), mail, displayName and userAccountControl
// (0x2 for disabled). Expired is accountExpires in the past (bind data code
// 701) for "expired.user"; "pwexpired.user" ([User.PasswordExpired]) has a
// password set in 2020, older than the domain's maximum age (532); must-change is
// pwdLastSet=0 (773), locked is produced by failed binds after start (775),
// disabled gives 533. Five bad passwords within a minute lock an account
// until an administrator unlocks it; the service account and Administrator
// never lock (fine-grained policy liaison-service). AD forbids a duplicate
// sAMAccountName, so the analogue of the duplicate login is two users with
// the same CN and display name in two OUs whose sAMAccountNames are "dupe"
// and "dupe.sales"; ambiguity on AD is exercised through the shared mail.
// sAMAccountName also forbids " / \ [ ] : ; | = , + * ? < > and is at most
// 20 characters, so special characters appear in CNs and uids only.
// To load fast, generated users (userNNNNNN) get only an NT hash on Samba:
// LDAP simple binds work, Kerberos does not; special users have full
// credentials.
package directorytest
