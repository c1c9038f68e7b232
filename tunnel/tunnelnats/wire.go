package tunnelnats

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/liaisonhq/liaison/tunnel"
)

// Message types of the node-to-node protocol (doc.go, "Protocol"). Every
// NATS message of a forwarded request starts with one of them.
const (
	msgRequest  = 1 // head (+ the whole body when small); reply = caller's inbox
	msgAck      = 2 // u32 credit for the request body; reply = serving node's inbox
	msgResponse = 3 // response head
	msgData     = 4 // body bytes
	msgEnd      = 5 // body complete
	msgCredit   = 6 // u32 more credit for the body the sender of the credit receives
	msgCancel   = 7 // the caller gave up
	msgError    = 8 // u8 code, message
	msgPing     = 9 // keepalive
)

// Error codes carried by msgError, mapped back to the tunnel's sentinels.
const (
	codeOther = iota
	codeNotConnected
	codeSessionLost
	codeStreamRefused
	codeAborted
	codeHeadTooLarge
	codeCanceled
	codeDeadline // the request's deadline passed on the serving node
)

// maxHead bounds a head's JSON: a tunnel head fits in one frame (64 KiB by
// default, 16 MiB at most); NATS messages are 1 MiB by default.
const maxHead = 512 << 10

type reqHead struct {
	Method        string      `json:"m"`
	URL           string      `json:"u"`
	Host          string      `json:"host,omitempty"`
	Header        http.Header `json:"h,omitempty"`
	ContentLength int64       `json:"cl"`          // -1: unknown
	TimeoutMs     int64       `json:"t,omitempty"` // 0: none
	Window        int         `json:"w"`           // credit granted for the response body
	End           bool        `json:"e,omitempty"` // the body follows the head whole
}

type respHead struct {
	Status        int         `json:"s"`
	Header        http.Header `json:"h,omitempty"`
	ContentLength int64       `json:"cl"`
	End           bool        `json:"e,omitempty"` // the whole body follows the head
}

var errMalformed = errors.New("tunnelnats: malformed message")

// appendHead appends typ, the head's length and JSON.
func appendHead(b []byte, typ byte, head any) ([]byte, error) {
	j, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	if len(j) > maxHead {
		return nil, tunnel.ErrHeadTooLarge
	}
	b = append(b, typ)
	b = binary.BigEndian.AppendUint32(b, uint32(len(j)))
	return append(b, j...), nil
}

// parseHead splits a head message (type byte already checked) into its
// decoded head and the bytes after it.
func parseHead(m []byte, head any) (rest []byte, err error) {
	if len(m) < 5 {
		return nil, errMalformed
	}
	n := binary.BigEndian.Uint32(m[1:5])
	if n > maxHead || uint64(n) > uint64(len(m)-5) {
		return nil, errMalformed
	}
	if err := json.Unmarshal(m[5:5+n], head); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return m[5+n:], nil
}

// parseRequest decodes a msgRequest and checks what the serving node relies on.
func parseRequest(m []byte) (reqHead, []byte, error) {
	var h reqHead
	if len(m) == 0 || m[0] != msgRequest {
		return h, nil, errMalformed
	}
	body, err := parseHead(m, &h)
	if err != nil {
		return h, nil, err
	}
	switch {
	case h.Method == "" || h.URL == "":
		return h, nil, errMalformed
	case h.ContentLength < -1 || h.TimeoutMs < 0 || h.Window <= 0 || h.Window > maxWindow:
		return h, nil, errMalformed
	case h.End && h.ContentLength >= 0 && int64(len(body)) != h.ContentLength:
		return h, nil, errMalformed
	case !h.End && len(body) != 0:
		return h, nil, errMalformed
	}
	return h, body, nil
}

