package directorytest

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateDeterministic(t *testing.T) {
	a, b := Generate(1, 300), Generate(1, 300)
	require.Equal(t, a, b)
	c := Generate(2, 300)
	assert.NotEqual(t, a.Users, c.Users, "a different seed gives different users")
}

func TestGenerateCounts(t *testing.T) {
	nSpecial := len(specialUsers())
	for _, tc := range []struct {
		name  string
		users int
		want  int
	}{
		{"default", DefaultUsers, DefaultUsers},
		{"small", 100, 100},
		{"fewer than the specials", 3, nSpecial},
		{"zero", 0, nSpecial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Generate(1, tc.users)
			assert.Len(t, d.Users, tc.want)
			assert.Len(t, d.UsersUnder([]string{"Corp"}, true), tc.want, "every user is under Corp")
			keys := map[string]bool{}
			for _, u := range d.Users {
				assert.False(t, keys[u.Key], "duplicate key %q", u.Key)
				keys[u.Key] = true
			}
			for _, g := range d.Groups {
				assert.NotEmpty(t, append(g.Users, g.Groups...), "group %q has members (groupOfNames needs one)", g.Name)
				for _, k := range g.Users {
					assert.True(t, keys[k], "group %q member %q exists", g.Name, k)
				}
			}
		})
	}
}

func TestGenerateHardData(t *testing.T) {
	d := Generate(1, DefaultUsers)
	byKey := func(k string) User {
		u, ok := d.User(k)
		require.True(t, ok, "user %q", k)
		return u
	}

	t.Run("nested OUs", func(t *testing.T) {
		depth := 0
		for _, o := range d.OUs {
			depth = max(depth, len(o.Path))
		}
		assert.GreaterOrEqual(t, depth, 4)
		for i, o := range d.OUs { // parents first
			if len(o.Path) > 1 {
				parent := slices.IndexFunc(d.OUs, func(p OU) bool { return slices.Equal(p.Path, o.Path[:len(o.Path)-1]) })
				assert.True(t, parent >= 0 && parent < i, "parent of %v precedes it", o.Path)
			}
		}
		assert.Len(t, d.OUsUnder([]string{"Corp", "Engineering"}, false), 2)
		assert.Len(t, d.OUsUnder([]string{"Corp", "Engineering"}, true), 3)
	})
	t.Run("big group", func(t *testing.T) {
		g, ok := d.Group(BigGroup)
		require.True(t, ok)
		assert.Greater(t, len(g.Users), 1500)
	})
	t.Run("nesting three deep", func(t *testing.T) {
		assert.Equal(t, []string{"nest-l1", "nest-l2", "nest-l3"}, d.GroupsOf("nested"))
		assert.Contains(t, d.MembersOf("nest-l1", true), "nested")
		assert.NotContains(t, d.MembersOf("nest-l1", false), "nested")
	})
	t.Run("cycle", func(t *testing.T) {
		assert.Equal(t, []string{"cycle-a", "cycle-b"}, d.GroupsOf("cycle-a"))
		assert.Equal(t, []string{"cycle-a", "cycle-b"}, d.MembersOf("cycle-b", true))
	})
	t.Run("account states", func(t *testing.T) {
		assert.True(t, byKey("disabled").Disabled)
		assert.True(t, byKey("locked").Locked)
		assert.True(t, byKey("expired").Expired)
		assert.False(t, byKey("expired").PasswordExpired)
		assert.True(t, byKey("pwexpired").Expired && byKey("pwexpired").PasswordExpired)
		assert.True(t, byKey("mustchange").MustChange)
		n := 0
		for _, u := range d.Users {
			if u.Disabled && !u.Special {
				n++
			}
		}
		assert.Equal(t, (DefaultUsers-len(specialUsers()))/50, n)
	})
	t.Run("unicode", func(t *testing.T) {
		for _, k := range []string{"unicode-de", "unicode-zh", "unicode-ru"} {
			u := byKey(k)
			assert.True(t, hasNonASCII(u.Login), "login %q", u.Login)
			assert.True(t, hasNonASCII(u.SAMAccountName), "sAMAccountName %q", u.SAMAccountName)
			assert.True(t, hasNonASCII(u.DisplayName), "display name %q", u.DisplayName)
		}
	})
	t.Run("special RDN characters", func(t *testing.T) {
		for _, c := range []string{",", "+", `"`, `\`, "<", ">", ";", "=", "#", "*", "(", ")"} {
			found := slices.ContainsFunc(d.Users, func(u User) bool { return strings.Contains(u.CN, c) })
			assert.True(t, found, "a CN holds %q", c)
		}
		assert.True(t, slices.ContainsFunc(d.Users, func(u User) bool { return strings.HasPrefix(u.CN, " ") }), "leading space")
		assert.True(t, slices.ContainsFunc(d.Users, func(u User) bool { return strings.HasSuffix(u.CN, " ") }), "trailing space")
		assert.True(t, slices.ContainsFunc(d.Users, func(u User) bool { return strings.HasPrefix(u.CN, "#") }), "leading #")
		assert.True(t, slices.ContainsFunc(d.OUs, func(o OU) bool { return strings.ContainsAny(o.Name, `,+"<>;=`) }), "special OU")
	})
	t.Run("duplicates", func(t *testing.T) {
		assert.Len(t, d.UsersWithMail("shared@"+Domain), 2)
		dupes := d.UsersWithLogin(FlavorOpenLDAP, "dupe")
		require.Len(t, dupes, 2)
		assert.NotEqual(t, dupes[0].OUPath, dupes[1].OUPath)
		assert.Len(t, d.UsersWithLogin(FlavorSamba, "dupe"), 1)
	})
	t.Run("AD constraints", func(t *testing.T) {
		sams, upns := map[string]bool{}, map[string]bool{}
		for _, u := range d.Users {
			assert.LessOrEqual(t, utf8.RuneCountInString(u.SAMAccountName), 20, u.SAMAccountName)
			assert.False(t, strings.ContainsAny(u.SAMAccountName, `"/\[]:;|=,+*?<>`), u.SAMAccountName)
			assert.False(t, sams[strings.ToLower(u.SAMAccountName)], "duplicate %q", u.SAMAccountName)
			assert.False(t, upns[strings.ToLower(u.UPN)], "duplicate %q", u.UPN)
			sams[strings.ToLower(u.SAMAccountName)], upns[strings.ToLower(u.UPN)] = true, true
			assert.Regexp(t, `^[\x21-\x7e]+@liaison\.test$`, u.Mail, "mail is IA5 on OpenLDAP")
			pw := u.Password
			assert.True(t, len(pw) >= 8 && strings.ContainsAny(pw, "0123456789") &&
				strings.ToLower(pw) != pw && strings.ToUpper(pw) != pw, "complex password %q", pw)
		}
	})
}

func hasNonASCII(s string) bool {
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return true
		}
	}
	return false
}
