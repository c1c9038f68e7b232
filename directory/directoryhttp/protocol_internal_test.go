package directoryhttp

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/liaisonhq/liaison/directory"
)

// Every classified error survives encode then decode as the same sentinel,
// with the status the table gives; anything else arrives as ErrRemote.
func TestWireCodesRoundTrip(t *testing.T) {
	for _, w := range wireCodes() {
		t.Run(w.code, func(t *testing.T) {
			status, we := encodeError(fmt.Errorf("directory: context: %w", w.err))
			assert.Equal(t, w.status, status)
			assert.Equal(t, w.code, we.Code)
			assert.ErrorIs(t, decodeError(we), w.err)
		})
	}
	t.Run("credentials keep their reason", func(t *testing.T) {
		status, we := encodeError(&directory.CredentialError{Reason: directory.ReasonLocked})
		assert.Equal(t, http.StatusUnauthorized, status)
		err := decodeError(we)
		assert.ErrorIs(t, err, directory.ErrInvalidCredentials)
		assert.Equal(t, directory.ReasonLocked, directory.ReasonOf(err))
	})
	t.Run("unclassified", func(t *testing.T) {
		status, we := encodeError(errors.New("boom"))
		assert.Equal(t, http.StatusInternalServerError, status)
		assert.ErrorIs(t, decodeError(we), ErrRemote)
		assert.ErrorIs(t, decodeError(&wireError{Code: "from_the_future"}), ErrRemote)
	})
}