func parseResponse(m []byte) (respHead, []byte, error) {
	var h respHead
	if len(m) == 0 || m[0] != msgResponse {
		return h, nil, errMalformed
	}
	body, err := parseHead(m, &h)
	if err != nil {
		return h, nil, err
	}
	switch {
	case h.Status < 100 || h.Status > 999 || h.ContentLength < -1:
		return h, nil, errMalformed
	case !h.End && len(body) != 0:
		return h, nil, errMalformed
	case h.End && h.ContentLength >= 0 && int64(len(body)) != h.ContentLength:
		return h, nil, errMalformed
	}
	return h, body, nil
}

func u32msg(typ byte, n int) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, uint32(n))
}

func parseU32(m []byte) (int, error) {
	if len(m) != 5 {
		return 0, errMalformed
	}
	n := binary.BigEndian.Uint32(m[1:])
	if n == 0 || n > maxWindow {
		return 0, errMalformed
	}
	return int(n), nil
}

func errorMsg(err error) []byte {
	code := byte(codeOther)
	switch {
	case errors.Is(err, tunnel.ErrNotConnected):
		code = codeNotConnected
	case errors.Is(err, tunnel.ErrStreamRefused):
		code = codeStreamRefused
	case errors.Is(err, tunnel.ErrAborted):
		code = codeAborted
	case errors.Is(err, tunnel.ErrHeadTooLarge):
		code = codeHeadTooLarge
	case errors.Is(err, tunnel.ErrSessionLost), errors.Is(err, tunnel.ErrClosed):
		code = codeSessionLost
	case errors.Is(err, context.DeadlineExceeded):
		// Before codeCanceled: the serving node runs the request under a
		// copy of the caller's deadline, which can fire a moment before
		// the caller's own; the caller must still see its deadline.
		code = codeDeadline
	case errors.Is(err, errCanceled):
		code = codeCanceled
	}
	msg := err.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	return append([]byte{msgError, code}, msg...)
}

var errCanceled = errors.New("tunnelnats: canceled on the serving node")

// parseError turns a msgError back into an error that matches the
// tunnel's sentinels.
func parseError(m []byte) error {
	if len(m) < 2 {
		return errMalformed
	}
	text := string(m[2:])
	var base error
	switch m[1] {
	case codeNotConnected:
		base = tunnel.ErrNotConnected
	case codeSessionLost:
		base = tunnel.ErrSessionLost
	case codeStreamRefused:
		base = tunnel.ErrStreamRefused
	case codeAborted:
		base = tunnel.ErrAborted
	case codeHeadTooLarge:
		base = tunnel.ErrHeadTooLarge
	case codeCanceled:
		base = errCanceled
	case codeDeadline:
		base = context.DeadlineExceeded
	default:
		return &RemoteError{Message: text}
	}
	return &RemoteError{Message: text, err: base}
}

// RemoteError is an error the serving node reported for a forwarded
// request. It matches (errors.Is) the tunnel sentinel the serving node's
// gateway returned: tunnel.ErrNotConnected, ErrSessionLost,
// ErrStreamRefused, ErrAborted, ErrHeadTooLarge; context.DeadlineExceeded when
// the request's deadline passed there.
type RemoteError struct {
	Message string // the serving node's error text
	err     error
}

func (e *RemoteError) Error() string { return "tunnelnats: on the serving node: " + e.Message }

// Unwrap returns the matching tunnel sentinel, if any.
func (e *RemoteError) Unwrap() error { return e.err }

// token encodes an ID as one NATS subject token (no '.', '*', '>' or
// space), never empty.
func token(kind byte, id string) string {
	return string(kind) + base64.RawURLEncoding.EncodeToString([]byte(id))
}

func untoken(kind byte, s string) (string, bool) {
	if len(s) == 0 || s[0] != kind {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(s[1:])
	return string(b), err == nil
}

func cutPrefix(s, prefix string) (string, bool) { return strings.CutPrefix(s, prefix) }

func cut(s string, sep byte) (before, after string, found bool) {
	return strings.Cut(s, string(sep))
}
