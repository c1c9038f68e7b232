package directorytest

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// DefaultUsers is the user count of the test bed when LIAISON_TEST_USERS is unset.
const DefaultUsers = 2000

// Domain is the DNS domain of the test bed: mails and UPNs end in "@" + Domain.
const Domain = "liaison.test"

// BigGroup is the name of the group with more than 1 500 members (when the
// dataset has at least 1 501 regular users).
const BigGroup = "all-staff"

// bigGroupSize is the member count of BigGroup when there are enough users.
const bigGroupSize = 1600

// OU is one organizational unit.
type OU struct {
	Name string   // RDN value (ou=Name)
	Path []string // RDN values from the base, outermost first; the last is Name
}

// Group is one group, named by cn=Name in the OU at OUPath.
type Group struct {
	Name           string // cn, unique in the dataset
	SAMAccountName string // AD only
	OUPath         []string
	Users          []string // direct user members, by User.Key
	Groups         []string // direct group members, by Group.Name
}

// User is one user account, named by cn=CN in the OU at OUPath.
type User struct {
	Key            string // unique, stable identifier inside the dataset (not stored)
	Login          string // uid on OpenLDAP; not unique ("dupe" exists twice)
	SAMAccountName string // login on AD: unique, at most 20 characters
	UPN            string // userPrincipalName on AD (SAMAccountName@Domain)
	Mail           string // not unique: shared@liaison.test exists twice
	CN             string // RDN value; may hold any DN special character
	GivenName      string
	Surname        string
	DisplayName    string
	OUPath         []string
	Password       string
	UIDNumber      int
	Disabled       bool // AD userAccountControl 0x2; OpenLDAP pwdAccountLockedTime=000001010000Z
	Locked         bool // locked out (see the package doc for each flavor)
	Expired        bool // AD: account expired (or password: PasswordExpired); OpenLDAP: password expired
	// PasswordExpired marks the user whose password, rather than account,
	// has expired on AD (bind data code 532); Expired is set too.
	PasswordExpired bool
	MustChange      bool     // AD: pwdLastSet=0; OpenLDAP: pwdReset=TRUE
	Special         bool     // one of the hand-made edge cases rather than a generated user
	Groups          []string // direct groups, by Group.Name, sorted
}

// LoginFor returns the login of u on a server of the given flavor:
// SAMAccountName on Samba, Login (uid) otherwise.
func (u User) LoginFor(flavor string) string {
	if flavor == FlavorSamba {
		return u.SAMAccountName
	}
	return u.Login
}

// DN returns u's DN under base, with RFC 4514 escaping and lower-case
// attribute types. Servers may spell the same DN differently: compare parsed DNs.
func (u User) DN(base string) string { return dnOf("cn", u.CN, u.OUPath, base) }

// DN returns g's DN under base (see [User.DN]).
func (g Group) DN(base string) string { return dnOf("cn", g.Name, g.OUPath, base) }

// DN returns o's DN under base (see [User.DN]).
func (o OU) DN(base string) string { return OUDN(o.Path, base) }

// OUDN returns the DN of the OU at path (outermost first) under base.
func OUDN(path []string, base string) string {
	if len(path) == 0 {
		return base
	}
	return dnOf("ou", path[len(path)-1], path[:len(path)-1], base)
}

func dnOf(attr, value string, path []string, base string) string {
	var b strings.Builder
	b.WriteString(attr + "=" + escapeRDNValue(value))
	for i := len(path) - 1; i >= 0; i-- {
		b.WriteString(",ou=" + escapeRDNValue(path[i]))
	}
	if base != "" {
		b.WriteString("," + base)
	}
	return b.String()
}

// Dataset is the logical directory loaded into both test servers.
type Dataset struct {
	Seed   int64
	OUs    []OU    // parents before children
	Groups []Group // sorted by nothing in particular; names are unique
	Users  []User  // special users first, then generated ones
}

// Well-known OU paths.
var (
	pathCorp    = []string{"Corp"}
	pathGroups  = []string{"Corp", "Groups"}
	pathNested  = []string{"Corp", "Groups", "Nested"}
	pathSpecial = []string{"Corp", "Special"}
	pathLab     = []string{"Corp", "Special", `Lab, R&D + "Paris" <1>;=#`}
	pathEng     = []string{"Corp", "Engineering"}
	pathSales   = []string{"Corp", "Sales"}
)

// leafOUs receive the generated users.
var leafOUs = [][]string{
	{"Corp", "Engineering"},
	{"Corp", "Engineering", "Backend"},
	{"Corp", "Engineering", "Backend", "Databases"},
	{"Corp", "Engineering", "Frontend"},
	{"Corp", "Sales", "EMEA"},
	{"Corp", "Sales", "Americas"},
	{"Corp", "Support"},
	{"Corp", "Support", "Tier 2"},
}

