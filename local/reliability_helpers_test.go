package local

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/rtclient"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/store"
)

// Helpers of the reliability suite (reliability_e2e_test.go, load_e2e_test.go;
// docs/reliability.md): real-time listeners built on local/rtclient, a
// DynamoDB fault injector, and metric checks.

// ---------------------------------------------------------------- scale

// soakScale is how much bigger the suite runs under `make soak`
// (THREADLINE_SOAK=1): 1 in `make test`.
func soakScale() int {
	if os.Getenv("THREADLINE_SOAK") != "" && os.Getenv("THREADLINE_SOAK") != "0" {
		return 10
	}
	return 1
}

// loadMessages is how many messages TestLoad sends: THREADLINE_LOAD_MESSAGES
// when set, 10,000 under THREADLINE_SOAK=1, else 300.
func loadMessages(t *testing.T) int {
	if v := os.Getenv("THREADLINE_LOAD_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("THREADLINE_LOAD_MESSAGES=%q: want a positive number", v)
		}
		return n
	}
	if soakScale() > 1 {
		return 10000
	}
	return 300
}

// ---------------------------------------------------------------- listeners

// rtListener is one user's real-time client — local/rtclient, so reconnects,
// resume and dedupe by id are the real client's — and what it handed over.
type rtListener struct {
	user   acsclient.User
	client *rtclient.Client
	closes *atomic.Int64 // connections that ended; the client reconnected after each

	mu     sync.Mutex
	events []rtclient.Event
	at     []time.Time // when each event was handed over
	runErr error
	notify chan struct{}
}

// listen starts a real-time client for u from the present position of its
// feed (the settled cursor a long poll hands back), so even if its first
// connection drops it misses nothing from here on.
func (s *testStack) listen(t *testing.T, u acsclient.User) *rtListener {
	t.Helper()
	_, cursor, r := s.poll(t, u.Token, "", 0)
	if r.Status != http.StatusOK {
		t.Fatalf("long poll: %s", r)
	}
	return s.listenFrom(t, u, cursor)
}

// listenAll starts a listener for each user (listen, with the long polls
// for their cursors made concurrently).
func (s *testStack) listenAll(t *testing.T, users []acsclient.User) []*rtListener {
	t.Helper()
	cursors := make([]string, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			r, err := s.chat(u.Token).Do(context.Background(), acsclient.Request{Method: http.MethodGet, Path: "/chat/events?timeoutSeconds=0"})
			var page struct{ Cursor string }
			switch {
			case err != nil:
				errs[i] = err
			case r.Status != http.StatusOK || r.JSON(&page) != nil || page.Cursor == "":
				errs[i] = fmt.Errorf("long poll: %s", r)
			}
			cursors[i] = page.Cursor
		}()
	}
	wg.Wait()
	out := make([]*rtListener, len(users))
	for i, u := range users {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		out[i] = s.listenFrom(t, u, cursors[i])
	}
	for _, l := range out {
		l.waitConnected(t)
	}
	return out
}

// waitTime is how long a wait for deliveries may take before the test
// fails: generous, since a pass takes milliseconds; longer under soak.
func waitTime() time.Duration { return time.Duration(20*soakScale()) * time.Second }

// listenFrom starts a real-time client for u that resumes from cursor.
func (s *testStack) listenFrom(t *testing.T, u acsclient.User, cursor string) *rtListener {
	t.Helper()
	l := &rtListener{user: u, closes: new(atomic.Int64), notify: make(chan struct{}, 1)}
	l.client = rtclient.New(rtclient.Config{
		WebSocketURL: s.Info.WebSocket, HTTPAPI: s.Info.HTTPAPI, HTTPClient: s.http.HTTP,
		Token:       func(context.Context) (string, error) { return u.Token, nil },
		Cursor:      cursor,
		Backoff:     func(attempt int) time.Duration { return time.Duration(min(attempt+1, 5)) * 40 * time.Millisecond },
		PollTimeout: 2 * time.Second,
		ResumeWait:  2 * time.Second,
		Log:         slog.New(&msgCounter{msg: "rtclient: connection closed", n: l.closes}),
	})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		err := l.client.Run(ctx)
		l.mu.Lock()
		l.runErr = err
		l.mu.Unlock()
	}()
	go func() {
		for e := range l.client.Events() {
			e.Raw = nil // Data is what the checks read; a soak keeps millions
			l.mu.Lock()
			l.events = append(l.events, e)
			l.at = append(l.at, time.Now())
			l.mu.Unlock()
			select {
			case l.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-ran })
	return l
}

