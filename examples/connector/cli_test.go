package main

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCLIConventions: help exits 0 at every level, version prints the build,
// unknown commands are usage errors, and printed errors carry one prefix.
func TestCLIConventions(t *testing.T) {
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // substrings; "" means nothing asserted
	}{
		{"-h", []string{"-h"}, exitOK, "connector directory info", ""},
		{"--help", []string{"--help"}, exitOK, "connector version", ""},
		{"directory -h", []string{"directory", "-h"}, exitOK, "connector directory lookup", ""},
		{"directory --help", []string{"directory", "--help"}, exitOK, "connector directory lookup", ""},
		{"directory help", []string{"directory", "help"}, exitOK, "connector directory lookup", ""},
		{"directory lookup -h", []string{"directory", "lookup", "-h"}, exitOK, "", "-base"},
		{"run -h", []string{"run", "-h"}, exitOK, "", "-config"},
		{"enroll -h", []string{"enroll", "-h"}, exitOK, "", "-token"},
		{"check -h", []string{"check", "-h"}, exitOK, "", "-config"},
		{"version", []string{"version"}, exitOK, "connector (devel) ", ""},
		{"--version", []string{"--version"}, exitOK, runtime.GOOS + "/" + runtime.GOARCH, ""},
		{"unknown command", []string{"frobnicate"}, exitUsage, "", `connector: unknown command "frobnicate"`},
		{"unknown directory command", []string{"directory", "frobnicate"}, exitUsage, "", `connector: unknown directory command "frobnicate"`},
		{"enroll unreachable", []string{"enroll", "--cloud", "https://127.0.0.1:1", "--token", "lenr2_" + strings.Repeat("A", 86),
			"--identity", filepath.Join(t.TempDir(), "id.json")}, exitFailure, "", "connector: enroll: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, "", tt.args...)
			assert.Equal(t, tt.code, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
			assert.Contains(t, r.stdout, tt.stdout)
			assert.Contains(t, r.stderr, tt.stderr)
			if tt.code != exitOK {
				first := strings.SplitN(r.stderr, "\n", 2)[0]
				assert.Equal(t, 1, strings.Count(first, "connector:"), "one prefix per message: %q", first)
				assert.NotContains(t, first, "connectorapp:")
				assert.NotContains(t, first, "tunnel:")
			}
		})
	}
}
