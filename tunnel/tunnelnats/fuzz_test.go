package tunnelnats

import (
	"net/http"
	"testing"
)

// FuzzMessage: messages from other nodes never panic the parsers, and what
// they accept is within the documented bounds.
func FuzzMessage(f *testing.F) {
	req, _ := appendRequest(nil, &reqHead{Method: "GET", URL: "http://c/x", Header: http.Header{"A": {"b", "c"}, "D": {""}}, ContentLength: 0, Window: 1 << 20, End: true})
	resp, _ := appendResponse(nil, &respHead{Status: 200, ContentLength: -1})
	for _, s := range [][]byte{req, resp, u32msg(msgCredit, 10), {msgError, codeAborted, 'x'}, {msgRequest, 0, 0, 0, 2, 0, 0}, {}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		if h, body, err := parseRequest(m); err == nil {
			if h.Window <= 0 || h.Window > maxWindow || h.ContentLength < -1 || h.Method == "" {
				t.Fatalf("accepted a bad head %+v", h)
			}
			if !h.End && len(body) != 0 {
				t.Fatal("body after a streamed head")
			}
		}
		if h, _, err := parseResponse(m); err == nil && (h.Status < 100 || h.Status > 999) {
			t.Fatalf("accepted status %d", h.Status)
		}
		if n, err := parseU32(m); err == nil && (n <= 0 || n > maxWindow) {
			t.Fatalf("accepted credit %d", n)
		}
		if len(m) >= 2 {
			_ = parseError(m).Error()
		}
	})
}
