package cloudapp_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/liaisonhq/liaison/directory"
	"github.com/liaisonhq/liaison/examples/internal/cloudapp"
)

// Issue 9: 3 wrong passwords as the login and 3 as the UPN used to reach
// the directory 6 times. Every spelling of one account now shares one
// count, also in a parallel burst, through the real tunnel and wire.
func TestLoginFormsShareOneCount(t *testing.T) {
	e := newEnv(t, func(c *cloudapp.Config) {
		c.LoginMaxFailures = 3
		// The test env's 200 ms ping interval ends the session after 600 ms
		// of silence; 40 concurrent checks under -race on a loaded machine
		// can starve the pings that long (seen as 502/503 answers). This
		// test is about counting, not liveness.
		c.PingInterval = 5 * time.Second
	})
	c := e.enroll("acme")
	e.start(c)
	e.dir.set(demoUsers(2))
	e.dir.passwords["user0"] = "right"
	require.NoError(t, e.srv.PutMapping(context.Background(), "acme", "staff", directory.Mapping{}))
	login := func(user, pw string) int {
		return e.doToken("", http.MethodPost, cloudapp.PathLogin, cloudapp.LoginRequest{Tenant: "acme", MappingID: "staff", Login: user, Password: pw}, nil)
	}
	forms := []string{"user0", "user0@corp.test", "USER0", "User0@Corp.Test"}
	codes := make(chan int, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() { codes <- login(forms[i%len(forms)], "wrong") })
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	assert.Equal(t, map[int]int{http.StatusUnauthorized: 3, http.StatusTooManyRequests: 37}, count)
	assert.EqualValues(t, 3, e.dir.authCalls.Load(), "3 checks reach the directory for 40 attempts over 4 spellings")

	// An unknown name gets the same answers as an account.
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, login("nobody", "x"))
	}
	assert.Equal(t, http.StatusTooManyRequests, login("NOBODY", "x"))
}
