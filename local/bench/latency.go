package bench

import (
	"context"
	"math/rand/v2"
	"time"
)

// Pcts summarises a sample in milliseconds.
type Pcts struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
	Max  float64 `json:"max"`
}

func summarize(xs []float64) Pcts {
	if len(xs) == 0 {
		return Pcts{}
	}
	return Pcts{N: len(xs), P50: round(Percentile(xs, 50), 2), P99: round(Percentile(xs, 99), 2),
		Mean: round(Mean(xs), 2), Max: round(Percentile(xs, 100), 2)}
}

// LatencyRun is one series of messages sent one at a time.
type LatencyRun struct {
	// E2E is HTTP 201 received → the last recipient's WebSocket frame
	// received, per message.
	E2E Pcts `json:"e2e_all_recipients_ms"`
	// PerRecipient is 201 → each recipient's frame.
	PerRecipient Pcts `json:"e2e_per_recipient_ms"`
	// StreamWait is 201 → the dispatcher invoked with the message's stream
	// record: the poll wait plus GetRecords (Lambda's event source mapping
	// on AWS).
	StreamWait Pcts `json:"stream_wait_ms"`
	// BeyondPoll is E2E minus that message's StreamWait: the dispatcher's
	// work (roster, feed, connection lookup, pushes) and the WebSocket hop.
	BeyondPoll Pcts `json:"beyond_stream_wait_ms"`
	// MinusHalfInterval is E2E minus half the poll interval (the mean poll
	// wait), for comparison when the dispatch time cannot be observed.
	MinusHalfInterval Pcts `json:"e2e_minus_half_poll_interval_ms"`
	// Send is the HTTP send's own latency (request → 201).
	Send     Pcts `json:"send_http_ms"`
	Timeouts int  `json:"timeouts"`
	// Early counts frames that arrived before the sender had read its 201
	// (their latency counts as 0).
	Early int `json:"frames_before_201"`
}

// latencySeries sends count messages one at a time from the group's
// members in turn, each after the previous reached every recipient, with a
// random gap so sends do not fall into step with the stream poller.
func (e *env) latencySeries(ctx context.Context, g *group, count int, responses *[]int) (LatencyRun, error) {
	var e2e, per, wait, beyond, half, send []float64
	var run LatencyRun
	interval := e.o.PollInterval
	e.inv.trackDispatch.Store(true)
	defer e.inv.trackDispatch.Store(false)
	for i := 0; i < count; i++ {
		if err := ctx.Err(); err != nil {
			return run, err
		}
		u := g.users[i%len(g.users)]
		t0 := time.Now()
		id, resp, err := e.send(ctx, u.Token, g.thread, messageBody(e.o.MessageBytes, i))
		t1 := time.Now()
		if err != nil {
			return run, err
		}
		if responses != nil {
			*responses = append(*responses, len(resp.Body))
		}
		send = append(send, ms(t1.Sub(t0)))
		st := e.track.sent(g.thread, id, t1)
		select {
		case <-st.done:
		case <-time.After(10 * time.Second):
			run.Timeouts++
			continue
		case <-ctx.Done():
			return run, ctx.Err()
		}
		var last time.Time
		for _, a := range st.arrivals {
			d := a.Sub(t1)
			if d < 0 {
				run.Early++
				d = 0
			}
			per = append(per, ms(d))
			if a.After(last) {
				last = a
			}
		}
		total := max(0, ms(last.Sub(t1)))
		e2e = append(e2e, total)
		half = append(half, total-ms(interval)/2)
		if at, ok := e.inv.dispatchedAt(g.thread, id); ok {
			w := max(0, ms(at.Sub(t1)))
			wait = append(wait, w)
			beyond = append(beyond, max(0, total-w))
		}
		gap := e.o.Spacing
		if interval > 0 {
			gap += time.Duration(rand.Int64N(int64(interval)))
		}
		select {
		case <-time.After(gap):
		case <-ctx.Done():
			return run, ctx.Err()
		}
	}
	run.E2E, run.PerRecipient, run.StreamWait = summarize(e2e), summarize(per), summarize(wait)
	run.BeyondPoll, run.MinusHalfInterval, run.Send = summarize(beyond), summarize(half), summarize(send)
	return run, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// LatencyResult is the repeated series at one thread size.
type LatencyResult struct {
	Participants   int          `json:"participants"`
	SamplesPerRun  int          `json:"samples_per_run"`
	PollIntervalMs float64      `json:"poll_interval_ms"`
	Runs           []LatencyRun `json:"runs"`
	// Medians over the runs of each run's p50 and p99.
	P50           float64 `json:"p50_ms"`
	P99           float64 `json:"p99_ms"`
	BeyondPollP50 float64 `json:"beyond_stream_wait_p50_ms"`
	BeyondPollP99 float64 `json:"beyond_stream_wait_p99_ms"`
	StreamWaitP50 float64 `json:"stream_wait_p50_ms"`
	StreamWaitP99 float64 `json:"stream_wait_p99_ms"`
	SendP50       float64 `json:"send_http_p50_ms"`
	SendP99       float64 `json:"send_http_p99_ms"`
	// Where the dispatcher's time goes, over all runs: its handler time
	// per invocation and the DynamoDB calls in it (summed over calls).
	DispatchMs       float64            `json:"dispatch_handler_mean_ms"`
	DispatchDDBMs    float64            `json:"dispatch_dynamodb_ms"`
	DispatchDDBByAPI map[string]float64 `json:"dispatch_dynamodb_ms_by_api,omitempty"`
	DispatchPerMsg   float64            `json:"dispatch_invocations_per_message"`
}

func (r *LatencyResult) finish() {
	pick := func(f func(LatencyRun) float64) float64 {
		var xs []float64
		for _, run := range r.Runs {
			xs = append(xs, f(run))
		}
		return round(Median(xs), 2)
	}
	r.P50 = pick(func(x LatencyRun) float64 { return x.E2E.P50 })
	r.P99 = pick(func(x LatencyRun) float64 { return x.E2E.P99 })
	r.BeyondPollP50 = pick(func(x LatencyRun) float64 { return x.BeyondPoll.P50 })
	r.BeyondPollP99 = pick(func(x LatencyRun) float64 { return x.BeyondPoll.P99 })
	r.StreamWaitP50 = pick(func(x LatencyRun) float64 { return x.StreamWait.P50 })
	r.StreamWaitP99 = pick(func(x LatencyRun) float64 { return x.StreamWait.P99 })
	r.SendP50 = pick(func(x LatencyRun) float64 { return x.Send.P50 })
	r.SendP99 = pick(func(x LatencyRun) float64 { return x.Send.P99 })
}
