package tunnel

import (
	"bytes"
	"context"
	"net/http"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFrame(t *testing.T) {
	hdr := func(typ frameType, flags uint8, stream uint32, payload ...byte) []byte {
		b := make([]byte, frameHeaderLen, frameHeaderLen+len(payload))
		putHeader(b, typ, flags, stream)
		return setLen(append(b, payload...))
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr bool
		skip    bool
	}{
		{"short", []byte{1, 2, 3}, true, false},
		{"data ok", hdr(frameData, 0, 1, 'x'), false, false},
		{"data on stream 0", hdr(frameData, 0, 0, 'x'), true, false},
		{"ping on stream 1", hdr(framePing, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0), true, false},
		{"ping short", hdr(framePing, 0, 0, 1), true, false},
		{"credit zero", hdr(frameCredit, 0, 1, 0, 0, 0, 0), true, false},
		{"credit ok", hdr(frameCredit, 0, 1, 0, 0, 1, 0), false, false},
		{"end with payload", hdr(frameEnd, flagEnd, 1, 1), true, false},
		{"goaway short", hdr(frameGoaway, 0, 0, 1), true, false},
		{"unknown", hdr(0x42, 0, 0), true, false},
		{"unknown ignorable", hdr(0x42, flagIgnorable, 0), false, true},
		{"oversized", hdr(frameData, 0, 1, make([]byte, 5000)...), true, false},
		{"truncated", hdr(frameData, 0, 1, 'x')[:frameHeaderLen], true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseFrame(tt.in, 4096)
			switch {
			case tt.skip:
				assert.ErrorIs(t, err, errSkip)
			case tt.wantErr:
				var pe *ProtocolError
				assert.ErrorAs(t, err, &pe)
			default:
				assert.NoError(t, err)
			}
		})
	}
}

func TestHeadsRoundTrip(t *testing.T) {
	req, err := http.NewRequest(http.MethodPatch, "http://h.example/a/b?x=1&y=%20", nil)
	require.NoError(t, err)
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	req.Header.Set("Connection", "close") // hop-by-hop: dropped
	b := appendRequestHead(nil, 1500, req, 42)
	b = append(b, "body"...)
	h, off, err := parseRequestHead(b)
	require.NoError(t, err)
	assert.Equal(t, uint64(1500), h.timeoutMs)
	assert.Equal(t, http.MethodPatch, h.method)
	assert.Equal(t, "/a/b?x=1&y=%20", h.target)
	assert.Equal(t, "h.example", h.host)
	assert.Equal(t, int64(42), h.contentLength)
	assert.Equal(t, []string{"1", "2"}, h.header.Values("X-Multi"))
	assert.Empty(t, h.header.Get("Connection"))
	assert.Equal(t, "body", string(b[off:]))

	rb := appendResponseHead(nil, 404, http.Header{"Content-Type": {"text/plain"}}, -1)
	rh, _, err := parseResponseHead(rb)
	require.NoError(t, err)
	assert.Equal(t, 404, rh.status)
	assert.Equal(t, int64(-1), rh.contentLength)
	assert.Equal(t, "text/plain", rh.header.Get("Content-Type"))
}

func TestHelloRoundTrip(t *testing.T) {
	share, sig := bytes.Repeat([]byte{7}, keyShareSize), bytes.Repeat([]byte{9}, signatureSize)
	in := hello{major: ProtocolMajor, minor: 3, features: 5, nodeID: "n1", pingInterval: 5 * time.Second,
		maxFrameSize: 64 << 10, initialWindow: 1 << 20, maxStreams: 100, keyShare: share}
	p := in.appendTo(nil)
	in.sig, in.signedLen = sig, len(p)
	out, err := parseHello(appendHelloSig(p, sig), true)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	signed := func(h hello) []byte { h.keyShare = share; return appendHelloSig(h.appendTo(nil), sig) }
	_, err = parseHello(signed(hello{major: 1}), false)
	assert.ErrorContains(t, err, "major version")
	_, err = parseHello(signed(hello{major: ProtocolMajor}), true)
	assert.ErrorContains(t, err, "missing field")
	_, err = parseHello((&hello{major: ProtocolMajor, keyShare: share}).appendTo(nil), false)
	assert.ErrorContains(t, err, "missing field", "unsigned hello")
	_, err = parseHello(appendTLVUint(appendHelloSig((&hello{major: ProtocolMajor, keyShare: share}).appendTo(nil), sig), helloFeatures, 1), false)
	assert.ErrorContains(t, err, "not the last field")
}

