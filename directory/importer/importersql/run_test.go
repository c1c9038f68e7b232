package importersql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/directory/importer"
	"github.com/liaisonhq/liaison/directory/importer/importersql"
	"github.com/liaisonhq/liaison/internal/sqlstore/sqlstoretest"
)

var errOffline = errors.New("offline")

type source struct {
	users []directory.User
	err   error
	since []directory.Cursor
}

func (s *source) Users(_ context.Context, _ directory.Mapping, fn func(directory.User) error) (directory.Cursor, error) {
	s.since = append(s.since, "")
	if s.err != nil {
		return "", s.err
	}
	for _, u := range s.users {
		if err := fn(u); err != nil {
			return "", err
		}
	}
	return "c-full", nil
}

func (s *source) Changes(_ context.Context, _ directory.Mapping, since directory.Cursor, fn func(directory.User) error) (directory.Cursor, error) {
	s.since = append(s.since, since)
	if s.err != nil {
		return "", s.err
	}
	return "c-next", nil
}

func TestImportRecordsRunsAndAdvancesTheCursorOnlyOnSuccess(t *testing.T) {
	ctx := context.Background()
	st := newStore(t, importersql.SQLite, sqlstoretest.Open(t, importersql.SQLite))
	require.NoError(t, st.PutMapping(ctx, importersql.Mapping{Tenant: "acme", ID: "staff"}))
	src := &source{users: []directory.User{{ID: "g1", Login: "alice"}}}
	im, err := importer.New(importer.Config{Source: src, Store: st, Checkpoints: st})
	require.NoError(t, err)
	unavailable := func(err error) bool { return errors.Is(err, errOffline) }
	mapping := func() importersql.Mapping {
		m, err := st.Mapping(ctx, "acme", "staff")
		require.NoError(t, err)
		return m
	}

	res, run, histErr, err := st.Import(ctx, im, mapping(), importersql.ImportOptions{}, unavailable)
	require.NoError(t, err)
	require.NoError(t, histErr)
	assert.Equal(t, "ok", run.Status)
	assert.Equal(t, 1, res.Summary.Creates)
	assert.Equal(t, directory.Cursor("c-full"), mapping().Cursor)

	src.err = errOffline
	_, run, _, err = st.Import(ctx, im, mapping(), importersql.ImportOptions{}, unavailable)
	require.ErrorIs(t, err, errOffline)
	assert.Equal(t, "skipped", run.Status)
	assert.Equal(t, directory.Cursor("c-full"), mapping().Cursor, "a failed run leaves the cursor")
	assert.Equal(t, directory.Cursor("c-full"), src.since[1], "incremental from the stored cursor")

	src.err = nil
	_, run, _, err = st.Import(ctx, im, mapping(), importersql.ImportOptions{Full: true}, unavailable)
	require.NoError(t, err)
	assert.Equal(t, directory.Cursor(""), src.since[2], "full ignores the cursor")
	runs, err := st.Runs(ctx, "acme", 10)
	require.NoError(t, err)
	require.Len(t, runs, 3)
	assert.Equal(t, []string{"ok", "skipped", "ok"}, []string{runs[2].Status, runs[1].Status, runs[0].Status})
	assert.Equal(t, run.Status, runs[0].Status)
}
