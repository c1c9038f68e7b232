package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRunRefusesBadFlags(t *testing.T) {
	t.Setenv("LIAISON_ADMIN_TOKEN", "")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no admin token", []string{"--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "x.db")}, "admin token is required"},
		{"empty token file", []string{"--admin-token-file", empty}, "admin token is required"},
		{"cert without key", []string{"--tls-cert", "c.pem"}, "go together"},
		{"unknown flag", []string{"--nope"}, "not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, io.Discard, io.Discard)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestCommandExitCodesAndOutput: help and version exit 0 on stdout; a bad
// command line exits 2 and a failure 1, each with one "cloud: " prefix on
// stderr.
func TestCommandExitCodesAndOutput(t *testing.T) {
	t.Setenv("LIAISON_ADMIN_TOKEN", "")
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string // substrings; "" means empty
		notStderr      string
	}{
		{"-h", []string{"-h"}, 0, "-public-url", "", ""},
		{"--help", []string{"--help"}, 0, "-log-format", "", ""},
		{"version", []string{"version"}, 0, "cloud (devel)", "", ""},
		{"--version", []string{"--version"}, 0, runtime.GOOS + "/" + runtime.GOARCH, "", ""},
		{"unknown flag", []string{"--nope"}, 2, "", "cloud: flag provided but not defined: -nope", "Usage"},
		{"unexpected argument", []string{"serve"}, 2, "", `cloud: unexpected argument "serve"`, ""},
		{"bad log format", []string{"--log-format", "xml"}, 2, "", `cloud: unknown --log-format "xml"`, ""},
		{"no admin token", []string{"--db", filepath.Join(t.TempDir(), "x.db")}, 1, "", "cloud: an admin token is required", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := command(tt.args, &out, &errb)
			assert.Equal(t, tt.code, code)
			if tt.stdout == "" {
				assert.Empty(t, out.String())
			} else {
				assert.Contains(t, out.String(), tt.stdout)
			}
			if tt.stderr == "" {
				assert.Empty(t, errb.String())
			} else {
				assert.Contains(t, errb.String(), tt.stderr)
				assert.Equal(t, 1, strings.Count(errb.String(), "cloud:"), "one prefix: %q", errb.String())
			}
			if tt.notStderr != "" {
				assert.NotContains(t, errb.String(), tt.notStderr)
			}
		})
	}
}