// A connector that sends hostile frames gets its session closed with a
// protocol error; the gateway does not panic and keeps serving others.
func TestHostileFramesCloseSession(t *testing.T) {
	checkNoLeaks(t)
	tests := []struct {
		name  string
		frame []byte
	}{
		{"request from connector", func() []byte { b := make([]byte, 12); putHeader(b, frameRequest, 0, 1); return setLen(b) }()},
		{"response for unopened stream", func() []byte { b := make([]byte, 12); putHeader(b, frameResponse, 0, 99); return setLen(b) }()},
		{"oversized message", make([]byte, 200<<10)},
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"length past end", func() []byte { b := make([]byte, 12); putHeader(b, frameData, 0, 1); setLen(b); b[9]++; return b }()},
		{"second hello", func() []byte { b := make([]byte, frameHeaderLen); putHeader(b, frameHello, 0, 0); return setLen(b) }()},
	}
	e := newEnv(t, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.enroll("t")
			conn, tx, _ := e.rawConnector(cfg)
			defer conn.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			e.waitEvent(Connected, cfg.ConnectorID)
			sealed, err := tx.seal(nil, tt.frame)
			require.NoError(t, err)
			_ = conn.Write(ctx, websocket.MessageBinary, sealed)
			ev := e.waitEvent(Disconnected, cfg.ConnectorID)
			assert.Error(t, ev.Err)
		})
	}
}

func FuzzFrame(f *testing.F) {
	req, _ := http.NewRequest(http.MethodGet, "http://x/p?q", nil)
	req.Header.Set("A", "b")
	seed := make([]byte, frameHeaderLen)
	putHeader(seed, frameRequest, flagEnd, 1)
	f.Add(setLen(appendRequestHead(seed, 10, req, -1)))
	rs := make([]byte, frameHeaderLen)
	putHeader(rs, frameResponse, flagEnd, 1)
	resp := setLen(appendResponseHead(rs, 200, http.Header{"C": {"d"}}, 3))
	f.Add(append(resp, []byte{byte(frameCredit), 0, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 1, 0}...))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			fr, size, err := parseFrame(b, 64<<10)
			if err == errSkip {
				b = b[size:]
				continue
			}
			if err != nil {
				return
			}
			if size < frameHeaderLen || size > len(b) {
				t.Fatalf("bad frame size %d of %d", size, len(b))
			}
			b = b[size:]
			checkHeads(t, fr)
		}
	})
}

func checkHeads(t *testing.T, fr frame) {
	checkHeadsWalked(t, fr.payload)
	switch fr.typ {
	case frameRequest:
		if h, off, err := parseRequestHead(fr.payload); err == nil && (off > len(fr.payload) || h.method == "") {
			t.Fatalf("bad offset %d", off)
		}
	case frameResponse:
		if _, off, err := parseResponseHead(fr.payload); err == nil && off > len(fr.payload) {
			t.Fatalf("bad offset %d", off)
		}
	case frameError, frameCancel:
		parseErrorPayload(fr.payload)
	}
}

