//go:build unix

package tunnel

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The idle-session benchmarks need thousands of sessions; the connectors run
// in a child process (this test binary, TestHelperIdleConnectors) so that
// only the gateway's memory and CPU are measured. They run only when
// LIAISON_BENCH_IDLE=1, e.g.:
//
//	LIAISON_BENCH_IDLE=1 go test -run '^$' -bench 'Idle' -benchtime 1x ./tunnel

func TestHelperIdleConnectors(t *testing.T) {
	url := os.Getenv("LIAISON_HELPER_URL")
	if url == "" {
		t.Skip("helper process for the idle benchmarks")
	}
	n, _ := strconv.Atoi(os.Getenv("LIAISON_HELPER_N"))
	// Exit with the parent: it holds our stdin open.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	if addr, ok := strings.CutPrefix(url, "tls://"); ok {
		// baseline: plain TLS connections that stay idle
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(os.Getenv("LIAISON_HELPER_CA")))
		ping, _ := time.ParseDuration(os.Getenv("LIAISON_HELPER_PING"))
		var conns []*tls.Conn
		for i := range n {
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if ping > 0 {
				// a 16-byte ping every interval, phases spread like
				// connectors' that started at different times
				go func() {
					time.Sleep(ping * time.Duration(i) / time.Duration(n))
					msg := make([]byte, 16)
					for {
						if _, err := c.Write(msg); err != nil {
							return
						}
						if _, err := io.ReadFull(c, msg); err != nil {
							return
						}
						time.Sleep(ping)
					}
				}()
			}
		}
		select {}
	}
	keyb, _ := base64.StdEncoding.DecodeString(os.Getenv("LIAISON_HELPER_KEY"))
	cloudKey, _ := base64.StdEncoding.DecodeString(os.Getenv("LIAISON_HELPER_CLOUD_KEY"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(os.Getenv("LIAISON_HELPER_CA")))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errCount atomic.Int64
	sem := make(chan struct{}, 50) // gentle connect ramp: 50 handshakes at a time
	for range n {
		sem <- struct{}{}
		var once sync.Once
		c, err := NewConnector(ConnectorConfig{
			URL:         url,
			ConnectorID: os.Getenv("LIAISON_HELPER_ID"),
			CloudKey:    cloudKey,
			Key:         ed25519.PrivateKey(keyb),
			Handler:     http.NotFoundHandler(),
			TLSConfig:   &tls.Config{RootCAs: pool},
			OnStatus: func(s Status) {
				once.Do(func() { <-sem })
				if s.Err != nil && errCount.Add(1) <= 5 {
					fmt.Fprintln(os.Stderr, "helper:", s.Err)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.Run(ctx) }()
	}
	// run until the parent kills us
	select {}
}

func idleSessions(b *testing.B, n int, ping time.Duration) (*env, func()) {
	e, stop, _ := idleSessionsCounted(b, n, ping)
	return e, stop
}

// idleSessionsCounted also returns a counter of presence events, to check
// that no session churned during a measurement.
func idleSessionsCounted(b *testing.B, n int, ping time.Duration) (*env, func(), *atomic.Int64) {
	var events atomic.Int64
	if os.Getenv("LIAISON_BENCH_IDLE") != "1" {
		b.Skip("set LIAISON_BENCH_IDLE=1 to run the idle-session benchmarks")
	}
	var connected atomic.Int64
	e := newEnv(b, func(c *GatewayConfig) {
		c.PingInterval = ping
		c.HelloTimeout = time.Minute
		c.OnPresence = func(ev PresenceEvent) {
			events.Add(1)
			if ev.Kind == Connected {
				connected.Add(1)
			} else {
				connected.Add(-1)
			}
		}
	})
	cfg := e.enroll("t")
	runtime.GC()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleConnectors$", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		"LIAISON_HELPER_URL="+e.url,
		"LIAISON_HELPER_N="+strconv.Itoa(n),
		"LIAISON_HELPER_ID="+cfg.ConnectorID,
		"LIAISON_HELPER_KEY="+base64.StdEncoding.EncodeToString(cfg.Key.(ed25519.PrivateKey)),
		"LIAISON_HELPER_CA="+string(e.pki.caPEM),
		"LIAISON_HELPER_CLOUD_KEY="+base64.StdEncoding.EncodeToString(cfg.CloudKey),
	)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closed when this process exits
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close() })
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	deadline := time.Now().Add(5 * time.Minute)
	for connected.Load() < int64(n) {
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("only %d of %d sessions connected", connected.Load(), n)
		}
		time.Sleep(100 * time.Millisecond) // waiting for a child process
	}
	return e, stop, &events
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