// msgCounter is a slog handler that counts one message.
type msgCounter struct {
	msg string
	n   *atomic.Int64
}

func (h *msgCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h *msgCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *msgCounter) WithGroup(string) slog.Handler      { return h }

func (l *rtListener) snapshot() ([]rtclient.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]rtclient.Event(nil), l.events...), l.runErr
}

// waitFor waits until ok holds over the events handed over so far.
func (l *rtListener) waitFor(t *testing.T, what string, timeout time.Duration, ok func([]rtclient.Event) bool) []rtclient.Event {
	t.Helper()
	return l.wait(t, what, timeout, ok, nil)
}

// waitAll waits until the listener has received every message of ids.
func (l *rtListener) waitAll(t *testing.T, what string, timeout time.Duration, ids []string) []rtclient.Event {
	t.Helper()
	return l.wait(t, what, timeout, hasAll(ids), func(evs []rtclient.Event) string {
		got := receivedIDs(evs)
		var b strings.Builder
		b.WriteString("missing:")
		for _, id := range ids {
			if got[id] == 0 {
				b.WriteString(" " + id)
			}
		}
		b.WriteString("; received, in order:")
		for _, m := range messageEvents(evs, "") {
			fmt.Fprintf(&b, "\n  %s %s seq %d %q", m.Type, m.ID, m.Seq, m.Content)
		}
		return b.String()
	})
}

func (l *rtListener) wait(t *testing.T, what string, timeout time.Duration, ok func([]rtclient.Event) bool, report func([]rtclient.Event) string) []rtclient.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		evs, runErr := l.snapshot()
		if ok(evs) {
			return evs
		}
		if runErr != nil {
			t.Fatalf("%s: the client stopped (%v) before %s", l.user.ID, runErr, what)
		}
		select {
		case <-l.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline.C:
			detail := ""
			if report != nil {
				detail = "; " + report(evs)
			}
			t.Fatalf("%s: timed out after %v waiting for %s: %d events, state %s, %d reconnects, %d duplicates%s",
				l.user.ID, timeout, what, len(evs), l.client.State(), l.closes.Load(), l.client.Duplicates(), detail)
		}
	}
}

// waitConnected waits until the client has an open WebSocket (its
// connection is registered before the handshake completes).
func (l *rtListener) waitConnected(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for l.client.State() != rtclient.StateWebSocket {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not connected after 20s (state %s)", l.user.ID, l.client.State())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gotMessage is a message event as a listener received it.
type gotMessage struct {
	EventID, Type, ThreadID, ID, Content string
	Seq                                  int64
}

// messageEvents picks the events of type typ ("" = any message event) out of
// evs, in arrival order.
func messageEvents(evs []rtclient.Event, typ string) []gotMessage {
	var out []gotMessage
	for _, e := range evs {
		if (typ == "" && !strings.HasPrefix(e.Type, "chatMessage")) || (typ != "" && e.Type != typ) {
			continue
		}
		var d struct {
			ID         string `json:"id"`
			SequenceID string `json:"sequenceId"`
			Message    string `json:"message"`
		}
		_ = json.Unmarshal(e.Data, &d)
		seq, _ := strconv.ParseInt(d.SequenceID, 10, 64)
		out = append(out, gotMessage{EventID: e.ID, Type: e.Type, ThreadID: e.ThreadID, ID: d.ID, Content: d.Message, Seq: seq})
	}
	return out
}

// receivedIDs counts the chatMessageReceived events per message id.
func receivedIDs(evs []rtclient.Event) map[string]int {
	out := map[string]int{}
	for _, m := range messageEvents(evs, "chatMessageReceived") {
		out[m.ID]++
	}
	return out
}

// hasAll reports whether every id is among the received messages.
func hasAll(ids []string) func([]rtclient.Event) bool {
	return func(evs []rtclient.Event) bool {
		got := receivedIDs(evs)
		for _, id := range ids {
			if got[id] == 0 {
				return false
			}
		}
		return true
	}
}

// requireExactlyOnce fails unless the listener's chatMessageReceived events
// of thread are exactly ids, each once (after the client's dedupe by id).
func requireExactlyOnce(t *testing.T, l *rtListener, thread string, ids []string) {
	t.Helper()
	evs, _ := l.snapshot()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	seen := map[string]int{}
	events := map[string]int{}
	for _, m := range messageEvents(evs, "chatMessageReceived") {
		events[m.EventID]++
		if m.ThreadID != thread {
			continue
		}
		seen[m.ID]++
		if !want[m.ID] {
			t.Errorf("%s received message %s, which was never sent to %s", l.user.ID, m.ID, thread)
		}
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Errorf("%s received message %s %d times, want exactly once", l.user.ID, id, seen[id])
		}
	}
	for id, n := range events {
		if n > 1 {
			t.Errorf("%s: the client handed event %s over %d times (dedupe by id failed)", l.user.ID, id, n)
		}
	}
}

// feedMessages is the set of distinct message ids of chatMessageReceived
// events of thread in the user's feed (what resume and long polling serve).
func (s *testStack) feedMessages(t *testing.T, userID, thread string) map[string]bool {
	t.Helper()
	entries, err := s.Realtime.Read(context.Background(), userID, realtime.FeedKey{}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		if e.Type == realtime.TypeMessageReceived && e.ThreadID == thread {
			out[chat.MessageID(e.ThreadID, e.Seq)] = true
		}
	}
	return out
}

// ---------------------------------------------------------------- stack plumbing

func withLogs(logs *lockedBuffer) stackOption {
	return func(c *Config) { c.FunctionLog = logs }
}

func (s *testStack) waitStreams(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}
}

