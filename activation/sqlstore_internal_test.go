package activation

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPlaceholders(t *testing.T) {
	q := "SELECT a FROM t WHERE x = ? AND y = ?"
	assert.Equal(t, q, (&SQLStore{dialect: SQLite}).q(q))
	assert.Equal(t, "SELECT a FROM t WHERE x = $1 AND y = $2", (&SQLStore{dialect: Postgres}).q(q))
}