// rawIdleServer is the baseline: a TLS server holding idle connections,
// one goroutine blocked in Read on each (what any server of long-lived TLS
// connections pays).
func rawIdleServer(b *testing.B, n int, ping time.Duration) func() {
	if os.Getenv("LIAISON_BENCH_IDLE") != "1" {
		b.Skip("set LIAISON_BENCH_IDLE=1 to run the idle-session benchmarks")
	}
	pki := newTestPKI(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS13})
	if err != nil {
		b.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				accepted.Add(1)
				var msg [16]byte
				for { // echo pings
					if _, err := io.ReadFull(c, msg[:]); err != nil {
						return
					}
					if _, err := c.Write(msg[:]); err != nil {
						return
					}
				}
			}()
		}
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleConnectors$", "-test.timeout=0")
	cmd.Env = append(os.Environ(),
		"LIAISON_HELPER_URL=tls://"+ln.Addr().String(),
		"LIAISON_HELPER_PING="+ping.String(),
		"LIAISON_HELPER_N="+strconv.Itoa(n),
		"LIAISON_HELPER_CA="+string(pki.caPEM),
	)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closed when this process exits
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close() })
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for accepted.Load() < int64(n) {
		time.Sleep(100 * time.Millisecond) // waiting for a child process
	}
	return func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); ln.Close() }
}

// BenchmarkIdleSessionMemory reports gateway memory per idle TLS session
// over 5000 sessions (heap and stacks, after GC), beside plain idle TLS
// connections.
func BenchmarkIdleSessionMemory(b *testing.B) {
	const n = 5000
	b.Run("baseline=tls-conn", func(b *testing.B) {
		for range b.N {
			before := memInUse()
			stop := rawIdleServer(b, n, 0)
			time.Sleep(2 * time.Second) // settle
			after := memInUse()
			stop()
			b.ReportMetric(float64(after-before)/n, "B/session")
		}
	})
	b.Run("liaison=gateway-session", benchIdleSessionMemory)
}

func benchIdleSessionMemory(b *testing.B) {
	const n = 5000
	for range b.N {
		before := memInUse()
		_, stop := idleSessions(b, n, 5*time.Second)
		// Settle over two ping intervals: handshakes done, buffers
		// released, and every session has answered a PING, so its
		// reader's stack is as deep as it gets when idle.
		time.Sleep(12 * time.Second)
		// Stacks as they are, before memInUse's collections could shrink
		// them (a running gateway collects rarely when idle; this figure
		// also holds the stacks of exited goroutines not yet freed).
		var pre runtime.MemStats
		runtime.ReadMemStats(&pre)
		after := memInUse()
		if path := os.Getenv("LIAISON_BENCH_HEAPPROFILE"); path != "" {
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				_ = f.Close()
			}
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.StackInuse)/n, "stackB/session")
		b.ReportMetric(float64(pre.StackInuse)/n, "stackB-before-gc/session")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/session")
		stop()
		b.ReportMetric(float64(after-before)/n, "B/session")
	}
}

