package directory

import (
	"errors"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestADSubCodes(t *testing.T) {
	tests := []struct {
		name string
		diag string
		want Reason
	}{
		{"bad password", "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 52e, v3839", ReasonBadPassword},
		{"locked", "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 775, v3839", ReasonLocked},
		{"disabled", "80090308: LdapErr: DSID-0C09042A, comment: AcceptSecurityContext error, data 533, v3839", ReasonDisabled},
		{"password expired", "AcceptSecurityContext error, data 532, v3839", ReasonPasswordExpired},
		{"account expired", "AcceptSecurityContext error, data 701, v3839", ReasonAccountExpired},
		{"must change", "AcceptSecurityContext error, data 773, v3839", ReasonMustChange},
		{"unknown sub-code", "AcceptSecurityContext error, data 999, v3839", ReasonUnknown},
		{"openldap plain", "", ReasonBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New(tt.diag))
			assert.Equal(t, tt.want, bindReason(err, nil, false))
		})
	}
}

func TestPasswordPolicyReasons(t *testing.T) {
	tests := []struct {
		name     string
		code     int8
		disabled bool
		want     Reason
	}{
		{"expired", 0, false, ReasonPasswordExpired},
		{"locked", 1, false, ReasonLocked},
		{"locked forever is disabled", 1, true, ReasonDisabled},
		{"change after reset", 2, false, ReasonMustChange},
		{"no error", -1, false, ReasonBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pp := ldap.NewControlBeheraPasswordPolicy()
			pp.Error = tt.code
			err := ldap.NewError(ldap.LDAPResultInvalidCredentials, errors.New(""))
			assert.Equal(t, tt.want, bindReason(err, pp, tt.disabled))
		})
	}
}

func TestReasonNames(t *testing.T) {
	for r := ReasonUnknown; r <= ReasonEmptyPassword; r++ {
		assert.Equal(t, r, ParseReason(r.String()), r.String())
	}
	assert.Equal(t, ReasonUnknown, ParseReason("nonsense"))
}

func TestDetectProfile(t *testing.T) {
	tests := []struct {
		name  string
		attrs map[string][]string
		want  Profile
	}{
		{"ad capability", map[string][]string{"supportedCapabilities": {"1.2.840.113556.1.4.800"}}, ProfileActiveDirectory},
		{"ad forest", map[string][]string{"forestFunctionality": {"7"}}, ProfileActiveDirectory},
		{"ad gc", map[string][]string{"isGlobalCatalogReady": {"TRUE"}}, ProfileActiveDirectory},
		{"openldap vendor", map[string][]string{"vendorName": {"OpenLDAP"}}, ProfileOpenLDAP},
		{"openldap class", map[string][]string{"objectClass": {"top", "OpenLDAProotDSE"}}, ProfileOpenLDAP},
		{"unknown is openldap", map[string][]string{}, ProfileOpenLDAP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, detectProfile(ldap.NewEntry("", tt.attrs)))
		})
	}
}

func TestFormatGUID(t *testing.T) {
	// objectGUID bytes as stored, and the string Windows shows.
	b := []byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
	assert.Equal(t, "12345678-1234-5678-9abc-def012345678", formatGUID(b))
	assert.Equal(t, "abcd", formatGUID([]byte{0xab, 0xcd}))
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in     string
		attr   string
		lo, hi int
		ranged bool
	}{
		{"member", "member", 0, -1, false},
		{"member;range=0-1499", "member", 0, 1499, true},
		{"Member;Range=1500-*", "Member", 1500, -1, true},
		{"member;range=5-1", "member", 0, -1, false},
		{"member;range=x-1", "member", 0, -1, false},
		{"member;range=", "member", 0, -1, false},
		{"member;binary", "member", 0, -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			attr, lo, hi, ranged := parseRange(tt.in)
			assert.Equal(t, tt.attr, attr)
			assert.Equal(t, tt.ranged, ranged)
			if tt.ranged {
				assert.Equal(t, tt.lo, lo)
				assert.Equal(t, tt.hi, hi)
			}
		})
	}
}

