package main

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/examples/internal/demoldap"
)

func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, logs bytes.Buffer
	err := runWith(ctx, &out, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Log("\n" + out.String())
	require.NoError(t, err)
	assert.Contains(t, out.String(), "All 11 steps passed")
	assert.NotContains(t, out.String(), "FAILED")
	assert.NotEmpty(t, logs.String(), "the cloud and the connector logged")
	for _, secret := range []string{demoldap.Password, demoldap.ServicePassword} {
		assert.NotContains(t, out.String(), secret, "passwords are never printed")
		assert.NotContains(t, logs.String(), secret, "passwords are never logged")
	}
}

func TestQuickstartNamesTheFailedStep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every step that needs the network fails at once
	var out bytes.Buffer
	err := run(ctx, &out)
	require.Error(t, err)
	assert.Regexp(t, `^step \d+/11 ".+" failed: `, err.Error())
	assert.Contains(t, out.String(), "FAILED")
}
