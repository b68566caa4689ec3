package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/local/acsclient"
)

// OpRow is one operation's measured cost per invocation.
type OpRow struct {
	Operation       string             `json:"operation"`
	Context         string             `json:"context,omitempty"`
	Invocations     int                `json:"invocations"`
	Errors          float64            `json:"errors"`
	DDBRequests     float64            `json:"ddb_requests"`
	ReadUnits       float64            `json:"read_units"`
	WriteUnitsLocal float64            `json:"write_units_local"` // as DynamoDB Local reported
	WriteUnits      float64            `json:"write_units"`       // transactions at AWS's 2×, failed conditions counted
	FailedWrites    float64            `json:"failed_conditional_writes,omitempty"`
	TxUnitsLocal    float64            `json:"tx_write_units_local,omitempty"`
	TxUnitsAWS      float64            `json:"tx_write_units_aws,omitempty"`
	LatencyP50      float64            `json:"latency_p50_ms"` // the EMF Latency (handler time)
	LatencyMean     float64            `json:"latency_mean_ms"`
	DynamoDBMs      float64            `json:"dynamodb_ms"` // time in DynamoDB calls, summed over calls
	DynamoDBOpMs    map[string]float64 `json:"dynamodb_ms_by_api,omitempty"`
	BilledMs        float64            `json:"billed_ms"` // whole invocation, rounded up per invocation
	MemoryMB        int                `json:"memory_mb"`
	LogBytes        float64            `json:"log_bytes"`
	FeedWrites      float64            `json:"feed_writes,omitempty"`
	Pushes          float64            `json:"pushes,omitempty"`
	Events          float64            `json:"events,omitempty"`
	Read            map[string]float64 `json:"read_units_by_table,omitempty"`
	Write           map[string]float64 `json:"write_units_by_table,omitempty"`
}

// profile is the row as a cost-model profile.
func (r OpRow) profile() Profile {
	return Profile{Operation: r.Operation, MemoryMB: r.MemoryMB, BilledMs: r.BilledMs, LogBytes: r.LogBytes,
		Requests: r.DDBRequests, Read: r.Read, Write: r.Write}
}

// opAcc accumulates an operation over phases.
type opAcc struct {
	stats     OpStats
	durations []float64
	logBytes  int
}

type opTable struct {
	e     *env
	order []string
	accs  map[string]*opAcc
	ctxs  map[string]string
}

func newOpTable(e *env) *opTable {
	return &opTable{e: e, accs: map[string]*opAcc{}, ctxs: map[string]string{}}
}

// absorb adds a phase's snapshot: each operation under its own name, or
// under rename[operation] when given.
func (t *opTable) absorb(snap Snapshot, durs map[string][]float64, rename map[string]string) {
	for _, name := range snap.OperationNames() {
		o := snap.Ops[name]
		label := name
		if r, ok := rename[name]; ok {
			label = r
		}
		a := t.accs[label]
		if a == nil {
			a = &opAcc{stats: OpStats{Operation: label, Function: o.Function, Sums: map[string]float64{}}}
			t.accs[label] = a
			t.order = append(t.order, label)
		}
		a.stats.Invocations += o.Invocations
		for k, v := range o.Sums {
			a.stats.Sums[k] += v
		}
		a.stats.Latencies = append(a.stats.Latencies, o.Latencies...)
		a.durations = append(a.durations, durs[logicalID(o.Function)]...)
		if l := snap.Logs[o.Function]; l != nil {
			a.logBytes += l.Bytes
		}
	}
}

func (t *opTable) row(label string) (OpRow, bool) {
	a := t.accs[label]
	if a == nil || a.stats.Invocations == 0 {
		return OpRow{Operation: label}, false
	}
	return rowOf(label, &a.stats, a.durations, a.logBytes, t.e.memory[logicalID(a.stats.Function)]), true
}