var givenNames = []string{"Anna", "Jürgen", "Zoë", "José", "Øystein", "Łukasz", "Chloé", "Sören",
	"Ngozi", "Aiko", "Дмитрий", "Αλέξανδρος", "美咲", "Siobhán", "Mehmet", "Priya", "Bob", "Carla"}

var surnames = []string{"Smith", "Müller", "García", "Nguyễn", "Kowalski", "Ødegård", "O'Brien",
	"Tanaka", "Иванов", "Παπαδόπουλος", "王", "Dubois", "Núñez", "Yılmaz", "Lee", "Okafor"}

// Generate returns the dataset for seed with max(users, number of special
// users) users. The same arguments always give the same dataset.
func Generate(seed int64, users int) *Dataset {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6961697369))
	d := &Dataset{Seed: seed}
	d.OUs = makeOUs()

	specials := specialUsers()
	for i := range specials {
		specials[i].Special = true
		specials[i].Password = password(rng)
		specials[i].UIDNumber = 10000 + i
		if specials[i].SAMAccountName == "" {
			specials[i].SAMAccountName = specials[i].Login
		}
		specials[i].UPN = specials[i].SAMAccountName + "@" + Domain
		if specials[i].DisplayName == "" {
			specials[i].DisplayName = strings.TrimSpace(specials[i].CN)
		}
		if specials[i].GivenName == "" {
			specials[i].GivenName, specials[i].Surname = "Special", strings.TrimSpace(specials[i].CN)
		}
	}
	d.Users = append(d.Users, specials...)

	for i := 1; len(d.Users) < users; i++ {
		given := givenNames[rng.IntN(len(givenNames))]
		sur := surnames[rng.IntN(len(surnames))]
		login := fmt.Sprintf("user%06d", i)
		d.Users = append(d.Users, User{
			Key:            login,
			Login:          login,
			SAMAccountName: login,
			UPN:            login + "@" + Domain,
			Mail:           login + "@" + Domain,
			CN:             fmt.Sprintf("%s %s %06d", given, sur, i),
			GivenName:      given,
			Surname:        sur,
			DisplayName:    given + " " + sur,
			OUPath:         leafOUs[rng.IntN(len(leafOUs))],
			Password:       password(rng),
			UIDNumber:      20000 + i,
			Disabled:       i%50 == 0,
		})
	}
	d.Groups = makeGroups(d, rng)
	idx := d.userIndex()
	for _, g := range d.Groups {
		for _, k := range g.Users {
			u := &d.Users[idx[k]]
			u.Groups = append(u.Groups, g.Name)
		}
	}
	for i := range d.Users {
		slices.Sort(d.Users[i].Groups)
	}
	return d
}

func makeOUs() []OU {
	paths := [][]string{pathCorp, pathGroups, pathNested, pathSpecial, pathLab, pathEng, pathSales, {"Corp", "Support"}}
	for _, p := range leafOUs {
		if !slices.ContainsFunc(paths, func(q []string) bool { return slices.Equal(p, q) }) {
			paths = append(paths, p)
		}
	}
	// Parents before children: sort by depth, stable.
	slices.SortStableFunc(paths, func(a, b []string) int { return len(a) - len(b) })
	ous := make([]OU, len(paths))
	for i, p := range paths {
		ous[i] = OU{Name: p[len(p)-1], Path: p}
	}
	return ous
}

