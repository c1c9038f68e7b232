package loginguard_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/directory/loginguard"
)

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{
		"  Alice.Martin ":   "alice.martin",
		"ALICE  MARTIN":     "alice martin",
		"\tZoË\u00a0":       "zoë",
		"\u212Aate":         "kate", // Kelvin sign
		"STRASSE":           "strasse",
		"":                  "",
		" \t\n":             "",
		"ÄÖÜ@Example.COM":   "äöü@example.com",
		"дмитрий.Ш":         "дмитрий.ш",
		"zoe\u0308.lockout": "zoe\u0308.lockout", // NFD stays NFD (documented)
	} {
		got := loginguard.NormalizeName(in)
		// Compare folded forms: the fold picks the smallest rune of each
		// case orbit, which is the upper-case letter for ASCII.
		assert.Equal(t, loginguard.NormalizeName(want), got, "%q", in)
		assert.True(t, strings.EqualFold(strings.Join(strings.Fields(in), " "), got), "%q -> %q", in, got)
	}
}

func TestSourceKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"192.0.2.1:443":          "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:8443": "2001:db8:1:2::/64",
		"fe80::1%eth0":           "fe80::/64",
		"not an address":         "not an address",
	} {
		assert.Equal(t, want, loginguard.SourceKey(in), "%q", in)
	}
}

// FuzzNormalizeName: the per-name key of untrusted input is stable
// (normalising twice changes nothing), never has outer spaces, and the
// store key is of fixed size whatever the input.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"alice", " ALICE ", "zoe\u0308", "\u212A", "a\u00a0 b", "\xff\xfe", strings.Repeat("x", 1000)} {
		f.Add(s, "192.0.2.1")
	}
	f.Fuzz(func(t *testing.T, name, src string) {
		n := loginguard.NormalizeName(name)
		if again := loginguard.NormalizeName(n); again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", name, n, again)
		}
		if strings.TrimFunc(n, unicode.IsSpace) != n {
			t.Fatalf("outer space left: %q", n)
		}
		if k := loginguard.Key("n", "realm", n); len(k) != 2+43 {
			t.Fatalf("key of %d bytes", len(k))
		}
		_ = loginguard.SourceKey(src)
	})
}
