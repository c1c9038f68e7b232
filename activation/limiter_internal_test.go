package activation

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(0, 0)
	l := newLimiter(2, 3, 10)
	for i := range 3 {
		ok, _ := l.allow("k", t0)
		assert.True(t, ok, "burst %d", i)
	}
	ok, wait := l.allow("k", t0)
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, wait)
	ok, _ = l.allow("other", t0)
	assert.True(t, ok, "keys are independent")
	ok, _ = l.allow("k", t0.Add(500*time.Millisecond))
	assert.True(t, ok, "refilled at 2/s")
	ok, _ = l.allow("k", t0.Add(500*time.Millisecond))
	assert.False(t, ok)
}

func TestLimiterStaysBounded(t *testing.T) {
	t0 := time.Unix(0, 0)
	l := newLimiter(1, 5, 100)
	for i := range 10_000 {
		l.allow(strconv.Itoa(i), t0.Add(time.Duration(i)*time.Millisecond))
		if len(l.buckets) > 100 {
			t.Fatalf("%d buckets after %d keys", len(l.buckets), i)
		}
	}
	// A draining bucket survives a sweep when there is room.
	l = newLimiter(1, 5, 3)
	for range 5 {
		l.allow("busy", t0)
	}
	l.allow("a", t0.Add(10*time.Second))
	l.allow("b", t0.Add(10*time.Second))
	l.allow("c", t0.Add(10*time.Second)) // sweep: "busy" refilled by now, forgotten
	_, kept := l.buckets["busy"]
	assert.False(t, kept)
}