// specialUsers returns the hand-made edge cases; Password, UIDNumber and
// derived names are filled in by Generate.
func specialUsers() []User {
	s := func(key, login, sam, cn string, path []string) User {
		return User{Key: key, Login: login, SAMAccountName: sam, CN: cn, OUPath: path,
			Mail: strings.NewReplacer("*", "", "(", "", ")", "", "\\", "").Replace(key) + "@" + Domain}
	}
	users := []User{
		{Key: "unicode-de", Login: "jürgen.müller", CN: "Jürgen Müller", GivenName: "Jürgen", Surname: "Müller", OUPath: pathSpecial, Mail: "juergen.mueller@" + Domain},
		{Key: "unicode-zh", Login: "李小龍", CN: "李小龍", GivenName: "小龍", Surname: "李", OUPath: pathSpecial, Mail: "li.xiaolong@" + Domain},
		{Key: "unicode-ru", Login: "дмитрий.ш", CN: "Дмитрий Шостакович", GivenName: "Дмитрий", Surname: "Шостакович", OUPath: pathSpecial, Mail: "dmitri.s@" + Domain},
		s("sp-comma", "sp.comma", "", "Comma, Carla", pathSpecial),
		s("sp-plus", "sp.plus", "", "Plus+Paul", pathSpecial),
		s("sp-quote", "sp.quote", "", `Quote "Quinn"`, pathLab),
		s("sp-backslash", `sp\backslash`, "sp.backslash", `Back\Slash Bob`, pathSpecial),
		s("sp-angle", "sp.angle", "", "<Angle> Ann", pathSpecial),
		s("sp-semicolon", "sp.semicolon", "", "Semi;Colon Sam", pathSpecial),
		s("sp-equals", "sp.equals", "", "Equals=Eve", pathSpecial),
		s("sp-hash", "sp.hash", "", "#Hash Hank", pathSpecial),
		s("sp-leading-space", "sp.leading", "", " Leading Lee", pathSpecial),
		s("sp-trailing-space", "sp.trailing", "", "Trailing Tom ", pathSpecial),
		s("sp-star", "sp*star", "sp.star", "Star*Stan", pathSpecial),
		s("sp-parens", "sp(paren)", "", "Paren (Pat)", pathSpecial),
		s("sp-all", `sp.all,+"\<>;=*()#`, "sp.all", ` #All ,+"\<>;=*() Chars `, pathLab),
		{Key: "dupe-eng", Login: "dupe", SAMAccountName: "dupe", CN: "Dupe Login", DisplayName: "Dupe Login", OUPath: pathEng, Mail: "dupe.eng@" + Domain},
		{Key: "dupe-sales", Login: "dupe", SAMAccountName: "dupe.sales", CN: "Dupe Login", DisplayName: "Dupe Login", OUPath: pathSales, Mail: "dupe.sales@" + Domain},
		{Key: "shared-mail-1", Login: "shared.one", CN: "Shared Mail One", OUPath: pathEng, Mail: "shared@" + Domain},
		{Key: "shared-mail-2", Login: "shared.two", CN: "Shared Mail Two", OUPath: pathSales, Mail: "shared@" + Domain},
		{Key: "disabled", Login: "disabled.user", CN: "Disabled User", OUPath: pathSpecial, Mail: "disabled.user@" + Domain, Disabled: true},
		{Key: "locked", Login: "locked.user", CN: "Locked User", OUPath: pathSpecial, Mail: "locked.user@" + Domain, Locked: true},
		{Key: "expired", Login: "expired.user", CN: "Expired User", OUPath: pathSpecial, Mail: "expired.user@" + Domain, Expired: true},
		{Key: "pwexpired", Login: "pwexpired.user", CN: "PwExpired User", OUPath: pathSpecial, Mail: "pwexpired.user@" + Domain, Expired: true, PasswordExpired: true},
		{Key: "mustchange", Login: "mustchange.user", CN: "MustChange User", OUPath: pathSpecial, Mail: "mustchange.user@" + Domain, MustChange: true},
		{Key: "nested", Login: "nested.user", CN: "Nested User", OUPath: pathSpecial, Mail: "nested.user@" + Domain},
		{Key: "cycle-a", Login: "cycle.user.a", CN: "Cycle User A", OUPath: pathSpecial, Mail: "cycle.user.a@" + Domain},
		{Key: "cycle-b", Login: "cycle.user.b", CN: "Cycle User B", OUPath: pathSpecial, Mail: "cycle.user.b@" + Domain},
	}
	return users
}

const pwAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// password returns a random password meeting AD complexity rules.
func password(rng *rand.Rand) string {
	b := []byte("Lp-")
	for range 10 {
		b = append(b, pwAlphabet[rng.IntN(len(pwAlphabet))])
	}
	return string(append(b, "-9x"...))
}

