package directory

import (
	"fmt"
	"sort"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// DNs arrive from servers escaped in different ways (Samba and OpenLDAP do
// not agree on `\2C` versus `\,`), so they are compared only after parsing
// and normalising, never as strings.

func parseDN(s string) (*ldap.DN, error) {
	d, err := ldap.ParseDN(s)
	if err != nil {
		return nil, fmt.Errorf("directory: bad DN %q: %w", s, err)
	}
	return d, nil
}

// dnKey returns a canonical form of dn for comparisons and map keys:
// attribute types and values case-folded, multi-valued RDNs sorted, values
// escaped per RFC 4514. Unparsable DNs key as themselves, lowercased, with a
// prefix that no canonical form has.
func dnKey(dn string) string {
	if k, ok := fastDNKey(dn); ok {
		return k
	}
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return "\x00" + strings.ToLower(dn)
	}
	return canonicalDN(d)
}

// fastDNKey computes dnKey without a full parse for the common DN with no
// escapes, quotes, multi-valued RDNs or hex values; ok is false otherwise.
// It must agree with canonicalDN(ParseDN(dn)) (FuzzDN checks).
func fastDNKey(dn string) (string, bool) {
	if dn == "" || strings.ContainsAny(dn, "\\\"+#;<>\x00") {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(dn))
	for i, rdn := range strings.Split(dn, ",") {
		typ, val, ok := strings.Cut(rdn, "=")
		typ = strings.Trim(typ, " ")
		val = strings.Trim(val, " ")
		if !ok || typ == "" || val == "" || !isAttrType(typ) || strings.Contains(val, "=") {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strings.ToLower(typ))
		b.WriteByte('=')
		b.WriteString(escapeRDNValue(strings.ToLower(val)))
	}
	return b.String(), true
}

func isAttrType(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func canonicalDN(d *ldap.DN) string {
	var b strings.Builder
	for i, rdn := range d.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		parts := make([]string, len(rdn.Attributes))
		for j, a := range rdn.Attributes {
			parts[j] = strings.ToLower(a.Type) + "=" + escapeRDNValue(strings.ToLower(a.Value))
		}
		sort.Strings(parts)
		b.WriteString(strings.Join(parts, "+"))
	}
	return b.String()
}

// formatDN encodes d per RFC 4514, keeping the case of types and values.
func formatDN(rdns []*ldap.RelativeDN) string {
	var b strings.Builder
	for i, rdn := range rdns {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(a.Type)
			b.WriteByte('=')
			b.WriteString(escapeRDNValue(a.Value))
		}
	}
	return b.String()
}

// escapeRDNValue escapes an attribute value for use in a DN (RFC 4514
// section 2.4): the specials anywhere, a leading space or '#', a trailing
// space, and NUL.
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		case i == 0 && (c == ' ' || c == '#'):
			b.WriteByte('\\')
			b.WriteByte(c)
		case i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// SameDN reports whether a and b name the same entry: both are parsed and
// compared attribute by attribute, case-insensitively, so differently
// escaped spellings of one DN are equal. Unparsable DNs are never equal.
func SameDN(a, b string) bool {
	da, err := ldap.ParseDN(a)
	if err != nil {
		return false
	}
	db, err := ldap.ParseDN(b)
	if err != nil {
		return false
	}
	return canonicalDN(da) == canonicalDN(db)
}

// underDN reports whether child is base itself (self true) or below it,
// only one level below when oneLevel is set.
func underDN(child, base *ldap.DN, oneLevel bool) bool {
	if !base.AncestorOfFold(child) {
		return false
	}
	return !oneLevel || len(child.RDNs) == len(base.RDNs)+1
}

// parentDN returns the DN of dn's parent, or "" for a single-RDN DN.
func parentDN(d *ldap.DN) string {
	if len(d.RDNs) < 2 {
		return ""
	}
	return formatDN(d.RDNs[1:])
}

// rdnValue returns the value of the first attribute of the first RDN.
func rdnValue(d *ldap.DN) string {
	if len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) == 0 {
		return ""
	}
	return d.RDNs[0].Attributes[0].Value
}

// Filters. User input enters a filter only through eq, which escapes it
// exactly once (RFC 4515). Everything else is fixed text or server data.

func eq(attr, value string) string {
	return "(" + attr + "=" + ldap.EscapeFilter(value) + ")"
}

func and(parts ...string) string { return compose("&", parts) }
func or(parts ...string) string  { return compose("|", parts) }

func compose(op string, parts []string) string {
	var nonEmpty []string
	for _, p := range parts {
		if p != "" {
			nonEmpty = append(nonEmpty, p)
		}
	}
	if len(nonEmpty) == 1 {
		return nonEmpty[0]
	}
	return "(" + op + strings.Join(nonEmpty, "") + ")"
}