// connectionIDs lists the user's registered connections.
func (s *testStack) connectionIDs(t *testing.T, userID string) []string {
	t.Helper()
	conns, err := s.Realtime.Lookup(context.Background(), []string{userID})
	if err != nil {
		t.Fatal(err)
	}
	ids := conns[userID]
	sort.Strings(ids)
	return ids
}

// dropConnection closes a connection through the @connections API
// (DELETE), as API Gateway closes connections: the client sees a close
// frame and reconnects.
func (s *testStack) dropConnection(t *testing.T, id string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, s.Info.Connections+"/@connections/"+url.PathEscape(id), nil)
	resp, err := s.http.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sendWith posts a message with a repeatability-request-id and returns the
// raw answer.
func (s *testStack) sendWith(t *testing.T, token, thread, content, requestID string) acsclient.Response {
	t.Helper()
	r := acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": content}}
	if requestID != "" {
		r.Headers = map[string]string{"repeatability-request-id": requestID}
	}
	return s.do(t, token, r)
}

// requireBusy checks a refusal is DynamoDB's throttling passed on: 503,
// Retry-After of at least a second, and an ACS error body.
func requireBusy(t *testing.T, what string, r acsclient.Response) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s: %s, want 503", what, r)
	}
	if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("%s: Retry-After %q, want whole seconds ≥ 1", what, r.Header.Get("Retry-After"))
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if r.JSON(&body) != nil || body.Error.Code != "ServiceUnavailable" || body.Error.Message == "" {
		t.Errorf("%s: body %s, want an ACS error with code ServiceUnavailable", what, r.Body)
	}
}

// ---------------------------------------------------------------- DynamoDB faults

// dynamoAttempts is how many attempts the DynamoDB client makes of a call
// (the SDK's DynamoDB default: 4, with a 25 ms base backoff and 1 s for
// throttling errors).
const dynamoAttempts = 4

// throttler is the functions' DynamoDB client (Config.WrapDB) with one more
// middleware on every call, at the end of the Finalize step: below the
// SDK's retries and below store.Instrument's throttle counter, where the
// HTTP request would leave. When a rule says so, the attempt is answered
// with DynamoDB's throttling error instead of being sent, so the SDK
// retries it (and the functions count it) exactly as a real throttle.
type throttler struct {
	store.DB

	mu    sync.Mutex
	next  int                           // throttle this many more attempts that match…
	match func(op string, in any) bool  // …this (nil: any)…
	shape func(op string, in any) error // …with this error (nil: throttledError)
	share float64                       // and this share of all attempts
	rng   *rand.Rand                    // seeded, for the share
	seen  map[string]int                // attempts throttled, by operation
	total atomic.Int64
}

