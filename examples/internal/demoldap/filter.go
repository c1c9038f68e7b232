package demoldap

import (
	"encoding/hex"
	"errors"
	"strings"
)

// errFilter is returned for a filter string that does not parse.
var errFilter = errors.New("demoldap: malformed filter")

// maxFilterDepth bounds nesting so a hostile filter cannot exhaust the stack.
const maxFilterDepth = 64

type filterKind int

const (
	fAnd filterKind = iota
	fOr
	fNot
	fEqual
	fPresent
	fSubstr
	fGE
	fLE
	fApprox
	fExt // extensible match: unsupported rules match nothing
)

// filter is a parsed RFC 4515 search filter.
type filter struct {
	kind  filterKind
	attr  string // lower-cased attribute type
	value string // unescaped assertion value
	// substrings: initial, any..., final ("" when absent)
	initial, final string
	any            []string
	subs           []*filter
}

// parseFilter parses the string form of a search filter, as gldap hands
// it over (values escaped as \xx).
func parseFilter(s string) (*filter, error) {
	f, rest, err := parseOne(s, 0)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, errFilter
	}
	return f, nil
}

func parseOne(s string, depth int) (*filter, string, error) {
	if depth > maxFilterDepth || len(s) < 2 || s[0] != '(' {
		return nil, "", errFilter
	}
	s = s[1:]
	switch s[0] {
	case '&', '|':
		kind := fAnd
		if s[0] == '|' {
			kind = fOr
		}
		s = s[1:]
		f := &filter{kind: kind}
		for len(s) > 0 && s[0] == '(' {
			sub, rest, err := parseOne(s, depth+1)
			if err != nil {
				return nil, "", err
			}
			f.subs = append(f.subs, sub)
			s = rest
		}
		if len(s) == 0 || s[0] != ')' {
			return nil, "", errFilter
		}
		return f, s[1:], nil
	case '!':
		sub, rest, err := parseOne(s[1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		if len(rest) == 0 || rest[0] != ')' {
			return nil, "", errFilter
		}
		return &filter{kind: fNot, subs: []*filter{sub}}, rest[1:], nil
	}
	end := strings.IndexByte(s, ')')
	if end < 0 {
		return nil, "", errFilter
	}
	f, err := parseItem(s[:end])
	if err != nil {
		return nil, "", err
	}
	return f, s[end+1:], nil
}

func parseItem(item string) (*filter, error) {
	i := strings.IndexByte(item, '=')
	if i <= 0 {
		return nil, errFilter
	}
	attr, raw := item[:i], item[i+1:]
	f := &filter{}
	switch attr[len(attr)-1] {
	case '>':
		f.kind, attr = fGE, attr[:len(attr)-1]
	case '<':
		f.kind, attr = fLE, attr[:len(attr)-1]
	case '~':
		f.kind, attr = fApprox, attr[:len(attr)-1]
	case ':':
		f.kind = fExt
		attr, _, _ = strings.Cut(attr, ":")
	default:
		f.kind = fEqual
	}
	f.attr = strings.ToLower(strings.TrimSpace(attr))
	if f.kind == fExt {
		return f, nil
	}
	if f.attr == "" {
		return nil, errFilter
	}
	if f.kind == fEqual && raw == "*" {
		f.kind = fPresent
		return f, nil
	}
	if f.kind == fEqual && strings.Contains(raw, "*") {
		parts := strings.Split(raw, "*")
		f.kind = fSubstr
		var err error
		if f.initial, err = unescape(parts[0]); err != nil {
			return nil, err
		}
		if f.final, err = unescape(parts[len(parts)-1]); err != nil {
			return nil, err
		}
		for _, p := range parts[1 : len(parts)-1] {
			if p == "" {
				continue
			}
			u, err := unescape(p)
			if err != nil {
				return nil, err
			}
			f.any = append(f.any, u)
		}
		return f, nil
	}
	v, err := unescape(raw)
	if err != nil {
		return nil, err
	}
	f.value = v
	return f, nil
}

// unescape decodes RFC 4515 \xx escapes.
func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", errFilter
		}
		h, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", errFilter
		}
		b.Write(h)
		i += 2
	}
	return b.String(), nil
}

// dnValued attributes compare as DNs.
func dnValued(attr string) bool {
	switch attr {
	case "member", "uniquemember", "memberof", "entrydn", "manager", "owner":
		return true
	}
	return false
}

// match evaluates f against an entry's attributes (lower-cased names).
func (f *filter) match(attrs func(name string) []string) bool {
	switch f.kind {
	case fAnd:
		for _, s := range f.subs {
			if !s.match(attrs) {
				return false
			}
		}
		return true
	case fOr:
		for _, s := range f.subs {
			if s.match(attrs) {
				return true
			}
		}
		return false
	case fNot:
		return !f.subs[0].match(attrs)
	case fPresent:
		return f.attr == "objectclass" || len(attrs(f.attr)) > 0
	case fExt:
		return false
	}
	want := strings.ToLower(f.value)
	if dnValued(f.attr) && (f.kind == fEqual || f.kind == fApprox) {
		n, ok := normDN(f.value)
		if !ok {
			return false
		}
		want = n
	}
	for _, v := range attrs(f.attr) {
		got := strings.ToLower(v)
		if dnValued(f.attr) {
			if n, ok := normDN(v); ok {
				got = n
			}
		}
		switch f.kind {
		case fEqual, fApprox:
			if got == want {
				return true
			}
		case fGE:
			if got >= want {
				return true
			}
		case fLE:
			if got <= want {
				return true
			}
		case fSubstr:
			if matchSubstr(got, strings.ToLower(f.initial), f.any, strings.ToLower(f.final)) {
				return true
			}
		}
	}
	return false
}

func matchSubstr(v, initial string, any []string, final string) bool {
	if !strings.HasPrefix(v, initial) {
		return false
	}
	v = v[len(initial):]
	for _, a := range any {
		a = strings.ToLower(a)
		i := strings.Index(v, a)
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return strings.HasSuffix(v, final)
}
