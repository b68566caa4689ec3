package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ThroughputRun is one sustained run.
type ThroughputRun struct {
	DurationS float64 `json:"duration_s"`
	Sent      int     `json:"sent"` // 201s
	// SendErrors are sends that did not get a 201 (by status; 0 = transport).
	SendErrors map[string]int `json:"send_errors,omitempty"`
	Delivered  int            `json:"delivered"` // reached every recipient connection
	Lost       int            `json:"lost"`      // a 201 but some recipient never got it
	Missing    int            `json:"missing_deliveries"`
	Duplicates int64          `json:"duplicate_frames"`
	// Sustained is Delivered over first send → last delivery: a backlog the
	// dispatcher works off after the senders stop lowers it.
	Sustained float64 `json:"sustained_messages_per_second"`
	SendRate  float64 `json:"send_rate_per_second"`
	DrainS    float64 `json:"drain_after_senders_s"`
	E2E       Pcts    `json:"e2e_all_recipients_ms"`
	Send      Pcts    `json:"send_http_ms"`
	// DispatchPerMessage is dispatcher invocations per message sent: the
	// stream batching under load.
	DispatchPerMessage float64 `json:"dispatch_invocations_per_message"`
	// What the dispatcher reported, and the first lost messages.
	PushesDelivered float64  `json:"pushes_delivered"`
	PushesFailed    float64  `json:"pushes_failed"`
	PushesGone      float64  `json:"pushes_gone"`
	DispatchErrors  float64  `json:"dispatch_server_errors"`
	LostExamples    []string `json:"lost_examples,omitempty"`
	Problems        []string `json:"function_warnings,omitempty"`
}

// ThroughputResult is the repeated run.
type ThroughputResult struct {
	Threads      int             `json:"threads"`
	Participants int             `json:"participants"`
	Senders      int             `json:"senders"`
	RateLimit    float64         `json:"rate_limit_per_second"` // 0 = as fast as the senders go
	RateLimits   string          `json:"acs_rate_limits"`
	Runs         []ThroughputRun `json:"runs"`
	Sustained    float64         `json:"sustained_messages_per_second"` // median over runs
	Lost         int             `json:"lost_messages"`                 // over all runs
}

