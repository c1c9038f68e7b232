package directory

import (
	"os"
	"slices"
	"testing"

	"github.com/liaisonhq/liaison/directory/directorytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSambaRangeRetrievalPages checks that the big group is really read in
// steps on Samba (which pages an explicit member;range request), not in
// one answer.
func TestSambaRangeRetrievalPages(t *testing.T) {
	s := directorytest.Samba(t)
	ca, err := os.ReadFile(s.CAFile)
	require.NoError(t, err)
	c, err := Open(Config{URLs: []string{s.URL}, BindDN: s.BindDN, BindPassword: s.BindPassword, CAPEM: ca, RangeSize: 499})
	require.NoError(t, err)
	defer c.Close()
	big, ok := s.Dataset().Group(directorytest.BigGroup)
	require.True(t, ok)
	groups, err := c.Groups(t.Context(), "")
	require.NoError(t, err)
	i := slices.IndexFunc(groups, func(g Group) bool { return SameDN(g.DN, big.DN(s.BaseDN)) })
	require.GreaterOrEqual(t, i, 0)
	assert.Equal(t, len(big.Users)+len(big.Groups), groups[i].MemberCount)
	n := len(big.Users) + len(big.Groups)
	assert.GreaterOrEqual(t, c.rangeSteps.Load(), int64((n-1)/499), "follow-up range requests")
}
