package tunnelnats

import (
	"encoding/binary"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/tunnel"
)

// Heads decode to what was encoded, multi-valued and empty headers
// included, with the body that follows them.
func TestHeadsRoundTrip(t *testing.T) {
	hdr := http.Header{"Accept": {"a", "b"}, "X-Empty": {""}, "Content-Type": {"application/json"}}
	req := reqHead{Method: "POST", URL: "http://connector/v1/users?x=1", Host: "connector", Header: hdr,
		ContentLength: 4, TimeoutMs: 1500, Window: 1 << 20, End: true}
	m, err := appendRequest(nil, &req)
	require.NoError(t, err)
	m = append(m, "body"...)
	got, body, err := parseRequest(m)
	require.NoError(t, err)
	assert.Equal(t, req, got)
	assert.Equal(t, "body", string(body))

	streamed := reqHead{Method: "GET", URL: "/x", ContentLength: -1, Window: 64 << 10}
	m, err = appendRequest(nil, &streamed)
	require.NoError(t, err)
	got, body, err = parseRequest(m)
	require.NoError(t, err)
	assert.Equal(t, streamed, got)
	assert.Empty(t, body)

	resp := respHead{Status: 404, Header: http.Header{"Set-Cookie": {"a=1", "b=2"}}, ContentLength: 0, End: true}
	m, err = appendResponse(nil, &resp)
	require.NoError(t, err)
	gotResp, body, err := parseResponse(m)
	require.NoError(t, err)
	assert.Equal(t, resp, gotResp)
	assert.Empty(t, body)
}

// Messages that break the documented layout or bounds are refused.
func TestHeadsRefused(t *testing.T) {
	good, err := appendRequest(nil, &reqHead{Method: "GET", URL: "/", Window: 1024, End: true})
	require.NoError(t, err)
	withLen := func(m []byte, n uint32) []byte {
		m = append([]byte(nil), m...)
		binary.BigEndian.PutUint32(m[1:5], n)
		return m
	}
	head := func(fields ...byte) []byte {
		m := append([]byte{msgRequest, 0, 0, 0, 0}, fields...)
		return withLen(m, uint32(len(fields)))
	}
	// Control: the hand-written layout the cases below break is accepted.
	h, _, err := parseRequest(head(1, 0, 1, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0))
	require.NoError(t, err)
	require.Equal(t, reqHead{Method: "GET", URL: "/", Window: 1, ContentLength: -1, End: true}, h)
	_, _, err = parseResponse([]byte{msgResponse, 0, 0, 0, 4, 1, 100, 1, 0})
	require.NoError(t, err)
	for name, m := range map[string][]byte{
		"empty":                {},
		"wrong type":           append([]byte{msgResponse}, good[1:]...),
		"head longer than msg": withLen(good, uint32(len(good))),
		"truncated head":       good[:len(good)-1],
		"bytes after the head": withLen(append(append([]byte(nil), good...), 0), uint32(len(good)-5+1)),
		"unknown flag":         head(2, 0, 1, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0),
		"no method":            head(1, 0, 1, 0, 0, 1, '/', 0, 0),
		"no url":               head(1, 0, 1, 0, 3, 'G', 'E', 'T', 0, 0, 0),
		"zero window":          head(1, 0, 0, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0),
		"window beyond max":    head(1, 0, 0x80, 0x80, 0x80, 0x10, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0),
		"header count lies":    head(1, 0, 1, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0xff, 0xff, 0x03),
		"string beyond head":   head(1, 0, 1, 0, 9, 'G', 'E', 'T'),
		"body after streamed":  append(head(0, 0, 1, 0, 3, 'G', 'E', 'T', 1, '/', 0, 0), 'x'),
		"body length mismatch": append(head(1, 0, 1, 3, 3, 'G', 'E', 'T', 1, '/', 0, 0), 'x'),
	} {
		_, _, err := parseRequest(m)
		assert.ErrorIs(t, err, errMalformed, name)
	}
	for name, m := range map[string][]byte{
		"status below 100":  {msgResponse, 0, 0, 0, 4, 1, 99, 1, 0},
		"status beyond 999": {msgResponse, 0, 0, 0, 5, 1, 0xe8, 0x07, 1, 0},
	} {
		_, _, err := parseResponse(m)
		assert.ErrorIs(t, err, errMalformed, name)
	}
	big := http.Header{"X": {string(make([]byte, maxHead))}}
	_, err = appendRequest(nil, &reqHead{Method: "GET", URL: "/", Window: 1024, Header: big})
	assert.ErrorIs(t, err, tunnel.ErrHeadTooLarge)
}
