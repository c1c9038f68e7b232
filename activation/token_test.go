package activation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

func issue(t testing.TB) string {
	t.Helper()
	h := newHarness(t, activation.NewMemoryStore())
	return h.token
}

func TestParseToken(t *testing.T) {
	good := issue(t)
	require.Len(t, good, activation.TokenLen)
	require.True(t, strings.HasPrefix(good, activation.TokenPrefix))
	body := good[len(activation.TokenPrefix):]
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", good, true},
		{"empty", "", false},
		{"prefix only", activation.TokenPrefix, false},
		{"wrong prefix", "lmx_" + body, false},
		{"upper prefix", "LMD_" + body, false},
		{"truncated", good[:len(good)-1], false},
		{"extended", good + "A", false},
		{"padded", good[:len(good)-2] + "==", false},
		// The prefix keeps its "_": only the body changes alphabet (a body
		// without "-" or "_" is the same in both, and valid).
		{"std alphabet", activation.TokenPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body), strings.IndexAny(body, "-_") < 0},
		{"space inside", good[:10] + " " + good[11:], false},
		{"flipped secret char", flip(good, 40), false},
		{"flipped id char", flip(good, 5), false},
		{"non-canonical last char", good[:len(good)-1] + string(rune(good[len(good)-1])+1), false},
		{"unicode", good[:len(good)-2] + "é", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := activation.ParseToken(tc.in)
			if tc.ok {
				require.NoError(t, err)
				assert.Len(t, p.ID, 32)
				return
			}
			assert.ErrorIs(t, err, activation.ErrTokenMalformed)
		})
	}
}

func TestTokensAreUnique(t *testing.T) {
	h := newHarness(t, activation.NewMemoryStore())
	seen := map[string]bool{}
	for range 100 {
		tok, rec, err := h.svc.IssueToken(context.Background(), "t1", "m1", time.Hour)
		require.NoError(t, err)
		assert.False(t, seen[tok])
		seen[tok] = true
		assert.NotContains(t, tok, rec.ID, "the ID is encoded, not shown verbatim")
		assert.Len(t, rec.Hash, 32)
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(issue(f))
	f.Add("lmd_")
	f.Add("lmd_" + strings.Repeat("A", 70))
	f.Add(strings.Repeat("\xff", activation.TokenLen))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := activation.ParseToken(s)
		if err != nil {
			if p.ID != "" {
				t.Fatalf("error with a non-empty result: %+v", p)
			}
			return
		}
		if len(s) != activation.TokenLen || !strings.HasPrefix(s, activation.TokenPrefix) || len(p.ID) != 32 {
			t.Fatalf("accepted %q", s)
		}
	})
}
