package tunnel

import (
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// SPEC.md "Liveness and draining": on an idle session the gateway answers
// every other PING of a connector that announced sparse pings, and every
// PING of a 2.0 connector. Counted in messages the gateway wrote, over 100
// PINGs of the connector (one per interval).
func TestGatewayAnswersIdlePingsSparsely(t *testing.T) {
	tests := []struct {
		name     string
		features uint64
		want     uint32 // gateway messages per 100 connector PINGs
	}{
		{"both announce sparse pings", ourFeatures, 50},
		{"2.0 connector", 0, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const iv = 5 * time.Second
				gw, conn, _ := pipePairWith(t, iv, http.NotFoundHandler(), tt.features)
				gwDone := make(chan error, 1)
				go func() { gwDone <- gw.run(context.Background()) }()
				connDone := make(chan error, 1)
				go func() { connDone <- conn.run(context.Background()) }()

				time.Sleep(100*iv + iv/2) // the connector's 100th PING went out at 100 iv
				synctest.Wait()
				require.NoError(t, gw.Err())
				require.NoError(t, conn.Err())
				assert.Equal(t, tt.want, gw.sent.Load(), "messages the gateway wrote")

				require.NoError(t, conn.Close())
				<-connDone
				<-gwDone
			})
		})
	}
}

// A live gateway is never declared dead by its connector, idle or with
// occasional traffic: the longest the connector hears nothing is two ping
// intervals with sparse pings (it waits four), one with a 2.0 peer (it
// waits three).
func TestConnectorNeverDropsLiveGateway(t *testing.T) {
	tests := []struct {
		name      string
		features  uint64
		traffic   bool
		maxSilent int // intervals
	}{
		{"sparse, idle", ourFeatures, false, 2},
		{"sparse, a request now and then", ourFeatures, true, 2},
		{"2.0 peer, idle", 0, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const iv = 5 * time.Second
				const intervals = 500
				gw, conn, _ := pipePairWith(t, iv, http.NotFoundHandler(), tt.features)
				gwDone := make(chan error, 1)
				go func() { gwDone <- gw.run(context.Background()) }()
				connDone := make(chan error, 1)
				go func() { connDone <- conn.run(context.Background()) }()
				stop := make(chan struct{})
				trafficDone := make(chan struct{})
				go func() {
					defer close(trafficDone)
					if !tt.traffic {
						return
					}
					for {
						select {
						case <-stop:
							return
						case <-time.After(37 * iv / 10): // out of phase with the PINGs
						}
						assert.NoError(t, post(context.Background(), gw, nil))
					}
				}()

				// Sample what the connector last heard ten times an interval,
				// between PINGs (they go out at whole intervals).
				var maxSilent time.Duration
				time.Sleep(iv / 20)
				for range intervals * 10 {
					time.Sleep(iv / 10)
					maxSilent = max(maxSilent, time.Duration(monoNow()-conn.lastRecv.Load()))
				}
				close(stop)
				<-trafficDone
				assert.NoError(t, conn.Err(), "the connector dropped a live gateway")
				assert.NoError(t, gw.Err())
				assert.LessOrEqual(t, maxSilent, time.Duration(tt.maxSilent)*iv)
				assert.Greater(t, maxSilent, time.Duration(tt.maxSilent-1)*iv)

				require.NoError(t, conn.Close())
				<-connDone
				<-gwDone
			})
		})
	}
}

// A gateway that stops sending (its connection still open and reading) is
// declared dead by the connector four ping intervals after the last frame
// with sparse pings, three with a 2.0 peer.
func TestConnectorDetectsSilentGateway(t *testing.T) {
	tests := []struct {
		name      string
		features  uint64
		intervals time.Duration
	}{
		{"sparse pings", ourFeatures, 4},
		{"2.0 peer", 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const iv = 5 * time.Second
				gw, conn, gwEnd := pipePairWith(t, iv, http.NotFoundHandler(), tt.features)
				// The gateway's session does not run; its end of the pipe
				// swallows the connector's PINGs, so no write blocks.
				go func() {
					buf := make([]byte, 1024)
					for {
						if _, err := gwEnd.Read(buf); err != nil {
							return
						}
					}
				}()
				start := time.Now()
				err := conn.run(context.Background())
				assert.ErrorIs(t, err, ErrPeerSilent)
				assert.Equal(t, tt.intervals*iv, time.Since(start))
				_ = gw.conn.CloseNow()
			})
		})
	}
}

