package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCLIConventions: help and version exit 0, a bad command line exits 2
// with one "activate:" prefix.
func TestCLIConventions(t *testing.T) {
	t.Setenv("LIAISON_ACTIVATION_TOKEN", "")
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // substrings
	}{
		{"-h", []string{"-h"}, exitOK, "", "-cloud"},
		{"--help", []string{"--help"}, exitOK, "", "-tenant"},
		{"version", []string{"version"}, exitOK, "activate (devel) ", ""},
		{"--version", []string{"--version"}, exitOK, runtime.GOOS + "/" + runtime.GOARCH, ""},
		{"missing flags", []string{"--cloud", "https://127.0.0.1:1"}, exitUsage, "", "activate: --tenant, --token required"},
		{"unreadable CA file", []string{"--cloud", "https://127.0.0.1:1", "--tenant", "t", "--token", "x",
			"--login", "u", "--domain", "d", "--ca-file", "/nonexistent/ca.pem"}, exitUsage, "", "activate: open /nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := invoke(t, tt.args...)
			assert.Equal(t, tt.code, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
			assert.Contains(t, r.stdout, tt.stdout)
			assert.Contains(t, r.stderr, tt.stderr)
			if tt.code != exitOK {
				first := strings.SplitN(r.stderr, "\n", 2)[0]
				assert.Equal(t, 1, strings.Count(first, "activate:"), "one prefix: %q", first)
			}
		})
	}
}
