package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
)

// --demo-ldap writes how to reach the demo directory, and what it wrote
// works: a directory client with those settings binds and finds a user.
func TestServeDemoLDAP(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "demo-ldap.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveDemoLDAP(ctx, file, io.Discard) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	require.Eventually(t, func() bool { _, err := os.Stat(file); return err == nil }, 10*time.Second, 10*time.Millisecond)
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var info demoLDAPInfo
	require.NoError(t, json.Unmarshal(b, &info))
	ca, err := os.ReadFile(info.CAFile)
	require.NoError(t, err)
	pw, err := os.ReadFile(info.BindPasswordFile)
	require.NoError(t, err)
	st, err := os.Stat(info.BindPasswordFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a secret file is 0600")
	c, err := directory.Open(directory.Config{URLs: []string{info.URL}, BindDN: info.BindDN,
		BindPassword: strings.TrimSpace(string(pw)), CAPEM: ca})
	require.NoError(t, err)
	defer c.Close()
	u, err := c.Lookup(ctx, directory.Mapping{OUs: []string{info.PeopleDN}}, "alice.martin")
	require.NoError(t, err)
	assert.Equal(t, "alice.martin", u.Login)
	_, err = c.CheckCredentials(ctx, directory.Mapping{OUs: []string{info.PeopleDN}}, "alice.martin", info.UserPassword)
	assert.NoError(t, err)
}
