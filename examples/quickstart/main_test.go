package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, &out)
	t.Log("\n" + out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "All 10 steps passed")
	assert.NotContains(t, out.String(), "FAILED")
	assert.NotContains(t, out.String(), "Liaison-demo-2026", "passwords are never printed")
}

func TestQuickstartNamesTheFailedStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every step that needs the network fails at once
	var out bytes.Buffer
	err := run(ctx, &out)
	require.Error(t, err)
	assert.Regexp(t, `^step \d+/10 ".+" failed: `, err.Error())
	assert.Contains(t, out.String(), "FAILED")
}
