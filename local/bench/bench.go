// Package bench measures Threadline against the local stack: the cost of
// every operation (DynamoDB requests and units from the functions' own EMF
// lines, transactions corrected to AWS's figures), the cost per million
// messages priced with reference/aws-limits-and-costs.md, the delivery
// latency from send to every recipient's WebSocket, and the sustained
// throughput with every message checked at every recipient. `make bench`
// runs it (local/cmd/threadline-bench) and writes docs/benchmarks.json and
// docs/benchmarks.md.
package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/threadline/threadline/local/ddblocal"
	"github.com/threadline/threadline/local/samtemplate"
)

// Options configure a run; zero values take the defaults in parentheses.
type Options struct {
	Root           string        // repository root (found from the working directory)
	PollInterval   time.Duration // the stream poll interval (50 ms)
	Runs           int           // repetitions of each latency series and throughput run (3)
	Samples20      int           // latency samples per run at 20 participants (200)
	Samples250     int           // latency samples per run at 250 participants (50)
	Spacing        time.Duration // pause after each latency sample, plus a random part of the poll interval (20 ms)
	Duration       time.Duration // each throughput run (60 s)
	TPThreads      int           // throughput threads (40)
	TPParticipants int           // participants per throughput thread (5)
	TPSenders      int           // concurrent senders (40)
	TPRate         float64       // cap on sends per second, 0 = none
	MessageBytes   int           // message content (1024)
	// ConnMinutesPerMessage is the cost model's WebSocket connection time:
	// minutes each participant's connection is open per message sent into
	// the thread (1: a thread that gets a message a minute while everyone
	// is online).
	ConnMinutesPerMessage float64
	PingEvery             time.Duration // client keep-alive (5 min, local/rtclient's default)
	SkipThroughput        bool
	SkipLatency           bool
	Log                   io.Writer // progress lines
	DDBDir                string    // DynamoDB Local's folder (ddblocal.DefaultDir)
}

func (o *Options) defaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.Runs, 3)
	def(&o.Samples20, 200)
	def(&o.Samples250, 50)
	def(&o.TPThreads, 40)
	def(&o.TPParticipants, 5)
	def(&o.TPSenders, 40)
	def(&o.MessageBytes, 1024)
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.Spacing <= 0 {
		o.Spacing = 20 * time.Millisecond
	}
	if o.Duration <= 0 {
		o.Duration = 60 * time.Second
	}
	if o.ConnMinutesPerMessage <= 0 {
		o.ConnMinutesPerMessage = 1
	}
	if o.PingEvery <= 0 {
		o.PingEvery = 5 * time.Minute
	}
}

// Results is everything a run measured.
type Results struct {
	RateLimits   string
	Operations   []OpRow
	Cost         map[string]Breakdown // by scenario key, e.g. n20_user_level_on
	Latency      map[int]*LatencyResult
	Throughput   *ThroughputResult
	Estimator    EstimatorCheck
	UserLevelDef bool // the template's UserLevelEvents default: stack A runs with it, B with the other
	Options      Options
}

// EstimatorCheck compares the meter's write-unit estimate with DynamoDB
// Local on plain writes, where Local is right.
type EstimatorCheck struct {
	PlainWrites   int     `json:"plain_writes"`
	LocalUnits    float64 `json:"local_units"`
	EstimateUnits float64 `json:"estimate_units"`
}

