package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// The deployment-mode flags refuse the combinations that cannot work, with
// exit code 2 and a message naming the flags; a password in --db is never
// logged.
func TestClusterFlagsRefused(t *testing.T) {
	pg := "postgres://u:secretpw@127.0.0.1:1/db"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nats and cluster-listen", []string{"--db", pg, "--master-key-file", "k", "--nats", "nats://x:4222", "--cluster-listen", "127.0.0.1:6222"}, "--nats and --cluster-listen exclude each other"},
		{"peers without listen", []string{"--db", pg, "--master-key-file", "k", "--cluster-peers", "127.0.0.1:6222"}, "--cluster-peers needs --cluster-listen"},
		{"cluster on sqlite", []string{"--db", "x.db", "--cluster-listen", "127.0.0.1:6222"}, "need a postgres:// --db"},
		{"nats on sqlite", []string{"--db", "x.db", "--nats", "nats://x:4222"}, "need a postgres:// --db"},
		{"postgres without key file", []string{"--db", pg}, "needs --master-key-file"},
		{"no database connection", []string{"--db", pg, "--master-key-file", "k", "--db-max-conns", "0"}, "--db-max-conns 0: give at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var errb bytes.Buffer
			code := command(tt.args, &bytes.Buffer{}, &errb)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errb.String(), tt.want)
			assert.Equal(t, 1, strings.Count(errb.String(), "cloud:"))
			assert.NotContains(t, errb.String(), "secretpw")
		})
	}
	assert.NotContains(t, dbName(pg), "secretpw")
	assert.Contains(t, dbName(pg), "127.0.0.1:1/db")
	assert.Equal(t, "cloud.db", dbName("cloud.db"))
}