func FuzzHello(f *testing.F) {
	share, sig := bytes.Repeat([]byte{7}, keyShareSize), bytes.Repeat([]byte{9}, signatureSize)
	f.Add(appendHelloSig((&hello{major: ProtocolMajor, nodeID: "n", pingInterval: time.Second, maxFrameSize: 65536, initialWindow: 1 << 20, maxStreams: 10, keyShare: share}).appendTo(nil), sig))
	f.Add((&hello{major: ProtocolMajor}).appendTo(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b, true)
		if err != nil {
			return
		}
		if h.maxFrameSize < minFrameSize || h.initialWindow < minWindow || h.maxStreams < 1 || h.pingInterval < minPing {
			t.Fatalf("accepted out-of-range hello %+v", h)
		}
		if len(h.keyShare) != keyShareSize || len(h.sig) != signatureSize || h.signedLen > len(b) {
			t.Fatalf("accepted hello without a proper key share and signature: %+v", h)
		}
		again, err := parseHello(appendHelloSig(h.appendTo(nil), h.sig), true)
		again.signedLen, h.signedLen = 0, 0
		if err != nil || !reflect.DeepEqual(again, h) {
			t.Fatalf("re-encode mismatch: %+v vs %+v (%v)", h, again, err)
		}
	})
}

// checkHeadsWalked compares the heads parsed from p with what decoding the
// whole prefix gives (the decoding before heads were walked first, to copy
// only the head): the same head, offset and error, whatever follows it.
func checkHeadsWalked(t *testing.T, p []byte) {
	t.Helper()
	{
		d := decoder[string]{s: string(headPrefix(p))}
		var want requestHead
		want.timeoutMs = d.uvarint()
		want.method = d.str()
		want.target = d.str()
		want.host = d.str()
		want.contentLength = d.contentLength()
		want.header = d.header()
		got, off, err := parseRequestHead(p)
		if d.err != nil {
			require.Error(t, err, "a request head that does not decode was accepted")
		} else if err == nil {
			require.Equal(t, d.off, off)
			require.Equal(t, want, got)
		}
	}
	{
		d := decoder[string]{s: string(headPrefix(p))}
		st := d.uvarint()
		cl := d.contentLength()
		hd := d.header()
		got, off, err := parseResponseHead(p)
		switch {
		case d.err != nil:
			require.Error(t, err, "a response head that does not decode was accepted")
		case st >= 100 && st <= 999:
			require.NoError(t, err)
			require.Equal(t, d.off, off)
			require.Equal(t, responseHead{status: int(st), contentLength: cl, header: hd}, got)
		}
	}
}

// FuzzHeads: a head walked and then decoded from its own bytes is the head
// decoded from the whole frame.
func FuzzHeads(f *testing.F) {
	req, _ := http.NewRequest(http.MethodPost, "http://x/p?q", nil)
	req.Header.Set("A", "b")
	req.Header.Add("A", "c")
	f.Add(append(appendRequestHead(nil, 10, req, 5), "hello"...))
	f.Add(append(appendResponseHead(nil, 200, http.Header{"C": {"d"}}, 3), "abc"...))
	f.Add([]byte{0, 3, 'G', 'E', 'T', 1, '/', 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) { checkHeadsWalked(t, p) })
}

// A head is copied without the body that follows it in its frame: a
// request with 60 KiB of body in its REQUEST frame cost a 60 KiB copy.
func TestHeadCopiesOnlyTheHead(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://x/upload", nil)
	req.Header.Set("Content-Type", "application/octet-stream")
	body := bytes.Repeat([]byte("b"), 60<<10)
	reqP := append(appendRequestHead(nil, 0, req, int64(len(body))), body...)
	respP := append(appendResponseHead(nil, 200, http.Header{"Content-Type": {"text/plain"}}, int64(len(body))), body...)
	perParse := func(parse func()) uint64 {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		for range 100 {
			parse()
		}
		runtime.ReadMemStats(&b)
		return (b.TotalAlloc - a.TotalAlloc) / 100
	}
	n := perParse(func() {
		h, off, err := parseRequestHead(reqP)
		require.NoError(t, err)
		require.Equal(t, body, reqP[off:])
		require.Equal(t, "/upload", h.target)
	})
	assert.Less(t, n, uint64(2048), "bytes allocated per request head")
	n = perParse(func() {
		h, off, err := parseResponseHead(respP)
		require.NoError(t, err)
		require.Equal(t, body, respP[off:])
		require.Equal(t, "text/plain", h.header.Get("Content-Type"))
	})
	assert.Less(t, n, uint64(2048), "bytes allocated per response head")
}