func rowOf(label string, o *OpStats, durations []float64, logBytes, memory int) OpRow {
	n := float64(o.Invocations)
	r := OpRow{
		Operation: label, Invocations: o.Invocations, Errors: (o.Sums["ClientErrors"] + o.Sums["ServerErrors"]) / n,
		DDBRequests: o.Mean("DynamoDBRequests"), ReadUnits: o.Mean("DynamoDBReadUnits"),
		WriteUnitsLocal: o.Mean("DynamoDBWriteUnits"),
		TxUnitsLocal:    o.Mean(MetricTxLocal), TxUnitsAWS: o.Mean(MetricTxAWS),
		LatencyP50: round(Median(o.Latencies), 2), LatencyMean: round(Mean(o.Latencies), 2), DynamoDBMs: round(o.Mean(MetricDDBMs), 2),
		DynamoDBOpMs: map[string]float64{}, BilledMs: round(billedMs(durations), 2), MemoryMB: memory,
		LogBytes: round(float64(logBytes)/n, 1), FeedWrites: o.Mean("FeedWrites"), Pushes: o.Mean("PushesDelivered"),
		Events: o.Mean("EventsPublished"), Read: map[string]float64{}, Write: map[string]float64{},
	}
	r.FailedWrites = o.Mean(MetricFailedWrites)
	r.WriteUnits = r.WriteUnitsLocal - r.TxUnitsLocal + r.TxUnitsAWS + r.FailedWrites
	for k, v := range o.Sums {
		if t, ok := strings.CutPrefix(k, metricTableRead); ok {
			r.Read[t] = v / n
		}
		if t, ok := strings.CutPrefix(k, metricTableWrite); ok {
			r.Write[t] = v / n
		}
		if api, ok := strings.CutPrefix(k, metricDDBOpMs); ok {
			r.DynamoDBOpMs[api] = round(v/n, 2)
		}
	}
	if len(durations) == 0 {
		r.BilledMs = round(Mean(o.Latencies), 2) // not seen by the host wrapper: use the handler time
	}
	return r
}

// rows lists the table's operations, sorted by name.
func (t *opTable) rows() []OpRow {
	labels := append([]string(nil), t.order...)
	sort.Strings(labels)
	var out []OpRow
	for _, l := range labels {
		if r, ok := t.row(l); ok {
			r.Context = t.ctxs[l]
			out = append(out, r)
		}
	}
	return out
}