func newThrottler(seed uint64) *throttler {
	return &throttler{rng: rand.New(rand.NewPCG(seed, seed)), seen: map[string]int{}}
}

// install is the stack option that puts the throttler in front of the
// functions' DynamoDB client.
func (th *throttler) install(c *Config) {
	c.WrapDB = func(db store.DB) store.DB { th.DB = db; return th }
}

// failNext throttles the next n attempts of calls that match, answering
// them with shape (nil: throttledError).
func (th *throttler) failNext(n int, match func(op string, in any) bool, shape func(op string, in any) error) {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.next, th.match, th.shape = n, match, shape
}

// left is how many armed throttles are still unspent.
func (th *throttler) left() int {
	th.mu.Lock()
	defer th.mu.Unlock()
	return th.next
}

// setShare throttles that share of every attempt from now on (0: off).
func (th *throttler) setShare(p float64) {
	th.mu.Lock()
	defer th.mu.Unlock()
	th.share = p
}

// decide returns the error to answer this attempt with, or nil to send it.
func (th *throttler) decide(op string, in any) error {
	th.mu.Lock()
	defer th.mu.Unlock()
	shape := throttledError
	switch {
	case th.next > 0 && (th.match == nil || th.match(op, in)):
		th.next--
		if th.shape != nil {
			shape = th.shape
		}
	case th.share > 0 && th.rng.Float64() < th.share:
	default:
		return nil
	}
	th.seen[op]++
	th.total.Add(1)
	return shape(op, in)
}

func (th *throttler) throttled() map[string]int {
	th.mu.Lock()
	defer th.mu.Unlock()
	out := map[string]int{}
	for k, v := range th.seen {
		out[k] = v
	}
	return out
}

// throttledError is what DynamoDB answers a throttled request with; the
// SDK retries it.
func throttledError(string, any) error {
	return &types.ProvisionedThroughputExceededException{
		Message: aws.String("The level of configured provisioned throughput for the table was exceeded (injected by the reliability suite)"),
	}
}

// cancelledByThrottling is how DynamoDB answers a transaction it throttled:
// the transaction is cancelled, with ThrottlingError as the reason of the
// throttled action. The SDK does not retry it.
func cancelledByThrottling(_ string, in any) error {
	n := 1
	if v, ok := in.(*dynamodb.TransactWriteItemsInput); ok && len(v.TransactItems) > 0 {
		n = len(v.TransactItems)
	}
	reasons := make([]types.CancellationReason, n)
	names := make([]string, n)
	for i := range reasons {
		reasons[i].Code, names[i] = aws.String("None"), "None"
	}
	reasons[0] = types.CancellationReason{Code: aws.String("ThrottlingError"), Message: aws.String("Throughput exceeds the current capacity of your table or index.")}
	names[0] = "ThrottlingError"
	return &types.TransactionCanceledException{
		Message:             aws.String("Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(names, ", ") + "]"),
		CancellationReasons: reasons,
	}
}

// option adds the injecting middleware to one call. It also caps the
// SDK's backoff between attempts at 20 ms (DynamoDB's client waits up to
// 1, 2 and 4 s after throttles), so the suite stays short; the attempts,
// which errors are retried and the retry quota stay the SDK's own.
func (th *throttler) option(op string, in any) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		if o.Retryer != nil {
			o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, 20*time.Millisecond)
		}
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("ReliabilitySuiteThrottle",
				func(ctx context.Context, fin middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					if err := th.decide(op, in); err != nil {
						return middleware.FinalizeOutput{}, middleware.Metadata{}, err
					}
					return next.HandleFinalize(ctx, fin)
				}), middleware.After)
		})
	}
}

func (th *throttler) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return th.DB.GetItem(ctx, in, append(o, th.option("GetItem", in))...)
}
func (th *throttler) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return th.DB.PutItem(ctx, in, append(o, th.option("PutItem", in))...)
}
func (th *throttler) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return th.DB.UpdateItem(ctx, in, append(o, th.option("UpdateItem", in))...)
}
func (th *throttler) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return th.DB.Query(ctx, in, append(o, th.option("Query", in))...)
}
func (th *throttler) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	return th.DB.BatchGetItem(ctx, in, append(o, th.option("BatchGetItem", in))...)
}
func (th *throttler) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	return th.DB.BatchWriteItem(ctx, in, append(o, th.option("BatchWriteItem", in))...)
}
func (th *throttler) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return th.DB.TransactWriteItems(ctx, in, append(o, th.option("TransactWriteItems", in))...)
}