// Run measures everything.
func Run(ctx context.Context, o Options) (*Results, error) {
	o.defaults()
	if o.DDBDir == "" {
		d, err := ddblocal.DefaultDir()
		if err != nil {
			return nil, err
		}
		o.DDBDir = d
	}
	startDDB := func() (*ddblocal.Server, error) {
		progress(o.Log, "starting DynamoDB Local (in memory)")
		sctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		ddb, err := ddblocal.Start(sctx, ddblocal.Options{Dir: o.DDBDir, HeapMB: 1024})
		if err != nil {
			return nil, fmt.Errorf("bench: DynamoDB Local (run `make deps`): %w", err)
		}
		return ddb, nil
	}
	ddb, err := startDDB()
	if err != nil {
		return nil, err
	}
	defer func() { ddb.Close() }()
	res := &Results{Cost: map[string]Breakdown{}, Latency: map[int]*LatencyResult{}, Options: o}
	tmpl, err := samtemplate.Load(filepath.Join(o.Root, "template.yaml"))
	if err != nil {
		return nil, err
	}
	res.UserLevelDef = tmpl.ParameterDefault("UserLevelEvents") == "true"
	prefix := fmt.Sprintf("b%d_", time.Now().Unix()%100000)

	// Stack A: the template's defaults; everything is measured on it.
	a, err := startEnv(ctx, o, ddb.Endpoint, prefix+"A_", res.UserLevelDef)
	if err != nil {
		return nil, err
	}
	defer a.close()
	res.RateLimits = a.rateLimit
	progress(o.Log, "stack up (user-level events %s as the template's default, stream poll %v, rate limits %s)", onOff(res.UserLevelDef), o.PollInterval, a.rateLimit)
	g20, err := a.newGroup(ctx, 20)
	if err != nil {
		return nil, err
	}
	if err := a.ready(ctx, g20); err != nil {
		return nil, err
	}
	ops, err := a.tour(ctx, g20)
	if err != nil {
		return nil, err
	}
	res.Operations = ops.rows()
	res.Estimator = estimatorCheck(ops)
	progress(o.Log, "operations measured: %d (estimator check on %d plain writes: Local %.0f units, estimate %.0f)",
		len(res.Operations), res.Estimator.PlainWrites, res.Estimator.LocalUnits, res.Estimator.EstimateUnits)
	for _, r := range res.Operations {
		progress(o.Log, "  %-40s ddb %.2f req  %.2f RCU  %.2f WCU (Local %.2f)  p50 %.1f ms", r.Operation, r.DDBRequests, r.ReadUnits, r.WriteUnits, r.WriteUnitsLocal, r.LatencyP50)
	}

	sizes := []struct {
		n, samples int
		g          *group
	}{{20, o.Samples20, g20}, {250, o.Samples250, nil}}
	for _, sz := range sizes {
		g := sz.g
		if g == nil {
			progress(o.Log, "setting up a thread of %d participants, one WebSocket each", sz.n)
			if g, err = a.newGroup(ctx, sz.n); err != nil {
				return nil, err
			}
			if err := a.ready(ctx, g); err != nil {
				return nil, err
			}
		}
		runs, samples := o.Runs, sz.samples
		if o.SkipLatency {
			runs, samples = 1, min(samples, 20)
		}
		lr, sc, err := a.latencyAndCost(ctx, g, sz.n, runs, samples, ops)
		if err != nil {
			return nil, err
		}
		if !o.SkipLatency {
			res.Latency[sz.n] = lr
		}
		k := costKey(sz.n, res.UserLevelDef)
		res.Cost[k] = priced(sc, o)
		progress(o.Log, "n=%d: cost $%.2f per million messages (user-level events %s)", sz.n, res.Cost[k].Total, onOff(res.UserLevelDef))
	}
	if !o.SkipThroughput {
		if res.Throughput, err = a.throughput(ctx); err != nil {
			return nil, err
		}
	}
	a.close()
	// A fresh DynamoDB Local for stack B: after the throughput runs the
	// in-memory one holds hundreds of thousands of items and its heap is
	// nearly full, which slowed stack B's requests into timeouts.
	ddb.Close()
	if ddb, err = startDDB(); err != nil {
		return nil, err
	}

	// Stack B: user-level events the other way, for the cost only.
	b, err := startEnv(ctx, o, ddb.Endpoint, prefix+"B_", !res.UserLevelDef)
	if err != nil {
		return nil, err
	}
	defer b.close()
	progress(o.Log, "stack up (user-level events %s)", onOff(!res.UserLevelDef))
	for _, sz := range []struct{ n, samples int }{{20, min(o.Samples20, 40)}, {250, min(o.Samples250, 15)}} {
		g, err := b.newGroup(ctx, sz.n)
		if err != nil {
			return nil, err
		}
		if err := b.ready(ctx, g); err != nil {
			return nil, err
		}
		_, sc, err := b.latencyAndCost(ctx, g, sz.n, 1, sz.samples, ops)
		if err != nil {
			return nil, err
		}
		k := costKey(sz.n, !res.UserLevelDef)
		res.Cost[k] = priced(sc, o)
		progress(o.Log, "n=%d: cost $%.2f per million messages (user-level events %s)", sz.n, res.Cost[k].Total, onOff(!res.UserLevelDef))
	}
	return res, nil
}

// priced is a scenario's breakdown with its levers.
func priced(sc Scenario, o Options) Breakdown {
	b := sc.Cost(ReferencePrices)
	b.Levers = sc.Levers(ReferencePrices, o.PingEvery)
	return b
}

func costKey(n int, userLevel bool) string {
	if userLevel {
		return fmt.Sprintf("n%d_user_level_on", n)
	}
	return fmt.Sprintf("n%d_user_level_off", n)
}

func estimatorCheck(t *opTable) EstimatorCheck {
	var c EstimatorCheck
	for _, a := range t.accs {
		c.LocalUnits += a.stats.Sums[MetricPlainLocal]
		c.EstimateUnits += a.stats.Sums[MetricPlainEstimate]
		if a.stats.Sums[MetricPlainLocal] > 0 {
			c.PlainWrites += a.stats.Invocations
		}
	}
	return c
}

