package directorytest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEscapeRDNValue(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "Bob Smith", "Bob Smith"},
		{"comma", "Smith, Bob", `Smith\, Bob`},
		{"all specials", `a"+,;<>\=b`, `a\"\+\,\;\<\>\\\=b`},
		{"leading hash", "#1", `\#1`},
		{"inner hash", "a#1", "a#1"},
		{"leading and trailing space", " a b ", `\ a b\ `},
		{"single space", " ", `\ `},
		{"nul", "a\x00b", `a\00b`},
		{"filter specials untouched", "*()", "*()"},
		{"unicode untouched", "Jürgen", "Jürgen"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, escapeRDNValue(tc.in))
			assert.Equal(t, tc.in, unescapeRDNValue(t, tc.want))
		})
	}
}

func FuzzEscapeRDNValue(f *testing.F) {
	for _, s := range []string{"", " #a ", `,+"\<>;=`, "Jürgen"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := escapeRDNValue(s)
		require.Equal(t, s, unescapeRDNValue(t, e))
		if len(e) > 0 {
			require.NotEqual(t, byte(' '), e[0])
			require.NotEqual(t, byte('#'), e[0])
		}
	})
}

// unescapeRDNValue reverses RFC 4514 escaping, independently of escapeRDNValue.
func unescapeRDNValue(t testing.TB, s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			require.NotContains(t, `"+,;<>`, string(s[i]), "unescaped special in %q", s)
			b = append(b, s[i])
			continue
		}
		require.Less(t, i+1, len(s), "dangling backslash in %q", s)
		if s[i+1] == '0' && i+2 < len(s) && s[i+2] == '0' {
			b = append(b, 0)
			i += 2
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func TestLDIFLine(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ name, in, want string }{
		{"safe", "Bob", "cn: Bob"},
		{"empty", "", "cn: "},
		{"leading space", " Bob", "cn:: " + b64(" Bob")},
		{"trailing space", "Bob ", "cn:: " + b64("Bob ")},
		{"leading colon", ":Bob", "cn:: " + b64(":Bob")},
		{"leading angle", "<Bob", "cn:: " + b64("<Bob")},
		{"inner colon and angle", "a:<b", "cn: a:<b"},
		{"newline", "a\nb", "cn:: " + b64("a\nb")},
		{"carriage return", "a\rb", "cn:: " + b64("a\rb")},
		{"non-ascii", "Zoë", "cn:: " + b64("Zoë")},
		{"nul", "a\x00", "cn:: " + b64("a\x00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ldifLine("cn", tc.in))
		})
	}
}

// parseLDIF is a minimal reader of WriteLDIF's output (no folding).
func parseLDIF(t *testing.T, data []byte) []map[string][]string {
	var records []map[string][]string
	cur := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(cur) > 0 {
				records = append(records, cur)
			}
			cur = map[string][]string{}
			continue
		}
		if line == "-" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		require.True(t, ok, "line %q", line)
		if strings.HasPrefix(value, ": ") {
			v, err := base64.StdEncoding.DecodeString(value[2:])
			require.NoError(t, err)
			value = string(v)
		} else {
			value = strings.TrimPrefix(value, " ")
		}
		cur[name] = append(cur[name], value)
	}
	require.NoError(t, sc.Err())
	return records
}

func TestWriteLDIF(t *testing.T) {
	d := Generate(7, 120)
	const base = "dc=liaison,dc=test"
	for _, flavor := range []string{FlavorOpenLDAP, FlavorSamba} {
		t.Run(flavor, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, d.WriteLDIF(&buf, flavor, base))
			recs := parseLDIF(t, buf.Bytes())
			byDN := map[string]map[string][]string{}
			adds := 0
			for _, r := range recs {
				require.Len(t, r["dn"], 1)
				if ct := r["changetype"]; len(ct) == 0 || ct[0] == "add" {
					byDN[r["dn"][0]] = r
					adds++
				}
			}
			assert.Equal(t, len(d.OUs)+len(d.Groups)+len(d.Users), adds)
			assert.Len(t, byDN, adds, "DNs are unique")

			all, ok := d.User("sp-all")
			require.True(t, ok)
			r := byDN[all.DN(base)]
			require.NotNil(t, r, "entry for %q", all.DN(base))
			assert.Equal(t, []string{all.CN}, r["cn"])
			assert.True(t, strings.HasPrefix(all.DN(base), `cn=\ #All \,\+\"\\\<\>\;\=*() Chars\ ,ou=Lab\, R&D`), all.DN(base))

			locked, _ := d.User("disabled")
			lr := byDN[locked.DN(base)]
			require.NotNil(t, lr)
			if flavor == FlavorSamba {
				assert.Equal(t, []string{"514"}, lr["userAccountControl"])
				assert.Equal(t, []string{locked.SAMAccountName}, lr["sAMAccountName"])
				assert.Equal(t, []string{adPassword(locked.Password)}, lr["unicodePwd"])
				pwx, _ := d.User("pwexpired")
				assert.Equal(t, []string{"132223104000000000"}, byDN[pwx.DN(base)]["pwdLastSet"])
				assert.Empty(t, byDN[pwx.DN(base)]["accountExpires"])
				exp, _ := d.User("expired")
				assert.Equal(t, []string{"116444736000000000"}, byDN[exp.DN(base)]["accountExpires"])
				// Group-in-group members come as modify records, after every add.
				cyc, _ := d.Group("cycle-a")
				assert.NotContains(t, byDN[cyc.DN(base)]["member"], OUDN(nil, ""))
				assert.Contains(t, buf.String(), "changetype: modify\nadd: member\nmember: cn=cycle-b,ou=Nested")
			} else {
				assert.Equal(t, []string{"000001010000Z"}, lr["pwdAccountLockedTime"])
				assert.Equal(t, []string{locked.Login}, lr["uid"])
				assert.Equal(t, []string{ssha(locked.Password, locked.Key)}, lr["userPassword"])
				cyc, _ := d.Group("cycle-a")
				cr := byDN[cyc.DN(base)]
				assert.Contains(t, cr["member"], "cn=cycle-b,ou=Nested,ou=Groups,ou=Corp,"+base)
				assert.Contains(t, cr["memberOf"], "cn=cycle-b,ou=Nested,ou=Groups,ou=Corp,"+base)
			}
		})
	}
	t.Run("unknown flavor", func(t *testing.T) {
		require.ErrorContains(t, d.WriteLDIF(&bytes.Buffer{}, "novell", base), "directorytest: unknown flavor")
	})
}

func TestSSHA(t *testing.T) {
	h := ssha("secret", "k")
	require.True(t, strings.HasPrefix(h, "{SSHA}"))
	raw, err := base64.StdEncoding.DecodeString(h[6:])
	require.NoError(t, err)
	assert.Len(t, raw, 28, "20-byte SHA-1 + 8-byte salt")
	assert.NotEqual(t, h, ssha("secret2", "k"))
}
