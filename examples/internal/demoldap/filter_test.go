package demoldap

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFilterMatch(t *testing.T) {
	attrs := map[string][]string{
		"objectclass": {"top", "inetOrgPerson"},
		"uid":         {"alice.martin"},
		"mail":        {"Alice@ACME.example"},
		"cn":          {"a(b)*c"},
		"entrycsn":    {"20261125221500.000001Z#000002#000#000000"},
		"member":      {"UID=bob, OU=People,dc=acme,dc=example"},
	}
	get := func(n string) []string { return attrs[n] }
	cases := []struct {
		filter string
		want   bool
	}{
		{"(objectClass=*)", true},
		{"(uid=alice.martin)", true},
		{"(UID=ALICE.MARTIN)", true},
		{"(uid=bob)", false},
		{"(mail=alice@acme.example)", true},
		{"(uid=ali*)", true},
		{"(uid=*martin)", true},
		{"(uid=a*ce*tin)", true},
		{"(uid=*bob*)", false},
		{`(cn=a\28b\29\2ac)`, true},
		{`(cn=a\28b\29*)`, true},
		{"(&(objectClass=inetOrgPerson)(|(uid=x)(uid=alice.martin)))", true},
		{"(&(objectClass=inetOrgPerson)(!(uid=alice.martin)))", false},
		{"(entryCSN>=20261125221500.000001Z#000002#000#000000)", true},
		{"(entryCSN>=20261125221500.000001Z#000003#000#000000)", false},
		{"(entryCSN<=20261125221500.000001Z#000003#000#000000)", true},
		{"(member=uid=bob,ou=people,dc=acme,dc=example)", true},
		{"(member:1.2.840.113556.1.4.1941:=uid=bob,ou=people,dc=acme,dc=example)", false},
		{"(missing=*)", false},
		{"(&)", true},
		{"(|)", false},
	}
	for _, tc := range cases {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := parseFilter(tc.filter)
			require.NoError(t, err)
			assert.Equal(t, tc.want, f.match(get))
		})
	}
}

func TestFilterMalformed(t *testing.T) {
	for _, s := range []string{"", "uid=x", "(uid=x", "(=x)", "(uid=x))", `(uid=\2)`, `(uid=\zz)`, "(&(uid=x)", "(!(uid=x)(uid=y))",
		strings.Repeat("(!", 100) + "(uid=x)" + strings.Repeat(")", 100)} {
		t.Run(s, func(t *testing.T) {
			_, err := parseFilter(s)
			assert.ErrorIs(t, err, errFilter)
		})
	}
}

func TestDN(t *testing.T) {
	a, ok := normDN("UID=Bob , OU=People,DC=acme, dc=example")
	require.True(t, ok)
	b, ok := normDN(`uid=bob,ou=people,dc=acme,dc=example`)
	require.True(t, ok)
	assert.Equal(t, a, b)
	c, ok := normDN(`cn=a\,ou=people,dc=acme,dc=example`)
	require.True(t, ok)
	assert.Equal(t, "dc=acme,dc=example", parentOf(c))
	assert.False(t, under(c, "ou=people,dc=acme,dc=example"), "an escaped comma is not a separator")
	assert.True(t, under(b, "dc=acme,dc=example"))
	_, ok = normDN("not a dn")
	assert.False(t, ok)
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"(objectClass=*)", "(&(uid=a*b)(!(mail=x)))", `(cn=\28\29)`, "(x>=1)", "(m:1.2:=v)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter(s)
		if err != nil {
			return
		}
		flt.match(func(string) []string { return []string{"value", "uid=x,dc=y"} })
	})
}

func FuzzNormDN(f *testing.F) {
	for _, s := range []string{"uid=a,dc=b", `cn=a\,b+sn=c,dc=d`, `cn=\41`, "=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normDN(s)
		if !ok {
			return
		}
		again, ok := normDN(n)
		if !ok || again != n {
			t.Fatalf("normDN not idempotent: %q -> %q -> %q (%v)", s, n, again, ok)
		}
	})
}
