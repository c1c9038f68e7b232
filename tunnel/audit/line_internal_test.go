package audit

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appendBody writes what encoding/json writes for the same Line: the
// reference is the standard library, not this package.
func TestAppendBodyMatchesEncodingJSON(t *testing.T) {
	odd := "a\"b\\c\n\r\t\b\f\x00\x1f<>&é\u2028\u2029\xff\xfe张伟🙂 end"
	lines := []Line{
		{Version: 1, Seq: 1, Kind: KindStart, Time: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC), Prev: zeroHash},
		{Version: 1, Seq: 1 << 60, Kind: KindEntry, Time: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), Tenant: odd,
			Op: odd, Subject: odd, Outcome: "ok", Reason: odd, Status: 401, Duration: -5, Prev: zeroHash},
		{Version: 1, Seq: 9, Kind: KindStart, Time: time.Date(2026, 12, 2, 4, 0, 0, 1000, time.UTC), PrevFile: "audit-1.jsonl", Unclean: true, Prev: zeroHash},
		{Version: 1, Seq: 10, Kind: KindCheckpoint, Time: time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC), Why: ReasonClose, KeyID: "0011", Prev: zeroHash,
			Hash: "ignored", Sig: []byte("ignored")},
	}
	for i, l := range lines {
		want, err := json.Marshal(&l)
		require.NoError(t, err)
		got := appendBody(nil, &l)
		assert.Equal(t, string(want[:len(want)-1]), string(got), "line %d", i)
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("a\"b\\c\n\x00<>&\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Skip()
		}
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, encoding/json %s", s, got, want)
		}
	})
}