// Matchers for failNext.

func attrS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// writes reports whether the call writes an item whose sort key satisfies
// sk (PutItem, UpdateItem, or any action of a transaction).
func writes(op string, in any, sk func(string) bool) bool {
	switch v := in.(type) {
	case *dynamodb.PutItemInput:
		return sk(attrS(v.Item, "sk"))
	case *dynamodb.UpdateItemInput:
		return sk(attrS(v.Key, "sk"))
	case *dynamodb.TransactWriteItemsInput:
		for _, it := range v.TransactItems {
			if (it.Put != nil && sk(attrS(it.Put.Item, "sk"))) || (it.Update != nil && sk(attrS(it.Update.Key, "sk"))) {
				return true
			}
		}
	}
	return false
}

func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

// messageWrite: the write that commits a sent message (PutItem, or with a
// repeatability-request-id the transaction with its record).
func messageWrite(op string, in any) bool {
	return (op == "PutItem" || op == "TransactWriteItems") && writes(op, in, prefix("M#"))
}

// threadCommit: CreateThread's last write, the META item.
func threadCommit(op string, in any) bool {
	return op == "PutItem" && writes(op, in, func(sk string) bool { return sk == "META" })
}

// rosterWrite: the transaction that adds or removes participants.
func rosterWrite(op string, in any) bool {
	return op == "TransactWriteItems" && writes(op, in, prefix("P#"))
}

// identityRead: the authorizers' read of the caller's identity item.
func identityRead(op string, in any) bool {
	v, ok := in.(*dynamodb.GetItemInput)
	return ok && op == "GetItem" && strings.HasPrefix(attrS(v.Key, "pk"), "U#") && attrS(v.Key, "sk") == "ID"
}

// ---------------------------------------------------------------- metrics

// faultMetrics names, per fault test, the fault-only metrics
// (faultOnlyMetrics, observability_e2e_test.go) it must see emitted with a
// value above zero. TestFaultMetricsAreEachProvoked checks that together
// they cover every one, so each metric the dashboard charts is proven
// emitted by some test.
var faultMetrics = map[string][]string{
	"TestFaultThrottledRequestsRetryOrRefuseWhole": {obs.DynamoDBThrottles, obs.ServerErrors},
	"TestFaultThrottlingShareLosesNothing":         {obs.DynamoDBThrottles},
	"TestFaultDispatcherKilledMidBatch":            {obs.ServerErrors},
	"TestFaultPushGoneRemovesTheConnection":        {obs.PushesGone},
	"TestFaultPushFailureLosesNothing":             {obs.PushesFailed},
}

// emittedTotals checks every EMF line in logs as the observability test
// does and sums each metric over them.
func emittedTotals(t *testing.T, logs *lockedBuffer) map[string]float64 {
	t.Helper()
	totals := map[string]float64{}
	for _, line := range logs.lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("not a JSON log line: %.300s", line)
			continue
		}
		if _, ok := rec["_aws"]; !ok {
			continue
		}
		for _, n := range checkEMF(t, rec, line) {
			v, _ := rec[n].(float64)
			totals[n] += v
		}
	}
	return totals
}

// requireFaultMetrics checks the test's entry of faultMetrics against what
// the functions logged, and returns the totals.
func requireFaultMetrics(t *testing.T, logs *lockedBuffer) map[string]float64 {
	t.Helper()
	want, ok := faultMetrics[t.Name()]
	if !ok {
		t.Fatalf("faultMetrics has no entry for %s", t.Name())
	}
	totals := emittedTotals(t, logs)
	for _, n := range want {
		if totals[n] <= 0 {
			t.Errorf("the fault did not show in metric %s (total %v)", n, totals[n])
		}
	}
	return totals
}

func fmtTotals(m map[string]float64, names ...string) string {
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%v", n, m[n])
	}
	return b.String()
}
