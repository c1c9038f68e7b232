package directory

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Cursor marks a point in a directory's history, returned by
// [Client.Users] and [Client.Changes]. It is an opaque, versioned string,
// safe to store and to send over the wire; it names the server it came from
// (an AD domain controller's invocation ID, an OpenLDAP naming context's
// entryUUID) and the mapping it was made with.
type Cursor string

const cursorPrefix = "dc1."

type cursorData struct {
	Profile string `json:"p"`
	Server  string `json:"s"`
	Mapping string `json:"m"`
	USN     int64  `json:"u,omitempty"` // AD: highestCommittedUSN at scan start
	CSN     string `json:"c,omitempty"` // OpenLDAP: a change sequence number (entryCSN)
}

func (d cursorData) encode() Cursor {
	b, _ := json.Marshal(d)
	return Cursor(cursorPrefix + base64.RawURLEncoding.EncodeToString(b))
}

// parseCursor decodes an untrusted cursor. Every failure is ErrCursorInvalid.
func parseCursor(c Cursor) (cursorData, error) {
	var d cursorData
	rest, ok := strings.CutPrefix(string(c), cursorPrefix)
	if !ok || len(rest) > 4096 {
		return d, ErrCursorInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return d, ErrCursorInvalid
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, ErrCursorInvalid
	}
	switch d.Profile {
	case "ad":
		if d.USN < 0 || d.Server == "" {
			return d, ErrCursorInvalid
		}
	case "openldap":
		if !validCSN(d.CSN) {
			return d, ErrCursorInvalid
		}
	default:
		return d, ErrCursorInvalid
	}
	return d, nil
}

// validCSN accepts OpenLDAP change sequence numbers,
// "20261125221500.123456Z#000000#000#000000", which sort as strings.
func validCSN(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 14:
			if c != '.' {
				return false
			}
		case i == 21:
			if c != 'Z' {
				return false
			}
		case i == 22 || i == 29 || i == 33:
			if c != '#' {
				return false
			}
		case i < 21:
			if c < '0' || c > '9' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// filter selects entries changed since the cursor. On OpenLDAP the bound is
// inclusive: at most the one entry carrying that exact CSN is repeated.
func (d cursorData) filter(p *profile) string {
	if p.kind == ProfileActiveDirectory {
		return "(" + p.changeAttr + ">=" + strconv.FormatInt(d.USN+1, 10) + ")"
	}
	return "(" + p.changeAttr + ">=" + ldap.EscapeFilter(d.CSN) + ")"
}

// startCursor reads where the server's history stands now.
func (c *Client) startCursor(cn *conn, si *serverInfo, nc string, cm *compiled) (cursorData, error) {
	d := cursorData{Profile: si.Profile.String(), Mapping: cm.key()}
	if si.prof.kind == ProfileActiveDirectory {
		e, err := readRootDSE(cn, []string{"highestCommittedUSN", "dsServiceName"})
		if err != nil {
			return d, err
		}
		d.USN, err = strconv.ParseInt(e.GetEqualFoldAttributeValue("highestCommittedUSN"), 10, 64)
		if err != nil {
			return d, fmt.Errorf("directory: rootDSE highestCommittedUSN: %w", err)
		}
		ds := e.GetEqualFoldAttributeValue("dsServiceName")
		entries, err := searchOne(cn, newSearch(ds, ldap.ScopeBaseObject, "(objectClass=*)", []string{"invocationId"}))
		if err != nil {
			return d, fmt.Errorf("directory: read invocationId: %w", err)
		}
		if len(entries) != 1 {
			return d, fmt.Errorf("directory: read invocationId: no entry %q", ds)
		}
		d.Server = formatGUID(entries[0].GetEqualFoldRawAttributeValue("invocationId"))
		return d, nil
	}
	entries, err := searchOne(cn, newSearch(nc, ldap.ScopeBaseObject, "(objectClass=*)", []string{"entryUUID", "contextCSN"}))
	if err != nil {
		return d, fmt.Errorf("directory: read naming context: %w", err)
	}
	if len(entries) != 1 {
		return d, fmt.Errorf("directory: read naming context: no entry %q", nc)
	}
	d.Server = entries[0].GetEqualFoldAttributeValue("entryUUID")
	// contextCSN is the newest entryCSN of the database (one per provider
	// in multi-provider setups; the newest is taken). Without it (no
	// syncprov) the newest entryCSN seen by the scan is used.
	for _, csn := range entries[0].GetEqualFoldAttributeValues("contextCSN") {
		if validCSN(csn) && csn > d.CSN {
			d.CSN = csn
		}
	}
	return d, nil
}

// resume starts a scan of cm on cn that continues from the cursor old: the
// server's info and the naming context, or ErrCursorInvalid when old was
// issued by another server or profile, or for another mapping.
func (c *Client) resume(cn *conn, cm *compiled, old cursorData) (*serverInfo, string, error) {
	si, err := c.serverInfo(cn)
	if err != nil {
		return nil, "", err
	}
	nc := namingContextOf(si, cm)
	start, err := c.startCursor(cn, si, nc, cm)
	if err != nil {
		return nil, "", err
	}
	if old.Profile != start.Profile || old.Server != start.Server || old.Mapping != start.Mapping {
		return nil, "", ErrCursorInvalid
	}
	return si, nc, nil
}