// tour runs every operation a few times against the thread of g (whose
// members are all connected) and measures each: the per-operation table.
func (e *env) tour(ctx context.Context, g *group) (*opTable, error) {
	t := newOpTable(e)
	e.meter.Validate.Store(true)
	defer e.meter.Validate.Store(false)
	u := g.users
	creator := u[0]
	var failures []string
	check := func(what string, r acsclient.Response, err error, want ...int) {
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", what, err))
			return
		}
		for _, w := range want {
			if r.Status == w {
				return
			}
		}
		failures = append(failures, fmt.Sprintf("%s: %s", what, r))
	}
	do := func(token, method, path string, body any, headers map[string]string) (acsclient.Response, error) {
		return e.chat(token).Do(ctx, acsclient.Request{Method: method, Path: path, Body: body, Headers: headers})
	}
	step := func(what string, rename map[string]string, f func() error) error {
		e.col.Take()
		e.inv.take()
		if err := f(); err != nil {
			return fmt.Errorf("tour %s: %w", what, err)
		}
		if err := e.settle(ctx); err != nil {
			return err
		}
		t.absorb(e.col.Take(), e.inv.take(), rename)
		return nil
	}
	others := func(from, n int) []any {
		var ps []any
		for _, x := range u[from : from+n] {
			ps = append(ps, acsclient.Participant(x.ID, x.name))
		}
		return ps
	}
	n := len(u)
	t.ctxs["CreateThread"] = fmt.Sprintf("%d participants, all connected", n)
	t.ctxs["Dispatch"] = fmt.Sprintf("every event of this tour, %d recipients each, all connected", n)
	t.ctxs["SendMessage"] = fmt.Sprintf("%d B text, %d participants", e.o.MessageBytes, n)
	t.ctxs["ChatAuthorizer"] = "a token's first request (API Gateway caches the verdict per token)"

	var spare []acsclient.User
	var tokens []string
	var t1, t2, msg string
	err := step("identity", nil, func() error {
		for i := 0; i < 10; i++ {
			x, err := e.ids.CreateUser(ctx, "chat")
			if err != nil {
				return err
			}
			spare = append(spare, x)
		}
		for i := 1; i <= 3; i++ {
			tk, err := e.ids.IssueToken(ctx, u[i].ID, "chat")
			if err != nil {
				return err
			}
			tokens = append(tokens, tk)
		}
		r, err := e.ids.Do(ctx, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(spare[8].ID, ":revokeAccessTokens"), Body: []byte("{}")})
		check("revoke", r, err, 204, 200)
		r, err = e.ids.Do(ctx, acsclient.Signed{Method: http.MethodDelete, Path: acsclient.IdentityPath(spare[9].ID, "")})
		check("delete identity", r, err, 204)
		return nil
	})
	if err != nil {
		return nil, err
	}
	steps := []struct {
		what   string
		rename map[string]string
		f      func() error
	}{
		{"threads", nil, func() error {
			for _, id := range []*string{&t1, &t2} {
				r, err := do(creator.Token, http.MethodPost, "/chat/threads?api-version=2025-03-15",
					map[string]any{"topic": "tour", "participants": others(1, n-1)}, nil)
				check("create thread", r, err, 201)
				var out struct {
					ChatThread struct{ ID string } `json:"chatThread"`
				}
				if err != nil || r.JSON(&out) != nil {
					return fmt.Errorf("create thread: %v %s", err, r)
				}
				*id = out.ChatThread.ID
			}
			for _, tk := range tokens { // fresh tokens: the authorizer runs
				r, err := do(tk, http.MethodGet, acsclient.ThreadPath(t1, ""), nil, nil)
				check("get thread (new token)", r, err, 200)
			}
			for i := 0; i < 5; i++ {
				r, err := do(creator.Token, http.MethodGet, acsclient.ThreadPath(t1, ""), nil, nil)
				check("get thread", r, err, 200)
				r, err = do(creator.Token, http.MethodGet, "/chat/threads?api-version=2025-03-15", nil, nil)
				check("list threads", r, err, 200)
			}
			for i := 0; i < 3; i++ {
				r, err := do(creator.Token, http.MethodPatch, acsclient.ThreadPath(t1, ""), map[string]any{"topic": fmt.Sprintf("tour %d", i)}, nil)
				check("update thread", r, err, 204)
			}
			return nil
		}},
		{"send", nil, func() error {
			for i := 0; i < 5; i++ {
				id, _, err := e.send(ctx, u[i].Token, t1, messageBody(e.o.MessageBytes, i))
				if err != nil {
					return err
				}
				msg = id
			}
			return nil
		}},
		{"send with repeatability-request-id", map[string]string{"SendMessage": "SendMessage (repeatability-request-id)"}, func() error {
			for i := 0; i < 5; i++ {
				r, err := do(u[i].Token, http.MethodPost, acsclient.ThreadPath(t1, "messages"), messageBody(e.o.MessageBytes, i),
					map[string]string{"repeatability-request-id": fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)})
				check("send (idempotent)", r, err, 201)
			}
			return nil
		}},
		{"messages", nil, func() error {
			for i := 0; i < 5; i++ {
				r, err := do(creator.Token, http.MethodGet, acsclient.ThreadPath(t1, "messages"), nil, nil)
				check("list messages", r, err, 200)
				r, err = do(creator.Token, http.MethodGet, acsclient.ThreadPath(t1, "messages/"+msg), nil, nil)
				check("get message", r, err, 200)
			}
			sender := u[4] // sent msg
			for i := 0; i < 3; i++ {
				r, err := do(sender.Token, http.MethodPatch, acsclient.ThreadPath(t1, "messages/"+msg), map[string]any{"content": fmt.Sprintf("edited %d", i)}, nil)
				check("update message", r, err, 204)
			}
			for i := 0; i < 3; i++ {
				id, _, err := e.send(ctx, sender.Token, t1, messageBody(64, i))
				if err != nil {
					return err
				}
				r, err := do(sender.Token, http.MethodDelete, acsclient.ThreadPath(t1, "messages/"+id), nil, nil)
				check("delete message", r, err, 204)
			}
			return nil
		}},
		{"participants", nil, func() error {
			for i := 0; i < 5; i++ {
				r, err := do(creator.Token, http.MethodGet, acsclient.ThreadPath(t1, "participants"), nil, nil)
				check("list participants", r, err, 200)
			}
			for i := 0; i < 2; i++ {
				r, err := do(creator.Token, http.MethodPost, acsclient.ThreadPath(t1, "participants/:add"),
					map[string]any{"participants": []any{acsclient.Participant(spare[i].ID, "spare")}}, nil)
				check("add participant", r, err, 201, 200)
			}
			for i := 0; i < 2; i++ {
				r, err := do(creator.Token, http.MethodPost, acsclient.ThreadPath(t1, "participants/:remove"),
					map[string]any{"rawId": spare[i].ID, "communicationUser": map[string]any{"id": spare[i].ID}}, nil)
				check("remove participant", r, err, 204)
			}
			return nil
		}},
		{"receipts, typing, polling", nil, func() error {
			for i := 1; i <= 5; i++ {
				r, err := do(u[i].Token, http.MethodPost, acsclient.ThreadPath(t1, "readReceipts"), map[string]any{"chatMessageId": msg}, nil)
				check("send read receipt", r, err, 200)
				r, err = do(u[i].Token, http.MethodGet, acsclient.ThreadPath(t1, "readReceipts"), nil, nil)
				check("list read receipts", r, err, 200)
				r, err = do(u[i].Token, http.MethodPost, acsclient.ThreadPath(t1, "typing"), map[string]any{"senderDisplayName": "bench"}, nil)
				check("send typing", r, err, 200)
			}
			for i := 0; i < 3; i++ {
				r, err := do(u[i].Token, http.MethodGet, "/chat/events?timeoutSeconds=0", nil, nil)
				check("poll events", r, err, 200)
			}
			return nil
		}},
		{"delete thread", nil, func() error {
			r, err := do(creator.Token, http.MethodDelete, acsclient.ThreadPath(t2, ""), nil, nil)
			check("delete thread", r, err, 204)
			return nil
		}},
	}
	for _, s := range steps {
		if err := step(s.what, s.rename, s.f); err != nil {
			return nil, err
		}
	}
	// WebSocket routes: connect, ping, disconnect (users in no thread).
	var conns []*websocket.Conn
	if err := step("websocket connect", nil, func() error {
		for i := 2; i < 7; i++ {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			c, _, err := websocket.Dial(dctx, e.stack.Info.WebSocket+"/?access_token="+url.QueryEscape(spare[i].Token), &websocket.DialOptions{HTTPClient: e.wsHC})
			cancel()
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("websocket ping", nil, func() error {
		for _, c := range conns {
			if err := c.Write(ctx, websocket.MessageText, []byte(`{"action":"ping"}`)); err != nil {
				return err
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, b, err := c.Read(rctx)
			cancel()
			if err != nil {
				return err
			}
			if string(b) != `{"type":"pong"}` {
				failures = append(failures, "ping answered "+string(b))
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if err := step("websocket disconnect", nil, func() error {
		for _, c := range conns {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
		// $disconnect runs after the close, asynchronously.
		deadline := time.Now().Add(10 * time.Second)
		for e.col.Count("WsDisconnect") < len(conns) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for _, f := range failures {
		progress(e.o.Log, "tour: unexpected answer: %s", f)
	}
	return t, nil
}