// The features both HELLOs carry decide: a connector of this version and
// the gateway agree on sparse pings, a 2.0 connector (no feature bits) gets
// an answer to every PING. Four PINGs in a row over the real handshake;
// answers come back in order, so their payloads show which were answered.
//
// With sparse pings the key confirmation was the gateway's last message
// before PING 1, so PING 1 goes unanswered and PING 2 is answered; PING 3
// is not (PING 2 was); PING 4 is answered only if the answer to PING 2 was
// still queued when PING 4 arrived, which is the scheduler's choice (the
// answer counts as something the gateway sent once it is written), so the
// test allows both.
func TestSparsePingsNegotiated(t *testing.T) {
	tests := []struct {
		name     string
		features uint64
		answered []uint64 // answered for certain, in order
		optional []uint64 // may follow
	}{
		{"connector announces sparse pings", ourFeatures, []uint64{2}, []uint64{4}},
		{"2.0 connector", 0, []uint64{1, 2, 3, 4}, nil},
	}
	e := newEnv(t, noPings)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.enroll("t")
			conn, tx, rx := e.rawConnectorWith(cfg, tt.features)
			defer conn.CloseNow()
			e.waitEvent(Connected, cfg.ConnectorID)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for i := range uint64(4) {
				b := make([]byte, frameHeaderLen+8)
				putHeader(b, framePing, 0, 0)
				binary.BigEndian.PutUint64(b[frameHeaderLen:], i+1)
				sealed, err := tx.seal(nil, setLen(b))
				require.NoError(t, err)
				require.NoError(t, conn.Write(ctx, websocket.MessageBinary, sealed))
			}
			var got []uint64
			read := func(ctx context.Context) error {
				_, msg, err := conn.Read(ctx)
				if err != nil {
					return err
				}
				plain, err := rx.open(msg)
				require.NoError(t, err)
				for off := 0; off < len(plain); {
					f, size, err := parseFrame(plain[off:], 64<<10)
					require.NoError(t, err)
					require.Equal(t, framePing, f.typ)
					got = append(got, binary.BigEndian.Uint64(f.payload))
					off += size
				}
				return nil
			}
			for len(got) < len(tt.answered) {
				require.NoError(t, read(ctx))
			}
			if len(tt.optional) > 0 {
				// Whatever else comes within a while (the read's deadline
				// ends the connection, which the test closes anyway).
				wctx, wcancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				for len(got) < len(tt.answered)+len(tt.optional) && read(wctx) == nil {
				}
				wcancel()
			}
			require.GreaterOrEqual(t, len(got), len(tt.answered))
			assert.Equal(t, tt.answered, got[:len(tt.answered)])
			assert.Subset(t, tt.optional, got[len(tt.answered):], "unexpected answers %v", got)
		})
	}
}

// The gateway's read loop never writes: its PING answer is written by a
// goroutine of its own, so a connector that pings but reads nothing does
// not stop the gateway from reading (and an idle session's reader keeps a
// small stack, BENCHMARKS.md). Before, the read loop wrote the answer
// itself and stopped reading while the answer was stuck.
func TestGatewayReadLoopDoesNotWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 5 * time.Second
		gw, conn, _ := pipePair(t, iv, http.NotFoundHandler())
		start := monoNow()
		gwDone := make(chan error, 1)
		go func() { gwDone <- gw.run(context.Background()) }()
		conn.startKeepalive() // the connector pings and never reads

		time.Sleep(2*iv + iv/2)
		synctest.Wait()
		// The first PING is answered, and that answer cannot be delivered.
		assert.Equal(t, start+int64(2*iv), gw.lastRecv.Load(), "the gateway read the second PING")

		require.NoError(t, gw.Close())
		assert.ErrorIs(t, <-gwDone, ErrClosed)
		conn.closeWith(ErrClosed)
		_ = conn.conn.CloseNow()
		conn.wg.Wait()
	})
}
