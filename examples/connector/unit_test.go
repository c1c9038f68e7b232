package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSystemdUnit checks the shipped unit file with systemd-analyze verify,
// with ExecStart pointed at an executable that exists.
func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze not found (install systemd)")
		}
		t.Skip("systemd-analyze not found; install systemd to check the unit file")
	}
	unit, err := os.ReadFile("liaison-connector.service")
	require.NoError(t, err)
	require.Contains(t, string(unit), "ExecStart=/usr/local/bin/liaison-connector run --config /etc/liaison/connector.json")

	dir := t.TempDir()
	exe := filepath.Join(dir, "liaison-connector")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755))
	path := filepath.Join(dir, "liaison-connector.service")
	require.NoError(t, os.WriteFile(path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/liaison-connector", exe)), 0o644))
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	// Lines about other units on this machine are not ours.
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "liaison-connector") {
			ours = append(ours, l)
		}
	}
	assert.Empty(t, ours, "systemd-analyze verify: %s", out)
	if err != nil && len(ours) > 0 {
		t.Fatalf("systemd-analyze verify failed: %v", err)
	}
}