// throughput creates its groups and runs the sustained load o.Runs times.
func (e *env) throughput(ctx context.Context) (*ThroughputResult, error) {
	o := e.o
	res := &ThroughputResult{Threads: o.TPThreads, Participants: o.TPParticipants, Senders: o.TPSenders, RateLimit: o.TPRate, RateLimits: e.rateLimit}
	groups := make([]*group, o.TPThreads)
	err := parallel(ctx, o.TPThreads, 4, func(i int) error {
		g, err := e.newGroup(ctx, o.TPParticipants)
		groups[i] = g
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := e.ready(ctx, groups...); err != nil {
		return nil, err
	}
	// Warm up: one message per thread, delivered.
	if err := parallel(ctx, len(groups), 16, func(i int) error {
		id, _, err := e.send(ctx, groups[i].users[0].Token, groups[i].thread, messageBody(o.MessageBytes, 0))
		if err == nil {
			e.track.sent(groups[i].thread, id, time.Now())
		}
		return err
	}); err != nil {
		return nil, err
	}
	e.track.waitAll(ctx, 30*time.Second)
	progress(o.Log, "throughput: %d threads × %d participants (one WebSocket each), %d senders, rate limits %s",
		o.TPThreads, o.TPParticipants, o.TPSenders, e.rateLimit)
	var rates []float64
	for r := 0; r < o.Runs; r++ {
		run, err := e.throughputRun(ctx, groups)
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, run)
		res.Lost += run.Lost
		rates = append(rates, run.Sustained)
		progress(o.Log, "throughput run %d/%d: %.0f msg/s sustained (sent %d in %.0fs, %.0f/s; delivered %d; lost %d; drain %.1fs; e2e p50 %.0f ms p99 %.0f ms; %.2f dispatches/msg)",
			r+1, o.Runs, run.Sustained, run.Sent, run.DurationS, run.SendRate, run.Delivered, run.Lost, run.DrainS, run.E2E.P50, run.E2E.P99, run.DispatchPerMessage)
	}
	res.Sustained = round(Median(rates), 1)
	return res, nil
}

func (e *env) throughputRun(ctx context.Context, groups []*group) (ThroughputRun, error) {
	o := e.o
	e.track.reset()
	_ = e.settle(ctx)
	e.col.Take()
	e.inv.take()
	var run ThroughputRun
	var mu sync.Mutex
	var sendLat []float64
	errs := map[string]int{}
	var seq atomic.Int64
	var tokens <-chan time.Time
	if o.TPRate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.TPRate))
		defer t.Stop()
		tokens = t.C
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	var wg sync.WaitGroup
	for s := 0; s < o.TPSenders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			var mine []*group
			for i := s; i < len(groups); i += o.TPSenders {
				mine = append(mine, groups[i])
			}
			if len(mine) == 0 {
				return
			}
			for k := 0; time.Now().Before(deadline) && ctx.Err() == nil; k++ {
				if tokens != nil {
					select {
					case <-tokens:
					case <-ctx.Done():
						return
					}
				}
				g := mine[k%len(mine)]
				u := g.users[(k/len(mine))%len(g.users)]
				n := int(seq.Add(1))
				t0 := time.Now()
				id, resp, err := e.send(ctx, u.Token, g.thread, messageBody(o.MessageBytes, n))
				t1 := time.Now()
				if err != nil {
					mu.Lock()
					errs[fmt.Sprint(resp.Status)]++
					mu.Unlock()
					continue
				}
				e.track.sent(g.thread, id, t1)
				mu.Lock()
				sendLat = append(sendLat, ms(t1.Sub(t0)))
				mu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	sendEnd := time.Now()
	e.track.waitAll(ctx, 60*time.Second)
	_ = e.settle(ctx)
	snap := e.col.Take()
	e.inv.take()
	states := e.track.snapshot()
	_, _, dups := e.track.reset()
	var e2e []float64
	var last time.Time
	for _, s := range states {
		if s.sentAt.IsZero() {
			continue
		}
		run.Sent++
		if s.got < len(s.arrivals) {
			run.Lost++
			run.Missing += len(s.arrivals) - s.got
			if len(run.LostExamples) < 5 {
				var missing []int
				for i, a := range s.arrivals {
					if a.IsZero() {
						missing = append(missing, i)
					}
				}
				run.LostExamples = append(run.LostExamples, fmt.Sprintf("%s message %s: recipients %v of %d missing", s.thread, s.id, missing, len(s.arrivals)))
			}
			continue
		}
		run.Delivered++
		var l time.Time
		for _, a := range s.arrivals {
			if a.After(l) {
				l = a
			}
		}
		e2e = append(e2e, max(0, ms(l.Sub(s.sentAt))))
		if l.After(last) {
			last = l
		}
	}
	run.Duplicates = dups
	run.DurationS = round(sendEnd.Sub(start).Seconds(), 2)
	if run.DurationS > 0 {
		run.SendRate = round(float64(run.Sent)/run.DurationS, 1)
	}
	if !last.IsZero() {
		run.Sustained = round(float64(run.Delivered)/last.Sub(start).Seconds(), 1)
		run.DrainS = round(max(0, last.Sub(sendEnd).Seconds()), 2)
	}
	run.E2E, run.Send = summarize(e2e), summarize(sendLat)
	if len(errs) > 0 {
		run.SendErrors = errs
	}
	d := snap.Op("Dispatch")
	run.PushesDelivered, run.PushesFailed, run.PushesGone, run.DispatchErrors = d.Sums["PushesDelivered"], d.Sums["PushesFailed"], d.Sums["PushesGone"], d.Sums["ServerErrors"]
	run.Problems = snap.Problems
	if run.Sent > 0 {
		run.DispatchPerMessage = round(float64(snap.Op("Dispatch").Invocations)/float64(run.Sent), 3)
	}
	return run, nil
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