func TestSameDN(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{`cn=Comma\, Carla,ou=Special,dc=x`, `CN=Comma\2C Carla,OU=Special,DC=x`, true},
		{`cn=a+sn=b,dc=x`, `sn=B+cn=A,dc=x`, true},
		{`cn=\ Leading,dc=x`, `cn=\20Leading,dc=x`, true},
		{`cn=\#Hash,dc=x`, `cn=\23Hash,dc=x`, true},
		{`cn=a,dc=x`, `cn=a,dc=y`, false},
		{`cn=a,dc=x`, `cn=a`, false},
		{`cn=a,dc=x`, `not a dn`, false},
	}
	for _, tt := range tests {
		t.Run(tt.a+"|"+tt.b, func(t *testing.T) {
			assert.Equal(t, tt.want, SameDN(tt.a, tt.b))
		})
	}
}

func TestEscapeRDNValueRoundTrip(t *testing.T) {
	for _, v := range []string{`Comma, Carla`, ` #All ,+"\<>;=*() Chars `, "#x", " x ", "Jürgen", "a\x00b"} {
		t.Run(v, func(t *testing.T) {
			d, err := ldap.ParseDN("cn=" + escapeRDNValue(v) + ",dc=x")
			require.NoError(t, err)
			assert.Equal(t, v, d.RDNs[0].Attributes[0].Value)
		})
	}
}

func TestMappingValidate(t *testing.T) {
	tests := []struct {
		name string
		m    Mapping
		ok   bool
	}{
		{"zero", Mapping{}, true},
		{"ous", Mapping{OUs: []string{"ou=a,dc=x", `ou=b\,c,dc=x`}}, true},
		{"bad ou", Mapping{OUs: []string{"ou=a,,dc"}}, false},
		{"bad group", Mapping{Groups: []string{"=x"}}, false},
		{"filter", Mapping{Filter: "(department=Sales)"}, true},
		{"unbalanced filter", Mapping{Filter: "(department=Sales"}, false},
		{"injection-shaped filter", Mapping{Filter: "(a=b))(|(c=d)"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, ErrInvalidMapping)
			}
		})
	}
}

func TestMappingDedupesNestedOUs(t *testing.T) {
	c, err := Mapping{OUs: []string{"ou=a,dc=x", "OU=B,ou=a,dc=x", "ou=A,dc=x", "ou=c,dc=x"}}.compile()
	require.NoError(t, err)
	var got []string
	for _, b := range c.bases {
		got = append(got, canonicalDN(b))
	}
	assert.Equal(t, []string{"ou=a,dc=x", "ou=c,dc=x"}, got)
	c, err = Mapping{OneLevel: true, OUs: []string{"ou=a,dc=x", "ou=b,ou=a,dc=x"}}.compile()
	require.NoError(t, err)
	assert.Len(t, c.bases, 2, "one-level OUs never overlap")
}

func TestInScope(t *testing.T) {
	u := User{DN: `cn=Comma\, Carla,ou=Special,ou=Corp,dc=x`, Groups: []string{"CN=G1,ou=Groups,dc=x"}}
	tests := []struct {
		name string
		m    Mapping
		want bool
	}{
		{"everything", Mapping{}, true},
		{"subtree", Mapping{OUs: []string{"ou=corp,dc=x"}}, true},
		{"one level miss", Mapping{OUs: []string{"ou=corp,dc=x"}, OneLevel: true}, false},
		{"one level hit", Mapping{OUs: []string{"OU=Special,OU=Corp,DC=X"}, OneLevel: true}, true},
		{"other ou", Mapping{OUs: []string{"ou=sales,dc=x"}}, false},
		{"group hit", Mapping{Groups: []string{"cn=g1,ou=groups,dc=x"}}, true},
		{"group miss", Mapping{Groups: []string{"cn=g2,ou=groups,dc=x"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.m.InScope(u))
		})
	}
}

