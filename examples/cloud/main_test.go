package main

import (
	"os"
	"path/filepath"
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
			err := run(tt.args)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