func makeGroups(d *Dataset, rng *rand.Rand) []Group {
	var regular []string
	for _, u := range d.Users {
		if !u.Special {
			regular = append(regular, u.Key)
		}
	}
	pick := func(n int) []string { // n regular users, deterministic
		var out []string
		for i := 0; i < n && len(regular) > 0; i++ {
			out = append(out, regular[rng.IntN(len(regular))])
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	g := func(name string, path []string, users []string, groups ...string) Group {
		if len(users) == 0 && len(groups) == 0 {
			users = []string{"dupe-eng"} // tiny datasets: groupOfNames needs a member
		}
		return Group{Name: name, SAMAccountName: name, OUPath: path, Users: users, Groups: groups}
	}
	big := regular[:min(bigGroupSize, len(regular))]
	var vpn []string
	for _, k := range regular {
		if rng.IntN(10) == 0 {
			vpn = append(vpn, k)
		}
	}
	groups := []Group{
		g(BigGroup, pathGroups, slices.Clone(big)),
		g("vpn-users", pathGroups, vpn),
		g("nest-l1", pathNested, pick(2), "nest-l2"),
		g("nest-l2", pathNested, pick(3), "nest-l3"),
		g("nest-l3", pathNested, append(pick(5), "nested")),
		g("cycle-a", pathNested, []string{"cycle-a"}, "cycle-b"),
		g("cycle-b", pathNested, []string{"cycle-b"}, "cycle-a"),
	}
	var specialChars []string
	for _, u := range d.Users {
		if strings.HasPrefix(u.Key, "sp-") {
			specialChars = append(specialChars, u.Key)
		}
	}
	sg := g(`Group, "Special" <#1>`, pathGroups, specialChars)
	sg.SAMAccountName = "group.special"
	groups = append(groups, sg)
	// Department groups: up to 300 users of each department subtree.
	for _, dept := range []string{"Engineering", "Sales", "Support"} {
		var members []string
		for _, u := range d.Users {
			if !u.Special && len(u.OUPath) > 1 && u.OUPath[1] == dept && len(members) < 300 {
				members = append(members, u.Key)
			}
		}
		groups = append(groups, g("dept-"+strings.ToLower(dept), pathGroups, members))
	}
	return groups
}

func (d *Dataset) userIndex() map[string]int {
	m := make(map[string]int, len(d.Users))
	for i, u := range d.Users {
		m[u.Key] = i
	}
	return m
}

// User returns the user with the given key.
func (d *Dataset) User(key string) (User, bool) {
	for _, u := range d.Users {
		if u.Key == key {
			return u, true
		}
	}
	return User{}, false
}

// Group returns the group with the given name.
func (d *Dataset) Group(name string) (Group, bool) {
	for _, g := range d.Groups {
		if g.Name == name {
			return g, true
		}
	}
	return Group{}, false
}

// UsersUnder returns the users directly in the OU at path (subtree false) or
// anywhere below it (subtree true). An empty path means the whole dataset.
func (d *Dataset) UsersUnder(path []string, subtree bool) []User {
	var out []User
	for _, u := range d.Users {
		if under(u.OUPath, path, subtree) {
			out = append(out, u)
		}
	}
	return out
}

// OUsUnder returns the OUs strictly below the OU at path: its children
// (subtree false) or all descendants (subtree true).
func (d *Dataset) OUsUnder(path []string, subtree bool) []OU {
	var out []OU
	for _, o := range d.OUs {
		if len(o.Path) > len(path) && under(o.Path[:len(o.Path)-1], path, subtree) {
			out = append(out, o)
		}
	}
	return out
}

func under(p, root []string, subtree bool) bool {
	if subtree {
		return len(p) >= len(root) && slices.Equal(p[:len(root)], root)
	}
	return slices.Equal(p, root)
}

// UsersWithLogin returns the users whose login on a server of the given
// flavor is login (exact match).
func (d *Dataset) UsersWithLogin(flavor, login string) []User {
	var out []User
	for _, u := range d.Users {
		if u.LoginFor(flavor) == login {
			out = append(out, u)
		}
	}
	return out
}

// UsersWithMail returns the users whose mail is mail.
func (d *Dataset) UsersWithMail(mail string) []User {
	var out []User
	for _, u := range d.Users {
		if strings.EqualFold(u.Mail, mail) {
			out = append(out, u)
		}
	}
	return out
}

// GroupsOf returns the names of every group the user with key belongs to,
// directly or through nested groups, sorted. Cycles are followed once.
func (d *Dataset) GroupsOf(key string) []string {
	parents := map[string][]string{} // group -> groups containing it
	for _, g := range d.Groups {
		for _, m := range g.Groups {
			parents[m] = append(parents[m], g.Name)
		}
	}
	u, ok := d.User(key)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	queue := slices.Clone(u.Groups)
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		if seen[g] {
			continue
		}
		seen[g] = true
		queue = append(queue, parents[g]...)
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// MembersOf returns the keys of the users in group name: direct members
// (nested false) or members through nested groups too (nested true), sorted.
func (d *Dataset) MembersOf(name string, nested bool) []string {
	seenG := map[string]bool{}
	seenU := map[string]bool{}
	queue := []string{name}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if seenG[n] {
			continue
		}
		seenG[n] = true
		g, ok := d.Group(n)
		if !ok {
			continue
		}
		for _, k := range g.Users {
			seenU[k] = true
		}
		if nested {
			queue = append(queue, g.Groups...)
		}
	}
	out := make([]string, 0, len(seenU))
	for k := range seenU {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