func TestCursorRoundTrip(t *testing.T) {
	for _, d := range []cursorData{
		{Profile: "ad", Server: "12345678-1234-5678-9abc-def012345678", Mapping: "m", USN: 4711},
		{Profile: "openldap", Server: "uuid", Mapping: "m", CSN: "20261125221500.123456Z#000000#000#000000"},
	} {
		got, err := parseCursor(d.encode())
		require.NoError(t, err)
		assert.Equal(t, d, got)
	}
	for _, bad := range []Cursor{"", "dc1.", "dc2.e30", "dc1.!!", "dc1.e30", "dc1." + "eyJwIjoib3BlbmxkYXAiLCJ0IjoiMjAyNjEyIn0"} {
		_, err := parseCursor(bad)
		assert.ErrorIs(t, err, ErrCursorInvalid, string(bad))
	}
}

func TestGroupIndexCycle(t *testing.T) {
	ix := &groupIndex{byKey: map[string]int32{}, parents: map[string][]int32{}}
	add := func(g string, members ...string) {
		i := int32(len(ix.dns))
		ix.dns = append(ix.dns, g)
		ix.keys = append(ix.keys, dnKey(g))
		ix.byKey[dnKey(g)] = i
		var keys []string
		for _, m := range members {
			keys = append(keys, dnKey(m))
			ix.parents[dnKey(m)] = append(ix.parents[dnKey(m)], i)
		}
		ix.members = append(ix.members, keys)
	}
	add("cn=A,dc=x", "cn=B,dc=x", "cn=u1,dc=x")
	add("cn=B,dc=x", "cn=A,dc=x", "cn=u2,dc=x")
	add("cn=C,dc=x", "cn=B,dc=x")
	assert.ElementsMatch(t, []string{"cn=B,dc=x", "cn=A,dc=x", "cn=C,dc=x"}, ix.groupsOf(dnKey("CN=u2,DC=x"), 32))
	assert.ElementsMatch(t, []string{"cn=A,dc=x", "cn=B,dc=x", "cn=C,dc=x"}, ix.groupsOf(dnKey("cn=u1,dc=x"), 32))
	assert.Equal(t, []string{"cn=B,dc=x"}, ix.groupsOf(dnKey("cn=u2,dc=x"), 1), "depth bound")
	set := ix.memberSet([]string{"cn=c,dc=x"}, 32)
	assert.Contains(t, set, dnKey("cn=u1,dc=x"))
	assert.Contains(t, set, dnKey("cn=u2,dc=x"))
	assert.Empty(t, ix.groupsOf(dnKey("cn=nobody,dc=x"), 32))
}

func TestPoolClosesIdleConnections(t *testing.T) {
	// The reaper is driven directly with aged timestamps: the pool's
	// connections are real TCP, which testing/synctest cannot fake.
	f := startInternalFake(t)
	c, err := Open(Config{URLs: []string{f}, BindDN: "cn=svc,dc=x", BindPassword: "pw", Plaintext: true, IdleTimeout: time.Hour})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, c.search.idleCount())

	c.search.mu.Lock()
	for _, cn := range c.search.idle {
		cn.used = cn.used.Add(-30 * time.Minute)
	}
	c.search.mu.Unlock()
	c.search.reap()
	assert.Equal(t, 1, c.search.idleCount(), "half-idle connection kept")

	c.search.mu.Lock()
	var l *ldap.Conn
	for _, cn := range c.search.idle {
		cn.used = cn.used.Add(-31 * time.Minute)
		l = cn.l
	}
	c.search.mu.Unlock()
	c.search.reap()
	assert.Equal(t, 0, c.search.idleCount())
	assert.True(t, l.IsClosing(), "reaped connection is closed")
}

func TestADAccountExpired(t *testing.T) {
	now := time.Date(2026, 12, 2, 5, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name, v string
		want    bool
	}{
		{"never (0)", "0", false},
		{"never (max)", "9223372036854775807", false},
		{"absent", "", false},
		{"garbage", "soon", false},
		{"1970-01-01, the test bed's expired.user", "116444736000000000", true},
		// 2026-12-02T04:59:59Z and 05:00:01Z: (unix seconds + 11644473600) * 1e7.
		{"a second ago", "134406611990000000", true},
		{"in a second", "134406612010000000", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, adAccountExpired(tt.v, now))
		})
	}
}
