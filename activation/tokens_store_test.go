package activation_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/activation"
)

type tokenLister interface {
	ListTokens(ctx context.Context, tenant string) ([]activation.TokenRecord, error)
}

func TestTokenStores(t *testing.T) {
	for name, newStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			st := newStore(t)
			ctx := context.Background()
			h := newHarness(t, st) // issues one token for t1 at t0
			h.clock.Advance(time.Second)
			_, second, err := h.svc.IssueToken(ctx, "t1", "m2", time.Hour)
			require.NoError(t, err)
			_, _, err = h.svc.IssueToken(ctx, "t2", "m1", time.Hour)
			require.NoError(t, err)
			require.NoError(t, h.svc.RevokeToken(ctx, "t1", h.tokID)) // at t0+1s
			h.clock.Advance(time.Minute)
			require.NoError(t, h.svc.RevokeToken(ctx, "t1", h.tokID), "revoking twice is fine")

			got, err := st.Token(ctx, second.ID)
			require.NoError(t, err)
			assert.Equal(t, "m2", got.MappingID)
			assert.Equal(t, second.Hash, got.Hash)
			assert.True(t, got.ExpiresAt.Equal(t0.Add(time.Second+time.Hour)))
			assert.True(t, got.RevokedAt.IsZero())

			_, err = st.Token(ctx, "00000000000000000000000000000000")
			assert.ErrorIs(t, err, activation.ErrNotFound)

			list, err := st.(tokenLister).ListTokens(ctx, "t1")
			require.NoError(t, err)
			require.Len(t, list, 2)
			assert.Equal(t, h.tokID, list[0].ID, "oldest first")
			assert.True(t, list[0].RevokedAt.Equal(t0.Add(time.Second)), "first revocation time kept, got %v", list[0].RevokedAt)
			assert.Equal(t, second.ID, list[1].ID)
		})
	}
}