// latencyAndCost sends runs × samples messages one at a time into g's
// thread, timing each to every recipient, and prices what they cost.
func (e *env) latencyAndCost(ctx context.Context, g *group, n, runs, samples int, ops *opTable) (*LatencyResult, Scenario, error) {
	// Warm up (JIT in DynamoDB Local, connection pools), unmeasured.
	if _, err := e.latencySeries(ctx, g, 5, nil); err != nil {
		return nil, Scenario{}, err
	}
	_ = e.settle(ctx)
	e.track.reset()
	e.col.Take()
	e.inv.take()
	eventsBefore := e.stack.Bus.Stats().Accepted
	lr := &LatencyResult{Participants: n, SamplesPerRun: samples, PollIntervalMs: ms(e.o.PollInterval)}
	var responses []int
	for r := 0; r < runs; r++ {
		run, err := e.latencySeries(ctx, g, samples, &responses)
		if err != nil {
			return nil, Scenario{}, err
		}
		lr.Runs = append(lr.Runs, run)
		progress(e.o.Log, "latency n=%d (user-level events %s) run %d/%d: e2e p50 %.1f ms p99 %.1f ms | stream wait p50 %.1f p99 %.1f | beyond it p50 %.1f p99 %.1f | send p50 %.1f (timeouts %d)",
			n, onOff(e.userLevel), r+1, runs, run.E2E.P50, run.E2E.P99, run.StreamWait.P50, run.StreamWait.P99, run.BeyondPoll.P50, run.BeyondPoll.P99, run.Send.P50, run.Timeouts)
	}
	lr.finish()
	if err := e.settle(ctx); err != nil {
		return nil, Scenario{}, err
	}
	snap := e.col.Take()
	durs := e.inv.take()
	frames, frameBytes, _ := e.track.reset()
	sent := float64(runs * samples)
	for _, bad := range snap.BadLines {
		progress(e.o.Log, "bad EMF line: %s", bad)
	}

	phase := newOpTable(e)
	phase.absorb(snap, durs, nil)
	send, _ := phase.row("SendMessage")
	disp, _ := phase.row("Dispatch")
	lr.DispatchMs, lr.DispatchDDBMs, lr.DispatchDDBByAPI = disp.LatencyMean, disp.DynamoDBMs, disp.DynamoDBOpMs
	lr.DispatchPerMsg = round(float64(disp.Invocations)/sent, 3)
	sc := Scenario{
		Name: fmt.Sprintf("%d participants, one WebSocket each, %d B messages", n, e.o.MessageBytes), Participants: n,
		UserLevelEvents: e.userLevel, MessageBytes: e.o.MessageBytes, HTTPRequests: 1, StreamReadsFree: true,
		Pushes: snap.Op("Dispatch").Sums["PushesDelivered"] / sent, Events: snap.Op("Dispatch").Sums["EventsPublished"] / sent,
		ResponseBytes: Mean(intsToFloats(responses)),
	}
	if frames > 0 {
		sc.PushFrameBytes = float64(frameBytes) / float64(frames)
	}
	sc.StreamGetRecords = float64(disp.Invocations) / sent
	sc.EventBytes = e.meanEventBytes(eventsBefore)
	sc.ConnMinutes = float64(n) * e.o.ConnMinutesPerMessage
	sc.Pings = sc.ConnMinutes / e.o.PingEvery.Minutes()
	sc.Uses = []Use{
		{Profile: send.profile(), PerMessage: float64(send.Invocations) / sent, Why: "the send"},
		{Profile: disp.profile(), PerMessage: float64(disp.Invocations) / sent, Why: "stream batches holding the message and its thread's counter update"},
	}
	reconnects := sc.ConnMinutes / 120 // API Gateway closes connections after 2 h
	for _, u := range []struct {
		op       string
		per      float64
		why      string
		connTime bool
	}{
		{"ChatAuthorizer", 1, "upper bound: a cache miss on every send (API Gateway caches per token for AuthorizerCacheSeconds)", false},
		{"WsDefault", sc.Pings, "keep-alive pings", true},
		{"WsAuthorizer", reconnects, "reconnect every 2 h (API Gateway's maximum connection time)", true},
		{"WsConnect", reconnects, "reconnect every 2 h", true},
		{"WsDisconnect", reconnects, "reconnect every 2 h", true},
	} {
		if r, ok := ops.row(u.op); ok {
			sc.Uses = append(sc.Uses, Use{Profile: r.profile(), PerMessage: u.per, Why: u.why, ConnectionTime: u.connTime})
		}
	}
	return lr, sc, nil
}

func (e *env) meanEventBytes(before int) float64 {
	evs := e.stack.Bus.Events()
	if before >= len(evs) {
		return 0
	}
	var sum float64
	for _, ev := range evs[before:] {
		sum += float64(len(ev.Source) + len(ev.DetailType) + len(ev.Detail) + 14)
	}
	return sum / float64(len(evs)-before)
}

func intsToFloats(xs []int) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = float64(x)
	}
	return out
}
