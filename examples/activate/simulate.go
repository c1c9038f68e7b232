package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/liaisonhq/liaison/activation"
)

// report is the load generator's result.
type report struct {
	Devices        int             `json:"devices"`
	Workers        int             `json:"workers"`
	Elapsed        time.Duration   `json:"elapsed_ns"`
	Activated      int             `json:"activated"`
	PerSecond      float64         `json:"activations_per_second"`
	Requests       int             `json:"requests"`
	P50            time.Duration   `json:"p50_ns"`
	P99            time.Duration   `json:"p99_ns"`
	Max            time.Duration   `json:"max_ns"`
	Outcomes       map[outcome]int `json:"outcomes"`         // final outcome per device
	AttemptsByKind map[outcome]int `json:"attempts_by_kind"` // every request, retries included
	FirstError     string          `json:"first_error,omitempty"`
}

// simulate activates o.simulate devices from o.workers goroutines.
func simulate(ctx context.Context, c *client, o options, stdout, stderr io.Writer) int {
	var runID [4]byte
	_, _ = rand.Read(runID[:])
	rid := hex.EncodeToString(runID[:])
	work := make(chan int)
	type workerStats struct {
		latencies []time.Duration
		outcomes  map[outcome]int
		attempts  map[outcome]int
		firstErr  string
	}
	stats := make([]workerStats, o.workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range o.workers {
		st := &stats[w]
		st.outcomes, st.attempts = map[outcome]int{}, map[outcome]int{}
		st.latencies = make([]time.Duration, 0, o.simulate/o.workers+1)
		wg.Go(func() {
			for i := range work {
				_, key, err := ed25519.GenerateKey(rand.Reader)
				if err != nil {
					panic(err) // crypto/rand never fails
				}
				login := o.login
				if strings.Contains(login, "%") {
					login = fmt.Sprintf(login, i%o.loginCount+1)
				}
				req := activation.Request{
					Tenant: o.tenant, Token: o.token, Login: login, Domain: o.domain,
					Hostname: fmt.Sprintf("sim-%s-%06d", rid, i), DeviceID: fmt.Sprintf("sim-%s-%06d", rid, i),
				}
				a, _ := activateWithRetry(ctx, c, req, key, o.maxRetries, func(a attempt, d time.Duration) {
					st.latencies = append(st.latencies, d)
					st.attempts[a.outcome]++
				})
				st.outcomes[a.outcome]++
				if !a.outcome.activated() && st.firstErr == "" {
					st.firstErr = fmt.Sprintf("%s: %s", a.outcome, describe(a))
				}
			}
		})
	}
feed:
	for i := range o.simulate {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	r := report{Devices: o.simulate, Workers: o.workers, Elapsed: time.Since(start),
		Outcomes: map[outcome]int{}, AttemptsByKind: map[outcome]int{}}
	var lat []time.Duration
	for _, st := range stats {
		lat = append(lat, st.latencies...)
		for k, v := range st.outcomes {
			r.Outcomes[k] += v
			if k.activated() {
				r.Activated += v
			}
		}
		for k, v := range st.attempts {
			r.AttemptsByKind[k] += v
		}
		if r.FirstError == "" {
			r.FirstError = st.firstErr
		}
	}
	slices.Sort(lat)
	r.Requests = len(lat)
	if len(lat) > 0 {
		r.P50, r.P99, r.Max = percentile(lat, 50), percentile(lat, 99), lat[len(lat)-1]
	}
	r.PerSecond = float64(r.Activated) / r.Elapsed.Seconds()
	if o.jsonOut {
		_ = json.NewEncoder(stdout).Encode(r)
	} else {
		printReport(stdout, r)
	}
	if r.Activated != r.Devices {
		if r.FirstError != "" {
			fmt.Fprintf(stderr, "activate: %d of %d devices not activated; first: %s\n", r.Devices-r.Activated, r.Devices, r.FirstError)
		}
		return exitRefused
	}
	return exitOK
}

// percentile returns the p-th percentile of sorted (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

func printReport(w io.Writer, r report) {
	fmt.Fprintf(w, "devices         %d (%d workers)\n", r.Devices, r.Workers)
	fmt.Fprintf(w, "elapsed         %s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "activations/s   %.1f\n", r.PerSecond)
	fmt.Fprintf(w, "latency         p50 %s  p99 %s  max %s  (%d requests)\n",
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.Requests)
	fmt.Fprintln(w, "outcomes (final, per device)")
	for _, k := range slices.Sorted(maps.Keys(r.Outcomes)) {
		fmt.Fprintf(w, "  %-24s %d\n", k, r.Outcomes[k])
	}
	if r.Requests > r.Devices {
		fmt.Fprintln(w, "requests by outcome (retries included)")
		for _, k := range slices.Sorted(maps.Keys(r.AttemptsByKind)) {
			fmt.Fprintf(w, "  %-24s %d\n", k, r.AttemptsByKind[k])
		}
	}
}
