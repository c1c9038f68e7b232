package directory

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzFilterValue checks that any user input placed in a filter by eq
// compiles to exactly one equality test whose value is the input, so no
// input can change the filter's structure.
func FuzzFilterValue(f *testing.F) {
	for _, s := range []string{"*", "*)(uid=*", "admin)(|(uid=*", `a\b`, "\x00", "ü", "(", ")"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p := profileFor(ProfileOpenLDAP)
		filter := and(p.userFilter, p.lookupFilter(v))
		pkt, err := ldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("filter %q for %q does not compile: %v", filter, v, err)
		}
		back, err := ldap.DecompileFilter(pkt)
		if err != nil {
			t.Fatalf("decompile %q: %v", filter, err)
		}
		// The value appears as one escaped equality for uid and one for mail.
		e := ldap.EscapeFilter(v)
		want := "(&(|(objectClass=inetOrgPerson)(objectClass=posixAccount))(|(uid=" + e + ")(mail=" + e + ")))"
		if filter != want {
			t.Fatalf("filter %q, want %q", filter, want)
		}
		if strings.Count(back, "(") != strings.Count(want, "(")-2*strings.Count(e, "(") {
			t.Fatalf("structure changed: %q", back)
		}
	})
}

// FuzzDN checks that parsing and normalising hostile DNs never panics,
// that normalisation is stable, and that a value escaped by escapeRDNValue
// parses back to itself.
func FuzzDN(f *testing.F) {
	for _, s := range []string{`cn=Comma\, Carla,ou=x,dc=y`, `cn=\ a\ ,dc=x`, `cn=#Hash`, `cn=a+sn=b,dc=x`, `cn=\2C`, "", "=", `cn=\`, `cn=#01`} {
		f.Add(s, "v")
	}
	f.Fuzz(func(t *testing.T, dn, value string) {
		k := dnKey(dn)
		if fk, ok := fastDNKey(dn); ok {
			d, err := ldap.ParseDN(dn)
			if err != nil {
				t.Fatalf("fast path accepted %q, ParseDN refuses it: %v", dn, err)
			}
			if slow := canonicalDN(d); slow != fk {
				t.Fatalf("fast key %q != parsed key %q for %q", fk, slow, dn)
			}
		}
		if d, err := ldap.ParseDN(dn); err == nil && utf8.ValidString(dn) && validTypes(d) {
			// The canonical form is a fixed point.
			if d2, err := ldap.ParseDN(canonicalDN(d)); err != nil || canonicalDN(d2) != k {
				t.Fatalf("dnKey not stable: %q -> %q (%v)", dn, k, err)
			}
			_ = parentDN(d)
			_ = rdnValue(d)
		}
		if value == "" || !utf8.ValidString(value) {
			return // DN values are UTF-8 (RFC 4514)
		}
		d, err := ldap.ParseDN("cn=" + escapeRDNValue(value) + ",dc=x")
		if err != nil {
			t.Fatalf("escaped value %q does not parse: %v", value, err)
		}
		got := d.RDNs[0].Attributes[0].Value
		if got != value && strings.TrimSpace(value) != "" {
			t.Fatalf("round trip %q -> %q", value, got)
		}
	})
}

// FuzzParseCursor feeds hostile cursors: they are refused, never panic,
// and an accepted cursor re-encodes to an equivalent one.
func FuzzParseCursor(f *testing.F) {
	f.Add(string(cursorData{Profile: "ad", Server: "s", Mapping: "m", USN: 1}.encode()))
	f.Add(string(cursorData{Profile: "openldap", Server: "s", Mapping: "m", CSN: "20261125221500.123456Z#000000#000#000000"}.encode()))
	f.Add("dc1.")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseCursor(Cursor(s))
		if err != nil {
			return
		}
		d2, err := parseCursor(d.encode())
		if err != nil || d2 != d {
			t.Fatalf("re-encoded cursor differs: %v %+v %+v", err, d, d2)
		}
	})
}

// FuzzParseRange feeds attribute descriptions as servers might send them.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"member;range=0-1499", "member;range=1500-*", "member", "member;range=-1-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, lo, hi, ranged := parseRange(s)
		if ranged && (lo < 0 || (hi != -1 && hi < lo)) {
			t.Fatalf("bad range from %q: %d-%d", s, lo, hi)
		}
	})
}

// validTypes reports whether every attribute type is a descriptor
// (go-ldap's parser also accepts garbage types, which no server sends).
func validTypes(d *ldap.DN) bool {
	for _, r := range d.RDNs {
		for _, a := range r.Attributes {
			if a.Type == "" || !isAttrType(a.Type) {
				return false
			}
		}
	}
	return true
}

