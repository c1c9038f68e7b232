package tunnel

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// watched reports how many sessions w watches and whether its timer is
// armed.
func watched(w *silenceWatch) (n int, armed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.sessions), w.t != nil
}

// One watch over several gateway sessions closes the silent one exactly
// three intervals after its last frame and leaves the live ones alone; once
// every session has gone, no timer is left armed.
func TestSilenceWatchClosesOnlyTheSilent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 5 * time.Second
		w := newSilenceWatch(iv)
		type pair struct {
			gw, conn       *Session
			gwDone, cnDone chan error
		}
		var pairs []pair
		for i := range 4 {
			gw, conn, _ := pipePairWatched(t, iv, http.NotFoundHandler(), ourFeatures, 0, w)
			p := pair{gw: gw, conn: conn, gwDone: make(chan error, 1), cnDone: make(chan error, 1)}
			go func() { p.gwDone <- gw.run(context.Background()) }()
			if i != 2 { // the third connector never runs: it neither reads nor writes
				go func() { p.cnDone <- conn.run(context.Background()) }()
			}
			pairs = append(pairs, p)
		}
		synctest.Wait()
		n, armed := watched(w)
		assert.Equal(t, 4, n)
		assert.True(t, armed)

		start := time.Now()
		err := <-pairs[2].gwDone
		assert.ErrorIs(t, err, ErrPeerSilent)
		assert.Equal(t, 3*iv, time.Since(start), "declared dead after three intervals, on the sweep that reaches them")
		_ = pairs[2].conn.conn.CloseNow()

		time.Sleep(time.Hour) // an hour of pings on the others
		synctest.Wait()
		n, armed = watched(w)
		assert.Equal(t, 3, n)
		assert.True(t, armed)
		for i, p := range pairs {
			if i != 2 {
				assert.NoError(t, p.gw.Err(), "live session %d closed", i)
			}
		}

		for i, p := range pairs {
			if i == 2 {
				continue
			}
			require.NoError(t, p.conn.Close())
			<-p.cnDone
			<-p.gwDone
		}
		n, armed = watched(w)
		assert.Zero(t, n)
		assert.False(t, armed, "a watch with no session keeps no timer")
	})
}

// A session that closes before its run starts is never watched, and
// removing a session twice, or one never added, leaves the others watched.
func TestSilenceWatchAddAfterClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 5 * time.Second
		w := newSilenceWatch(iv)
		gw1, conn1, _ := pipePairWatched(t, iv, http.NotFoundHandler(), ourFeatures, 0, w)
		gw2, conn2, _ := pipePairWatched(t, iv, http.NotFoundHandler(), ourFeatures, 0, w)
		gw1.closeWith(ErrClosed) // (Close would wait for run)
		assert.Error(t, gw1.run(context.Background()))
		n, armed := watched(w)
		assert.Zero(t, n, "a closed session was added")
		assert.False(t, armed)

		done := make(chan error, 1)
		go func() { done <- gw2.run(context.Background()) }()
		go func() { _ = conn2.run(context.Background()) }()
		synctest.Wait()
		w.remove(gw1)
		w.remove(gw1)
		n, _ = watched(w)
		assert.Equal(t, 1, n)

		time.Sleep(4 * iv)
		assert.NoError(t, gw2.Err(), "the live session was lost from the watch")
		require.NoError(t, conn2.Close())
		<-done
		_ = conn1.conn.CloseNow()
		n, armed = watched(w)
		assert.Zero(t, n)
		assert.False(t, armed)
	})
}

// add and remove keep every watched session's index right whatever the
// order of removal (remove moves the last session into the gap).
func TestSilenceWatchIndex(t *testing.T) {
	w := newSilenceWatch(time.Hour * watchSteps) // never sweeps during the test
	ss := make([]*Session, 100)
	for i := range ss {
		ss[i] = &Session{}
		w.add(ss[i])
	}
	order := []int{0, 99, 50, 1, 98, 2, 97, 49, 51}
	for i := 3; i < 97; i++ {
		if i != 49 && i != 50 && i != 51 {
			order = append(order, i)
		}
	}
	gone := map[*Session]bool{}
	for k, i := range order {
		w.remove(ss[i])
		gone[ss[i]] = true
		w.mu.Lock()
		require.Len(t, w.sessions, len(ss)-k-1)
		for _, s := range ss {
			if gone[s] {
				require.Zero(t, s.watchIdx)
			} else {
				require.Same(t, s, w.sessions[s.watchIdx-1])
			}
		}
		armed := w.t != nil
		w.mu.Unlock()
		assert.Equal(t, k < len(order)-1, armed, "after %d removals", k+1)
	}
	assert.Len(t, order, len(ss))
}
