package tunnel

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parseTarget must give what net/http's server gives: url.ParseRequestURI.
// The expected values are that function's, not parseTarget's.
func TestParseTargetIsParseRequestURI(t *testing.T) {
	for _, target := range []string{
		"/", "/echo", "/a/b.c_d~e-f", "/users?q=1&r=a%20b", "/a?", "/a??", "/a?b?c",
		"//host/path", "///x", "/a%2Fb", "/a b", "/caf\xc3\xa9", "/a#frag", "/a?x#y",
		"*", "/a:b", "/a;b=c", "/a@b", "/a?\x7f", "/a\x00", "", "x", "http://h/p",
		"/%zz", "/a?%zz", "/a?b c",
	} {
		want, wantErr := url.ParseRequestURI(target)
		var got url.URL
		err := parseTarget(&got, target)
		if wantErr != nil {
			assert.Error(t, err, "%q", target)
			continue
		}
		if assert.NoError(t, err, "%q", target) {
			assert.Equal(t, *want, got, "%q", target)
		}
	}
}

// The common targets are parsed without an allocation.
func TestParseTargetSimpleDoesNotAllocate(t *testing.T) {
	var u url.URL
	for _, target := range []string{"/echo", "/v1/users/42?attrs=mail,cn", "/a?"} {
		n := testing.AllocsPerRun(100, func() { _ = parseTarget(&u, target) })
		assert.Zero(t, n, "%q", target)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/echo?x=1", "//h/p", "/a%2F", "*", "/a?", "/a??b", "/\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		want, wantErr := url.ParseRequestURI(target)
		var got url.URL
		err := parseTarget(&got, target)
		if wantErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, *want, got)
	})
}

// seenRequest is what a handler sees of a request.
type seenRequest struct {
	Method, Proto, Host, RequestURI string
	ProtoMajor, ProtoMinor          int
	URL                             url.URL
	Header                          http.Header
	ContentLength                   int64
	Body                            string
	HeaderWrite                     bool // the handler could set a request header
}

func captureRequests(ch chan<- seenRequest) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s := seenRequest{Method: r.Method, Proto: r.Proto, Host: r.Host, RequestURI: r.RequestURI,
			ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor, URL: *r.URL, Header: r.Header.Clone(),
			ContentLength: r.ContentLength, Body: string(b)}
		func() {
			defer func() { _ = recover() }()
			r.Header.Set("X-Handler", "1")
			s.HeaderWrite = true
		}()
		ch <- s
		if r.URL.Query().Get("h") != "" {
			w.Header().Set("X-Reply", r.URL.Query().Get("h"))
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// A handler behind the tunnel sees the request net/http's own server would
// show it, field for field, for targets of every form (the expected values
// come from an httptest server running the same handler); and a handler
// that never touches the response header still gives the caller a header
// map.
func TestHandlerSeesWhatNetHTTPServerShows(t *testing.T) {
	checkNoLeaks(t)
	viaHTTP := make(chan seenRequest, 1)
	srv := httptest.NewServer(captureRequests(viaHTTP))
	defer srv.Close()
	e := newEnv(t, nil)
	viaTunnel := make(chan seenRequest, 1)
	e.start(e.enroll("t"), captureRequests(viaTunnel))
	rt := e.gw.RoundTripper("t")

	type send struct {
		method, target, body string
	}
	for _, tc := range []send{
		{"GET", "/echo", ""},
		{"POST", "/v1/users?q=a%20b&attrs=mail,cn", "payload"},
		{"GET", "//x/y", ""},
		{"GET", "//x/y%20z", ""},
		{"GET", "/a%2Fb/caf%C3%A9?x=%zz", ""},
		{"PUT", "/a?", "p"},
		{"DELETE", "/a;b=c@d:e?h=v", ""},
	} {
		mk := func(base string) *http.Request {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, base+tc.target, body)
			require.NoError(t, err)
			req.Host = "c.example"
			req.Header.Set("User-Agent", "liaison-test")
			req.Header.Set("Accept-Encoding", "identity")
			req.Header.Add("X-Multi", "1")
			req.Header.Add("X-Multi", "2")
			return req
		}
		resp, err := srv.Client().Do(mk(srv.URL))
		require.NoError(t, err, tc.target)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := <-viaHTTP
		resp, err = rt.RoundTrip(mk("http://c"))
		require.NoError(t, err, tc.target)
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "ok", string(got))
		assert.NotNil(t, resp.Header, "%s: the caller gets a header map", tc.target)
		seen := <-viaTunnel
		// net/http's transport sends Content-Length on the wire; its server
		// keeps it in the header. The tunnel carries the length apart.
		want.Header.Del("Content-Length")
		assert.Equal(t, want, seen, "%s %s", tc.method, tc.target)
	}
}