// BenchmarkHeartbeatCPU reports the gateway CPU spent on heartbeats of
// 10 000 idle sessions at the default 5 s interval, as a percentage of one
// core, measured over three intervals once every session is up.
func BenchmarkHeartbeatCPU(b *testing.B) {
	const window = 15 * time.Second
	b.Run("baseline=tls-pingpong", func(b *testing.B) {
		// 10 000 plain TLS connections, each echoing a 16-byte ping every
		// 5 s: the least any heartbeat over TLS can cost
		for range b.N {
			stop := rawIdleServer(b, 10000, 5*time.Second)
			time.Sleep(10 * time.Second) // every connection has started pinging
			u := measureWindow(window, ".baseline")
			stop()
			u.report(b, window, 10000)
		}
	})
	b.Run("baseline=no-sessions", func(b *testing.B) {
		if os.Getenv("LIAISON_BENCH_IDLE") != "1" {
			b.Skip("set LIAISON_BENCH_IDLE=1 to run the idle-session benchmarks")
		}
		for range b.N {
			u := measureWindow(window, ".no-sessions")
			b.ReportMetric(u.cpu.Seconds()/window.Seconds()*100, "%core")
		}
	})
	b.Run("liaison=10000-sessions", benchHeartbeatCPU)
}

func benchHeartbeatCPU(b *testing.B) {
	const n = 10000
	const window = 15 * time.Second
	for range b.N {
		_, stop, events := idleSessionsCounted(b, n, 5*time.Second)
		time.Sleep(5 * time.Second) // let the connect ramp's garbage collection finish
		ev0 := events.Load()
		u := measureWindow(window, "")
		churn := events.Load() - ev0
		stop()
		u.report(b, window, n)
		b.ReportMetric(float64(churn), "presence-events-in-window")
		fmt.Fprintf(os.Stderr, "heartbeat cpu: %v over %v for %d sessions at 5s pings\n", u.cpu, window, n)
	}
}

// windowUse is what this process used over a measured window.
type windowUse struct {
	cpu, kernel time.Duration // kernel: system calls and the loopback's packet processing they do
	sc          syscalls
}

// measureWindow measures this process's CPU and system calls over a
// wall-clock window. It prints "heartbeat window starts (pid N)" first, so
// perf can attach to the window (BENCHMARKS.md), and profiles the window
// when LIAISON_BENCH_CPUPROFILE names a file (suffix added to its name, so
// a baseline's profile sits beside the tunnel's).
func measureWindow(window time.Duration, suffix string) windowUse {
	fmt.Fprintf(os.Stderr, "heartbeat window starts (pid %d)\n", os.Getpid())
	if path := os.Getenv("LIAISON_BENCH_CPUPROFILE"); path != "" {
		if f, err := os.Create(path + suffix); err == nil {
			defer f.Close() // deferred first: runs after the profile is written
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	cpu0, k0 := rusageTimes()
	sc0 := syscallCounts()
	time.Sleep(window) // measuring CPU over a wall-clock window
	cpu, k := rusageTimes()
	return windowUse{cpu: cpu - cpu0, kernel: k - k0, sc: syscallCounts().sub(sc0)}
}

// report adds the CPU as a percentage of one core, its kernel part, and
// the system calls per session and 5 s ping interval.
func (u windowUse) report(b *testing.B, window time.Duration, sessions int) {
	b.ReportMetric(u.cpu.Seconds()/window.Seconds()*100, "%core")
	b.ReportMetric(u.kernel.Seconds()/window.Seconds()*100, "%core-kernel")
	u.sc.report(b, sessions, int(window/(5*time.Second)))
}

// rusageTimes returns this process's CPU time so far, and the part of it
// spent in the kernel.
func rusageTimes() (total, kernel time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

// syscalls counts this process's read and write system calls (Linux
// /proc/self/io: syscr, syscw; zero elsewhere). Unlike CPU time, the count
// per session and interval does not move with the machine's load.
type syscalls struct{ reads, writes int64 }

func syscallCounts() syscalls {
	var sc syscalls
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return sc
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			sc.reads = n
		case "syscw":
			sc.writes = n
		}
	}
	return sc
}

func (a syscalls) sub(b syscalls) syscalls { return syscalls{a.reads - b.reads, a.writes - b.writes} }

// report adds the system calls per session and ping interval, when known.
func (a syscalls) report(b *testing.B, sessions, intervals int) {
	if a.reads == 0 && a.writes == 0 {
		return
	}
	per := float64(sessions * intervals)
	b.ReportMetric(float64(a.reads)/per, "reads/session/interval")
	b.ReportMetric(float64(a.writes)/per, "writes/session/interval")
}
