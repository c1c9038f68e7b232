package directorytest

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf16"
)

// OpenLDAP policy entries the generated data refers to; scripts/testbed/start
// creates them (ou=Policies under the base).
const (
	PolicyDefault  = "cn=default,ou=Policies"
	PolicyLocked   = "cn=locked,ou=Policies"
	PolicyExpiring = "cn=expiring,ou=Policies"
)

// Fixed times written into the OpenLDAP data (GeneralizedTime).
const (
	disabledLockTime = "000001010000Z" // draft-behera: locked by an administrator, forever
	lockedLockTime   = "20260101000000Z"
	expiredChanged   = "20000101000000Z"
)

// WriteLDIF writes d as LDIF (RFC 2849) for a server of the given flavor,
// under base (which must exist). For FlavorOpenLDAP the output is a content
// file for slapadd, with memberOf on members. For FlavorSamba it holds
// add records followed by "changetype: modify" records that add group
// members which are groups (AD needs a member to exist before it is
// referenced, and the cycle can't be added in one step).
func (d *Dataset) WriteLDIF(w io.Writer, flavor, base string) error {
	if flavor != FlavorOpenLDAP && flavor != FlavorSamba {
		return fmt.Errorf("directorytest: unknown flavor %q", flavor)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	samba := flavor == FlavorSamba
	for _, o := range d.OUs {
		e := entry{dn: o.DN(base)}
		e.add("objectClass", "top", "organizationalUnit")
		e.add("ou", o.Name)
		e.write(bw, samba)
	}
	idx := d.userIndex()
	groupDN := make(map[string]string, len(d.Groups))
	memberOf := map[string][]string{} // group name -> DNs of groups containing it
	for _, g := range d.Groups {
		groupDN[g.Name] = g.DN(base)
	}
	for _, g := range d.Groups {
		for _, m := range g.Groups {
			memberOf[m] = append(memberOf[m], groupDN[g.Name])
		}
	}
	for _, u := range d.Users {
		e := entry{dn: u.DN(base)}
		e.add("cn", u.CN)
		e.add("sn", u.Surname)
		e.add("givenName", u.GivenName)
		e.add("displayName", u.DisplayName)
		e.add("mail", u.Mail)
		e.add("uidNumber", strconv.Itoa(u.UIDNumber))
		e.add("gidNumber", "10000")
		if samba {
			e.add("objectClass", "top", "person", "organizationalPerson", "user")
			e.add("sAMAccountName", u.SAMAccountName)
			e.add("userPrincipalName", u.UPN)
			e.add("unixHomeDirectory", "/home/"+u.Key)
			e.add("loginShell", "/bin/sh")
			e.add("unicodePwd", adPassword(u.Password))
			uac := 0x200 // NORMAL_ACCOUNT
			if u.Disabled {
				uac |= 0x2
			}
			e.add("userAccountControl", strconv.Itoa(uac))
			switch {
			case u.PasswordExpired:
				// 2020-01-01: older than the domain's maximum password age.
				// Samba accepts a pwdLastSet other than 0 or -1 only with its
				// bypass-password-hash control (scripts/testbed/samba-load.py).
				e.add("pwdLastSet", "132223104000000000")
			case u.Expired:
				e.add("accountExpires", "116444736000000000") // 1970-01-01
			}
			if u.MustChange {
				e.add("pwdLastSet", "0")
			}
		} else {
			e.add("objectClass", "top", "person", "organizationalPerson", "inetOrgPerson", "posixAccount")
			e.add("uid", u.Login)
			e.add("homeDirectory", "/home/"+u.Key)
			e.add("loginShell", "/bin/sh")
			e.add("userPassword", ssha(u.Password, u.Key))
			for _, g := range u.Groups {
				e.add("memberOf", groupDN[g])
			}
			switch {
			case u.Disabled:
				e.add("pwdAccountLockedTime", disabledLockTime)
			case u.Locked:
				e.add("pwdAccountLockedTime", lockedLockTime)
				e.add("pwdPolicySubentry", PolicyLocked+","+base)
			case u.Expired:
				e.add("pwdChangedTime", expiredChanged)
				e.add("pwdPolicySubentry", PolicyExpiring+","+base)
			case u.MustChange:
				e.add("pwdReset", "TRUE")
			}
		}
		e.write(bw, samba)
	}
	for _, g := range d.Groups {
		e := entry{dn: groupDN[g.Name]}
		e.add("cn", g.Name)
		if samba {
			e.add("objectClass", "top", "group")
			e.add("sAMAccountName", g.SAMAccountName)
		} else {
			e.add("objectClass", "top", "groupOfNames")
			for _, m := range g.Groups {
				e.add("member", groupDN[m])
			}
			for _, m := range memberOf[g.Name] {
				e.add("memberOf", m)
			}
		}
		for _, k := range g.Users {
			e.add("member", d.Users[idx[k]].DN(base))
		}
		e.write(bw, samba)
	}
	if samba {
		for _, g := range d.Groups {
			if len(g.Groups) == 0 {
				continue
			}
			fmt.Fprintf(bw, "%s\nchangetype: modify\nadd: member\n", ldifLine("dn", groupDN[g.Name]))
			for _, m := range g.Groups {
				fmt.Fprintf(bw, "%s\n", ldifLine("member", groupDN[m]))
			}
			bw.WriteString("-\n\n")
		}
	}
	return bw.Flush()
}

type entry struct {
	dn    string
	attrs [][2]string
}

func (e *entry) add(name string, values ...string) {
	for _, v := range values {
		if v != "" {
			e.attrs = append(e.attrs, [2]string{name, v})
		}
	}
}

func (e *entry) write(w *bufio.Writer, changetype bool) {
	w.WriteString(ldifLine("dn", e.dn))
	w.WriteByte('\n')
	if changetype {
		w.WriteString("changetype: add\n")
	}
	for _, a := range e.attrs {
		w.WriteString(ldifLine(a[0], a[1]))
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
}

// ldifLine returns "name: value", or "name:: base64" when value is not a
// SAFE-STRING of RFC 2849 (or ends with a space, which the RFC says should
// be encoded too). Lines are not folded.
func ldifLine(name, value string) string {
	if isSafeString(value) {
		return name + ": " + value
	}
	return name + ":: " + base64.StdEncoding.EncodeToString([]byte(value))
}

func isSafeString(s string) bool {
	if s == "" {
		return true
	}
	switch s[0] {
	case ' ', ':', '<':
		return false
	}
	if s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}

// escapeRDNValue escapes an attribute value for a DN string (RFC 4514
// section 2.4): the characters " + , ; < > \ and = anywhere, # and space at
// the start, space at the end, and NUL.
func escapeRDNValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '+' || c == ',' || c == ';' || c == '<' || c == '>' || c == '\\' || c == '=':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '#' && i == 0, c == ' ' && (i == 0 || i == len(v)-1):
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == 0:
			b.WriteString(`\00`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// adPassword encodes a password for AD's unicodePwd: UTF-16LE of the quoted string.
func adPassword(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		b[2*i], b[2*i+1] = byte(r), byte(r>>8)
	}
	return string(b)
}

// ssha returns an RFC 2307 {SSHA} hash of pw with a salt derived from salt,
// so the LDIF is deterministic.
func ssha(pw, salt string) string {
	s := sha1.Sum([]byte("liaison-salt:" + salt))
	h := sha1.New()
	h.Write([]byte(pw))
	h.Write(s[:8])
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), s[:8]...))
}