// FuzzWireMessage feeds hostile server messages to the scan decoder: they
// are refused or decoded, never panic, and entries round-trip.
func FuzzWireMessage(f *testing.F) {
	entry := tlv(nil, tagOctetString, []byte("cn=a,dc=x"))
	attr := tlv(nil, tagOctetString, []byte("uid"))
	attr = tlv(attr, tagSet, tlv(nil, tagOctetString, []byte("alice")))
	entry = tlv(entry, tagSequence, tlv(nil, tagSequence, attr))
	msg := append(berInt(tagInteger, 7), tlv(nil, appSearchEntry, entry)...)
	f.Add(tlv(nil, tagSequence, msg))
	done := append(berInt(tagEnumerated, 0), tlv(nil, tagOctetString, nil)...)
	done = tlv(done, tagOctetString, nil)
	pv := tlv(berInt(tagInteger, 0), tagOctetString, []byte("cookie"))
	ctrl := tlv(tlv(nil, tagOctetString, []byte(ldap.ControlTypePaging)), tagOctetString, tlv(nil, tagSequence, pv))
	dmsg := append(berInt(tagInteger, 7), tlv(nil, appSearchDone, done)...)
	dmsg = tlv(dmsg, ctxControls, tlv(nil, tagSequence, ctrl))
	f.Add(tlv(nil, tagSequence, dmsg))
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		buf := make([]byte, len(b))
		copy(buf, b)
		m, err := parseMessage(buf)
		if err != nil {
			return
		}
		switch m.op {
		case appSearchEntry:
			e, err := parseEntry(buf, string(buf), m.body)
			if err == nil && e == nil {
				t.Fatal("nil entry without error")
			}
		case appSearchDone:
			_ = parseResult(m.body)
			_, _ = pagingCookie(m.controls)
		}
	})
}

func TestWireEntryDecode(t *testing.T) {
	entry := tlv(nil, tagOctetString, []byte(`cn=Comma\, Carla,dc=x`))
	var attrs []byte
	a := tlv(nil, tagOctetString, []byte("uid"))
	a = tlv(a, tagSet, tlv(tlv(nil, tagOctetString, []byte("carla")), tagOctetString, []byte("c2")))
	attrs = tlv(attrs, tagSequence, a)
	g := tlv(nil, tagOctetString, []byte("objectGUID"))
	g = tlv(g, tagSet, tlv(nil, tagOctetString, []byte{0, 1, 2, 0xff}))
	attrs = tlv(attrs, tagSequence, g)
	entry = tlv(entry, tagSequence, attrs)
	msg := tlv(nil, tagSequence, append(berInt(tagInteger, 300), tlv(nil, appSearchEntry, entry)...))
	m, err := parseMessage(msg)
	require.NoError(t, err)
	assert.EqualValues(t, 300, m.id)
	e, err := parseEntry(msg, string(msg), m.body)
	require.NoError(t, err)
	assert.Equal(t, `cn=Comma\, Carla,dc=x`, e.DN)
	assert.Equal(t, []string{"carla", "c2"}, e.GetAttributeValues("uid"))
	assert.Equal(t, []byte{0, 1, 2, 0xff}, e.GetRawAttributeValue("objectGUID"))
	for _, n := range []int64{0, 1, 127, 128, 255, 256, 65535, 1 << 40, -1, -129} {
		_, c, _, err := readElem(berInt(tagInteger, n))
		require.NoError(t, err)
		v, err := parseInt(c)
		require.NoError(t, err)
		assert.Equal(t, n, v)
	}
}

// FuzzIDFilter: a stable ID from the wire (Whereabouts) becomes a filter
// that always compiles, matching one value: GUIDs round-trip, anything else
// is refused or escaped.
func FuzzIDFilter(f *testing.F) {
	f.Add("ce0a58f8-6a30-4e1c-b9af-dee8779df39b")
	f.Add("8bd6eab8-826d-1041-9025-91e2e8e4bcea")
	f.Add("*)(uid=*")
	f.Add("ce0a58f8-6a30-4e1c-b9af-dee8779df39\\")
	f.Fuzz(func(t *testing.T, id string) {
		for _, ad := range []bool{true, false} {
			p := &openLDAPProfile
			if ad {
				p = &adProfile
			}
			s, ok := idFilter(p, id)
			if !ok {
				continue
			}
			if _, err := ldap.CompileFilter(s); err != nil {
				t.Fatalf("ad=%v: id %q gave filter %q: %v", ad, id, s, err)
			}
			if ad {
				b, _ := parseGUID(id)
				if got := formatGUID(b); !strings.EqualFold(got, id) {
					t.Fatalf("GUID %q does not round-trip: %q", id, got)
				}
			}
		}
	})
}
