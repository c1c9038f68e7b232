package demoldap

import (
	"encoding/hex"
	"strings"
)

// normDN returns a canonical form of an RFC 4514 DN for comparisons:
// attribute types and values lower-cased, spaces around separators dropped,
// escapes decoded and re-escaped one way. ok is false for malformed DNs.
func normDN(dn string) (string, bool) {
	rdns, ok := splitDN(dn)
	if !ok {
		return "", false
	}
	return strings.Join(rdns, ","), true
}

// splitDN parses dn into normalised "type=value" RDNs, leaf first.
// Multi-valued RDNs ("a=1+b=2") are kept as one normalised string.
func splitDN(dn string) ([]string, bool) {
	dn = strings.TrimSpace(dn)
	if dn == "" {
		return nil, true
	}
	var (
		out  []string
		rdn  []string // "type=value" parts of the current RDN
		cur  strings.Builder
		typ  string
		inV  bool
		nest int
	)
	flushAVA := func() bool {
		if !inV {
			return false
		}
		v := strings.TrimSpace(cur.String())
		rdn = append(rdn, strings.ToLower(strings.TrimSpace(typ))+"="+escapeValue(strings.ToLower(v)))
		cur.Reset()
		typ, inV = "", false
		return true
	}
	for i := 0; i < len(dn); i++ {
		c := dn[i]
		switch {
		case c == '\\':
			if i+1 >= len(dn) || !inV {
				return nil, false
			}
			if b, err := hex.DecodeString(safeSlice(dn, i+1, i+3)); err == nil && len(b) == 1 {
				cur.WriteByte(b[0])
				i += 2
			} else {
				cur.WriteByte(dn[i+1])
				i++
			}
		case c == '=' && !inV:
			typ = cur.String()
			if !validType(strings.TrimSpace(typ)) {
				return nil, false
			}
			cur.Reset()
			inV = true
		case (c == ',' || c == ';' || c == '+') && nest == 0:
			if !flushAVA() {
				return nil, false
			}
			if c != '+' {
				out = append(out, strings.Join(rdn, "+"))
				rdn = nil
			}
		default:
			cur.WriteByte(c)
		}
	}
	if !flushAVA() {
		return nil, false
	}
	out = append(out, strings.Join(rdn, "+"))
	return out, true
}

func safeSlice(s string, i, j int) string {
	if j > len(s) {
		return ""
	}
	return s[i:j]
}

// escapeValue escapes an attribute value for a DN (RFC 4514 section 2.4).
func escapeValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case strings.IndexByte(`,+"\<>;=`, c) >= 0,
			c == '#' && i == 0,
			c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			b.WriteString(`\` + hex.EncodeToString([]byte{c}))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// parentOf returns the normalised parent of a normalised DN ("" for a
// single RDN).
func parentOf(norm string) string {
	rdns, ok := splitDN(norm)
	if !ok || len(rdns) <= 1 {
		return ""
	}
	return strings.Join(rdns[1:], ",")
}

// under reports whether normalised child is strictly below normalised base.
func under(child, base string) bool {
	c, ok1 := splitDN(child)
	b, ok2 := splitDN(base)
	if !ok1 || !ok2 || len(c) <= len(b) {
		return false
	}
	tail := c[len(c)-len(b):]
	for i := range b {
		if tail[i] != b[i] {
			return false
		}
	}
	return true
}

// validType accepts an attribute type: a keystring or a numeric OID.
func validType(t string) bool {
	if t == "" {
		return false
	}
	alpha := t[0] >= 'A' && t[0] <= 'Z' || t[0] >= 'a' && t[0] <= 'z'
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case c >= '0' && c <= '9':
		case alpha && (c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-'):
		case !alpha && c == '.':
		default:
			return false
		}
	}
	return true
}
