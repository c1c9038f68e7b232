package directory

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// This file is a minimal LDAP reader for the one hot path that go-ldap makes
// slow: streaming the pages of a full scan. go-ldap decodes every BER
// element into a Packet with its own buffer and description (hundreds of
// allocations per entry); here a whole message is read into one buffer,
// converted to one string, and the entry's DN and values are slices of it.
// Everything else (binds, browse, lookups) goes through go-ldap.

const maxMessage = 64 << 20 // refuse LDAP messages larger than this

var errMalformed = errors.New("directory: malformed LDAP message")

// BER identifiers used here.
const (
	tagSequence     = 0x30
	tagInteger      = 0x02
	tagOctetString  = 0x04
	tagEnumerated   = 0x0a
	tagBoolean      = 0x01
	tagSet          = 0x31
	appBindRequest  = 0x60
	appBindResponse = 0x61
	appSearchReq    = 0x63
	appSearchEntry  = 0x64
	appSearchDone   = 0x65
	appSearchRef    = 0x73
	appExtendedReq  = 0x77
	appExtendedResp = 0x78
	ctxControls     = 0xa0
)

// tlv appends a BER element with a definite length.
func tlv(dst []byte, tag byte, content []byte) []byte {
	dst = append(dst, tag)
	n := len(content)
	switch {
	case n < 0x80:
		dst = append(dst, byte(n))
	case n < 0x100:
		dst = append(dst, 0x81, byte(n))
	case n < 0x10000:
		dst = append(dst, 0x82, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, content...)
}

func berInt(tag byte, v int64) []byte {
	var b []byte
	for {
		b = append([]byte{byte(v)}, b...)
		if (v >= -128 && v < 128) || len(b) == 8 {
			break
		}
		v >>= 8
	}
	return tlv(nil, tag, b)
}

// readElem splits the first BER element off b: its tag, content, and the
// rest. Only definite lengths of up to 4 bytes are accepted.
func readElem(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errMalformed
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, errMalformed // multi-byte tags never occur in LDAP
	}
	n, hdr := int(b[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return 0, nil, nil, errMalformed
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr += k
	}
	if n < 0 || n > len(b)-hdr {
		return 0, nil, nil, errMalformed
	}
	return tag, b[hdr : hdr+n], b[hdr+n:], nil
}

func parseInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 8 {
		return 0, errMalformed
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return v, nil
}

// message is one decoded LDAPMessage.
type message struct {
	id       int64
	op       byte
	body     []byte // protocolOp content
	controls []byte // [0] controls content, if any
}

func parseMessage(b []byte) (message, error) {
	var m message
	tag, seq, _, err := readElem(b)
	if err != nil || tag != tagSequence {
		return m, errMalformed
	}
	tag, idb, rest, err := readElem(seq)
	if err != nil || tag != tagInteger {
		return m, errMalformed
	}
	if m.id, err = parseInt(idb); err != nil {
		return m, err
	}
	if m.op, m.body, rest, err = readElem(rest); err != nil {
		return m, err
	}
	if len(rest) > 0 {
		tag, ctrls, _, err := readElem(rest)
		if err == nil && tag == ctxControls {
			m.controls = ctrls
		}
	}
	return m, nil
}

// parseResult decodes an LDAPResult (the body of a bind, search-done or
// extended response) into go-ldap's error type, nil for success.
func parseResult(body []byte) error {
	tag, code, rest, err := readElem(body)
	if err != nil || tag != tagEnumerated {
		return errMalformed
	}
	rc, err := parseInt(code)
	if err != nil {
		return err
	}
	var diag []byte
	if _, _, rest, err = readElem(rest); err == nil { // matchedDN
		_, diag, _, _ = readElem(rest)
	}
	if rc == 0 {
		return nil
	}
	return ldap.NewError(uint16(rc), errors.New(string(diag)))
}

// pagingCookie finds the RFC 2696 cookie in a message's controls.
func pagingCookie(controls []byte) ([]byte, error) {
	for len(controls) > 0 {
		tag, ctrl, rest, err := readElem(controls)
		if err != nil || tag != tagSequence {
			return nil, errMalformed
		}
		controls = rest
		tag, oid, crest, err := readElem(ctrl)
		if err != nil || tag != tagOctetString {
			return nil, errMalformed
		}
		if string(oid) != ldap.ControlTypePaging {
			continue
		}
		for len(crest) > 0 {
			var v []byte
			tag, v, crest, err = readElem(crest)
			if err != nil {
				return nil, err
			}
			if tag != tagOctetString {
				continue // criticality
			}
			tag, seq, _, err := readElem(v)
			if err != nil || tag != tagSequence {
				return nil, errMalformed
			}
			_, _, seqRest, err := readElem(seq) // size
			if err != nil {
				return nil, err
			}
			tag, cookie, _, err := readElem(seqRest)
			if err != nil || tag != tagOctetString {
				return nil, errMalformed
			}
			return cookie, nil
		}
	}
	return nil, nil
}

// parseEntry decodes a SearchResultEntry body, a slice of raw; s holds the
// same bytes as raw (one copy), so the DN and values are slices of s
// without further copies. raw must have len == cap.
func parseEntry(raw []byte, s string, body []byte) (*ldap.Entry, error) {
	tag, dn, rest, err := readElem(body)
	if err != nil || tag != tagOctetString {
		return nil, errMalformed
	}
	pos := func(sub []byte) int { return cap(raw) - cap(sub) }
	e := &ldap.Entry{DN: s[pos(dn) : pos(dn)+len(dn)]}
	tag, attrs, _, err := readElem(rest)
	if err != nil || tag != tagSequence {
		return nil, errMalformed
	}
	// First pass: count attributes and values, so the entry takes a
	// handful of allocations whatever its size.
	nAttrs, nVals := 0, 0
	for a := attrs; len(a) > 0; {
		var one []byte
		tag, one, a, err = readElem(a)
		if err != nil || tag != tagSequence {
			return nil, errMalformed
		}
		_, _, vals, err := readElem(one)
		if err != nil {
			return nil, errMalformed
		}
		_, set, _, err := readElem(vals)
		if err != nil {
			return nil, errMalformed
		}
		for len(set) > 0 {
			if _, _, set, err = readElem(set); err != nil {
				return nil, errMalformed
			}
			nVals++
		}
		nAttrs++
	}
	structs := make([]ldap.EntryAttribute, nAttrs)
	e.Attributes = make([]*ldap.EntryAttribute, nAttrs)
	values := make([]string, 0, nVals)
	bvalues := make([][]byte, 0, nVals)
	for i := 0; len(attrs) > 0; i++ {
		var a []byte
		tag, a, attrs, err = readElem(attrs)
		if err != nil || tag != tagSequence {
			return nil, errMalformed
		}
		tag, name, vals, err := readElem(a)
		if err != nil || tag != tagOctetString {
			return nil, errMalformed
		}
		tag, set, _, err := readElem(vals)
		if err != nil || tag != tagSet {
			return nil, errMalformed
		}
		ea := &structs[i]
		ea.Name = s[pos(name) : pos(name)+len(name)]
		first := len(values)
		for len(set) > 0 {
			var v []byte
			tag, v, set, err = readElem(set)
			if err != nil || tag != tagOctetString {
				return nil, errMalformed
			}
			values = append(values, s[pos(v):pos(v)+len(v)])
			bvalues = append(bvalues, v[:len(v):len(v)])
		}
		ea.Values = values[first:len(values):len(values)]
		ea.ByteValues = bvalues[first:len(bvalues):len(bvalues)]
		e.Attributes[i] = ea
	}
	return e, nil
}

// wireConn is a raw connection for paged scans.
type wireConn struct {
	nc      net.Conn
	r       *bufio.Reader
	nextID  int64
	timeout time.Duration
}

func (w *wireConn) Close() error { return w.nc.Close() }

func (w *wireConn) send(op []byte, controls []byte) (int64, error) {
	w.nextID++
	msg := berInt(tagInteger, w.nextID)
	msg = append(msg, op...)
	if controls != nil {
		msg = tlv(msg, ctxControls, controls)
	}
	if w.timeout > 0 {
		w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	_, err := w.nc.Write(tlv(nil, tagSequence, msg))
	if err != nil {
		return 0, ldap.NewError(ldap.ErrorNetwork, err)
	}
	return w.nextID, nil
}

// read returns the next message as a fresh buffer (entries keep slices of
// it).
func (w *wireConn) read() ([]byte, error) {
	if w.timeout > 0 {
		w.nc.SetReadDeadline(time.Now().Add(w.timeout))
	}
	hdr, err := w.r.Peek(2)
	if err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	n, hl := int(hdr[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 {
			return nil, errMalformed
		}
		h, err := w.r.Peek(2 + k)
		if err != nil {
			return nil, ldap.NewError(ldap.ErrorNetwork, err)
		}
		n = 0
		for _, c := range h[2:] {
			n = n<<8 | int(c)
		}
		hl += k
	}
	if n > maxMessage {
		return nil, fmt.Errorf("directory: LDAP message of %d bytes refused", n)
	}
	buf := make([]byte, hl+n)
	if _, err := io.ReadFull(w.r, buf); err != nil {
		return nil, ldap.NewError(ldap.ErrorNetwork, err)
	}
	return buf, nil
}

// expect reads until the response to id, ignoring unsolicited messages
// other than a notice of disconnection.
func (w *wireConn) expect(id int64, op byte) (message, error) {
	for {
		buf, err := w.read()
		if err != nil {
			return message{}, err
		}
		m, err := parseMessage(buf)
		if err != nil {
			return m, err
		}
		if m.id == 0 {
			return m, ldap.NewError(ldap.ErrorNetwork, errors.New("directory: server sent a notice of disconnection"))
		}
		if m.id == id && m.op == op {
			return m, nil
		}
	}
}

// dialWire opens a raw connection to server idx, secured like the pooled
// ones and bound as the service account.
func (c *Client) dialWire(ctx context.Context, idx int) (*wireConn, error) {
	s := c.servers[idx]
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	dialFn := c.cfg.DialContext
	if dialFn == nil {
		d := &net.Dialer{}
		dialFn = d.DialContext
	}
	nc, err := dialFn(dctx, "tcp", s.address)
	if err != nil {
		return nil, fmt.Errorf("directory: connect %s: %w", s.url, err)
	}
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	defer stop()
	tc := c.tls.Clone()
	if tc.ServerName == "" {
		tc.ServerName = s.host
	}
	w := &wireConn{nc: nc, r: bufio.NewReaderSize(nc, 64<<10), timeout: c.cfg.Timeout}
	fail := func(err error) (*wireConn, error) {
		nc.Close()
		if dctx.Err() != nil {
			return nil, fmt.Errorf("directory: connect %s: %w", s.url, context.Cause(dctx))
		}
		return nil, fmt.Errorf("directory: connect %s: %w", s.url, err)
	}
	switch {
	case s.scheme == "ldaps":
		t := tls.Client(nc, tc)
		if err := t.HandshakeContext(dctx); err != nil {
			return fail(err)
		}
		w.nc, w.r = t, bufio.NewReaderSize(t, 64<<10)
	case !c.cfg.Plaintext:
		id, err := w.send(tlv(nil, appExtendedReq, tlv(nil, 0x80, []byte("1.3.6.1.4.1.1466.20037"))), nil)
		if err != nil {
			return fail(err)
		}
		m, err := w.expect(id, appExtendedResp)
		if err != nil {
			return fail(err)
		}
		if err := parseResult(m.body); err != nil {
			return fail(fmt.Errorf("starttls: %w", err))
		}
		if w.r.Buffered() > 0 {
			return fail(errors.New("starttls: data after the response"))
		}
		t := tls.Client(nc, tc)
		if err := t.HandshakeContext(dctx); err != nil {
			return fail(err)
		}
		w.nc, w.r = t, bufio.NewReaderSize(t, 64<<10)
	}
	bind := berInt(tagInteger, 3)
	bind = tlv(bind, tagOctetString, []byte(c.cfg.BindDN))
	bind = tlv(bind, 0x80, []byte(c.cfg.BindPassword))
	id, err := w.send(tlv(nil, appBindRequest, bind), nil)
	if err != nil {
		return fail(err)
	}
	m, err := w.expect(id, appBindResponse)
	if err != nil {
		return fail(err)
	}
	if err := parseResult(m.body); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrServiceBind, err)
	}
	return w, nil
}

// wirePages runs a paged subtree or one-level search on a raw connection
// to server idx and calls fn for each entry. Referrals are ignored.
func (c *Client) wirePages(ctx context.Context, idx int, req *ldap.SearchRequest, fn func(*ldap.Entry) error) error {
	w, err := c.dialWire(ctx, idx)
	if err != nil {
		return err
	}
	defer w.Close()
	// The caller runs under guard, which reports ctx's error. Closing the
	// connection stops a blocked read; checking ctx before each entry stops
	// a scan that is consuming what is already buffered, before the closing
	// goroutine has run.
	stop := context.AfterFunc(ctx, func() { w.Close() })
	defer stop()
	return c.wireSearch(w, req, func(e *ldap.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(e)
	})
}

func (c *Client) wireSearch(w *wireConn, req *ldap.SearchRequest, fn func(*ldap.Entry) error) error {
	filter, err := ldap.CompileFilter(req.Filter)
	if err != nil {
		return fmt.Errorf("directory: filter: %w", err)
	}
	var attrs []byte
	for _, a := range req.Attributes {
		attrs = tlv(attrs, tagOctetString, []byte(a))
	}
	body := tlv(nil, tagOctetString, []byte(req.BaseDN))
	body = append(body, berInt(tagEnumerated, int64(req.Scope))...)
	body = append(body, berInt(tagEnumerated, int64(ldap.NeverDerefAliases))...)
	body = append(body, berInt(tagInteger, 0)...)
	body = append(body, berInt(tagInteger, 0)...)
	body = tlv(body, tagBoolean, []byte{0})
	body = append(body, filter.Bytes()...)
	body = tlv(body, tagSequence, attrs)
	op := tlv(nil, appSearchReq, body)
	var cookie []byte
	for {
		pv := berInt(tagInteger, int64(c.cfg.PageSize))
		pv = tlv(pv, tagOctetString, cookie)
		ctrl := tlv(nil, tagOctetString, []byte(ldap.ControlTypePaging))
		ctrl = tlv(ctrl, tagOctetString, tlv(nil, tagSequence, pv))
		id, err := w.send(op, tlv(nil, tagSequence, ctrl))
		if err != nil {
			return err
		}
		for done := false; !done; {
			buf, err := w.read()
			if err != nil {
				return err
			}
			m, err := parseMessage(buf)
			if err != nil {
				return err
			}
			if m.id == 0 {
				return ldap.NewError(ldap.ErrorNetwork, errors.New("directory: server sent a notice of disconnection"))
			}
			if m.id != id {
				continue
			}
			switch m.op {
			case appSearchEntry:
				e, err := parseEntry(buf, string(buf), m.body)
				if err != nil {
					return err
				}
				if err := fn(e); err != nil {
					return err
				}
			case appSearchRef:
				// Never chased, never counted.
			case appSearchDone:
				if err := parseResult(m.body); err != nil {
					return searchError(req, err)
				}
				if cookie, err = pagingCookie(m.controls); err != nil {
					return err
				}
				done = true
			default:
				return fmt.Errorf("%w: unexpected operation 0x%x", errMalformed, m.op)
			}
		}
		if len(cookie) == 0 {
			return nil
		}
	}
}
