package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/eventbus"
	"github.com/threadline/threadline/local/rtclient"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/store"
)

// The reliability suite's fault tests (docs/reliability.md): each injects
// one kind of failure into the running stack and checks that no event is
// lost, that stale connections go, and that nothing is half-written. The
// load test is in load_e2e_test.go, the helpers in
// reliability_helpers_test.go.

// TestFaultMetricsAreEachProvoked: every metric that only a fault emits is
// required by some fault test (faultMetrics), so each one the dashboard
// charts is proven emitted.
func TestFaultMetricsAreEachProvoked(t *testing.T) {
	for _, n := range faultOnlyMetrics {
		found := false
		for _, names := range faultMetrics {
			found = found || slices.Contains(names, n)
		}
		if !found {
			t.Errorf("no fault test requires %s to be emitted: add it to faultMetrics with the test that provokes it", n)
		}
	}
}

func contentCount(msgs []wireMessage, content string) int {
	n := 0
	for _, m := range msgs {
		if m.Content != nil && m.Content.Message == content {
			n++
		}
	}
	return n
}

func topicCount(threads []threadItem, topic string) int {
	n := 0
	for _, th := range threads {
		if th.Topic == topic {
			n++
		}
	}
	return n
}

// TestFaultThrottledRequestsRetryOrRefuseWhole throttles one DynamoDB write
// (or read) at a time, below the SDK's retries: a few throttles are absorbed
// by the retries; more are a 503 with Retry-After and an ACS error, and the
// request left nothing behind, so the same request sent again commits once.
// The authorizers' identity read throttled is a 500 that is not cached.
func TestFaultThrottledRequestsRetryOrRefuseWhole(t *testing.T) {
	logs := &lockedBuffer{}
	th := newThrottler(1)
	s := startStack(t, withLogs(logs), th.install)
	ctx := context.Background()
	alice, bob, carol, dave := s.user(t), s.user(t), s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "throttled", bob).ChatThread.ID
	bl := s.listen(t, bob)
	bl.waitConnected(t)
	spent := func(step string) {
		t.Helper()
		if n := th.left(); n != 0 {
			t.Fatalf("%s: %d armed throttles were never hit: the step did not exercise the fault", step, n)
		}
	}

	// Throttles the SDK's retries absorb: the request succeeds, once.
	th.failNext(dynamoAttempts-1, messageWrite, nil)
	absorbed := s.send(t, alice.Token, thread, "absorbed")
	spent("absorbed")

	// One throttle more than the SDK retries: 503, no message. The same
	// request again commits exactly one.
	var sent []string
	for _, step := range []struct {
		name  string
		n     int
		shape func(string, any) error
	}{
		{"throttled on every attempt", dynamoAttempts, nil},
		{"transaction cancelled by throttling", 1, cancelledByThrottling},
	} {
		content, rid := "refused, then sent again: "+step.name, "req-"+step.name
		th.failNext(step.n, messageWrite, step.shape)
		requireBusy(t, "send ("+step.name+")", s.sendWith(t, alice.Token, thread, content, rid))
		spent(step.name)
		if n := contentCount(s.messages(t, alice.Token, thread, 0), content); n != 0 {
			t.Fatalf("%s: the refused send left %d messages", step.name, n)
		}
		r := s.sendWith(t, alice.Token, thread, content, rid)
		var out struct{ ID string }
		if r.Status != http.StatusCreated || r.JSON(&out) != nil || out.ID == "" {
			t.Fatalf("%s: the send again: %s", step.name, r)
		}
		if again := s.sendWith(t, alice.Token, thread, content, rid); again.Status != http.StatusCreated || !bytes.Equal(again.Body, r.Body) {
			t.Errorf("%s: a third send of the same request: %s, want the same 201 %s", step.name, again, r.Body)
		}
		if n := contentCount(s.messages(t, alice.Token, thread, 0), content); n != 1 {
			t.Fatalf("%s: %d messages after the retry, want 1", step.name, n)
		}
		sent = append(sent, out.ID)
	}

	// Sequence ids stay distinct and increase with message ids; a refused
	// send may leave a gap (docs/events.md), never a message.
	msgs := s.messages(t, alice.Token, thread, 0)
	seqs := map[int64]string{}
	for _, m := range msgs {
		if other, dup := seqs[m.seq(t)]; dup {
			t.Errorf("messages %s and %s share sequenceId %d", other, m.ID, m.seq(t))
		}
		seqs[m.seq(t)] = m.ID
	}
	if texts := contentCount(msgs, "absorbed"); texts != 1 {
		t.Errorf("%d 'absorbed' messages, want 1", texts)
	}

	// CreateThread refused at its last write (META): the items it wrote
	// before are invisible; the same request again makes exactly one thread.
	create := acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Headers: map[string]string{"repeatability-request-id": "create-refused-then-sent"},
		Body:    map[string]any{"topic": "refused create", "participants": []any{acsclient.Participant(carol.ID, "Carol")}}}
	th.failNext(dynamoAttempts, threadCommit, nil)
	requireBusy(t, "create thread", s.do(t, alice.Token, create))
	spent("create thread")
	for _, u := range []acsclient.User{alice, carol} {
		if n := topicCount(listThreads(t, s, u.Token, 0), "refused create"); n != 0 {
			t.Fatalf("a refused create left a visible thread (%d) for %s", n, u.ID)
		}
	}
	r := s.do(t, alice.Token, create)
	var created createResult
	if r.Status != http.StatusCreated || r.JSON(&created) != nil {
		t.Fatalf("create again: %s", r)
	}
	for _, u := range []acsclient.User{alice, carol} {
		if n := topicCount(listThreads(t, s, u.Token, 0), "refused create"); n != 1 {
			t.Errorf("%s lists the created thread %d times, want once", u.ID, n)
		}
	}
	if ps := s.participants(t, carol.Token, created.ChatThread.ID, 0); len(ps) != 2 {
		t.Errorf("the created thread has %d participants, want alice and carol", len(ps))
	}

	// AddParticipants refused, in both shapes: dave is not half-added; the
	// same add again adds him once.
	for _, step := range []struct {
		n     int
		shape func(string, any) error
	}{{dynamoAttempts, nil}, {1, cancelledByThrottling}} {
		th.failNext(step.n, rosterWrite, step.shape)
		requireBusy(t, "add participant", s.add(t, alice.Token, thread, dave))
		spent("add participant")
		for _, p := range s.participants(t, alice.Token, thread, 0) {
			if p.CommunicationIdentifier.RawID == dave.ID {
				t.Fatal("a refused add left dave in the thread")
			}
		}
		if r := s.do(t, dave.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "")}); r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Fatalf("dave reads the thread after a refused add: %s", r)
		}
	}
	if r := s.add(t, alice.Token, thread, dave); r.Status != http.StatusCreated {
		t.Fatalf("add again: %s", r)
	}
	daves := 0
	for _, p := range s.participants(t, alice.Token, thread, 0) {
		if p.CommunicationIdentifier.RawID == dave.ID {
			daves++
		}
	}
	if daves != 1 {
		t.Errorf("dave is in the thread %d times", daves)
	}

	// The HTTP authorizer's identity read throttled past the retries: the
	// gateway answers 5xx (clients retry), and the verdict is not cached:
	// the same token works at once. A 401 here would be cached for the
	// authorizer's TTL and lock the user out over a transient throttle.
	fresh, err := s.ids.IssueToken(ctx, alice.ID, "chat")
	if err != nil {
		t.Fatal(err)
	}
	get := acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "")}
	th.failNext(dynamoAttempts, identityRead, nil)
	if r := s.do(t, fresh, get); r.Status < 500 {
		t.Errorf("a request whose authorizer was throttled: %s, want a 5xx the client retries (never a 401)", r)
	}
	spent("authorizer")
	if r := s.do(t, fresh, get); r.Status != http.StatusOK {
		t.Errorf("the same token after the throttle: %s, want 200 (a throttled authorizer's verdict must not be cached)", r)
	}
	// The WebSocket authorizer likewise: the handshake fails with 500, not
	// 401 (which the client would take for a bad token), and the next works.
	freshWS, err := s.ids.IssueToken(ctx, bob.ID, "chat")
	if err != nil {
		t.Fatal(err)
	}
	th.failNext(dynamoAttempts, identityRead, nil)
	if _, err := s.dial(t, freshWS, ""); err == nil || !strings.Contains(err.Error(), "handshake 500") {
		t.Errorf("a handshake whose authorizer was throttled: %v, want a 500", err)
	}
	spent("WebSocket authorizer")
	s.mustDial(t, freshWS, "")

	// Bob received every committed message exactly once, and dave's
	// addition once: refused requests produced no events.
	want := append([]string{absorbed}, sent...)
	bl.waitAll(t, "every committed message", waitTime(), want)
	bl.waitFor(t, "dave's addition", waitTime(), func(evs []rtclient.Event) bool { return count(toFrames(evs), "participantsAdded") >= 1 })
	s.waitStreams(t)
	requireExactlyOnce(t, bl, thread, want)
	if evs, _ := bl.snapshot(); count(toFrames(evs), "participantsAdded") != 1 {
		t.Errorf("bob was told of %d additions, want 1", count(toFrames(evs), "participantsAdded"))
	}
	totals := requireFaultMetrics(t, logs)
	t.Logf("throttled attempts %v;%s", th.throttled(), fmtTotals(totals, obs.DynamoDBThrottles, obs.ServerErrors))
}

func toFrames(evs []rtclient.Event) []frame {
	out := make([]frame, len(evs))
	for i, e := range evs {
		out[i] = frame{ID: e.ID, Type: e.Type, ThreadID: e.ThreadID, Cursor: e.Cursor}
	}
	return out
}

// busyRetry sends r until it is not a 503 (as the ACS SDKs retry), checking
// every 503 on the way is a well-formed one; it returns the final answer and
// the number of 503s.
func busyRetry(t *testing.T, s *testStack, token string, r acsclient.Request) (acsclient.Response, int) {
	c := s.chat(token)
	busy := 0
	for attempt := 0; ; attempt++ {
		resp, err := c.Do(context.Background(), r)
		if err != nil {
			t.Errorf("%s %s: %v", r.Method, r.Path, err)
			return resp, busy
		}
		if resp.Status != http.StatusServiceUnavailable || attempt == 30 {
			return resp, busy
		}
		busy++
		if n := resp.Header.Get("Retry-After"); n == "" || resp.JSON(&struct{}{}) != nil {
			t.Errorf("a 503 without Retry-After or an ACS body: %s", resp)
		}
		if code, _ := resp.ErrorCode(); code != "ServiceUnavailable" {
			t.Errorf("a 503 with code %q: %s", code, resp)
		}
		time.Sleep(20 * time.Millisecond) // the suite does not wait Retry-After's full second
	}
}

// TestFaultThrottlingShareLosesNothing throttles a share of every DynamoDB
// attempt of every function — the API, the authorizers, the dispatcher —
// while messages are sent concurrently and retried on 503 as the SDKs do.
// Every request ends in its success or a well-formed 503; afterwards every
// message exists once and reached every member's feed and client once.
func TestFaultThrottlingShareLosesNothing(t *testing.T) {
	logs := &lockedBuffer{}
	th := newThrottler(7)
	s := startStack(t, withLogs(logs), th.install)
	users := s.users(t, 8)
	groups := [][]acsclient.User{users[:4], users[4:]}
	threads := make([]string, len(groups))
	for g, members := range groups {
		threads[g] = s.createThread(t, members[0].Token, fmt.Sprintf("share %d", g), members[1:]...).ChatThread.ID
	}
	// The clients' long polls also warm the authorizer's cache (it caches
	// its verdict per token), so the throttles below land on the operations
	// (TestFaultThrottledRequestsRetryOrRefuseWhole covers a throttled
	// authorizer).
	listeners := s.listenAll(t, users)

	th.setShare(0.3)
	perThread := 15 * soakScale()
	type job struct{ g, i int }
	jobs := make(chan job)
	var mu sync.Mutex
	ids := make([][]string, len(groups))
	var busy atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				members := groups[j.g]
				sender := members[j.i%len(members)]
				r, n := busyRetry(t, s, sender.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(threads[j.g], "messages"),
					Body:    map[string]any{"content": fmt.Sprintf("share %d-%d", j.g, j.i)},
					Headers: map[string]string{"repeatability-request-id": fmt.Sprintf("share-%d-%d", j.g, j.i)}})
				busy.Add(int64(n))
				var out struct{ ID string }
				if r.Status != http.StatusCreated || r.JSON(&out) != nil {
					t.Errorf("send %d-%d: %s", j.g, j.i, r)
					continue
				}
				mu.Lock()
				ids[j.g] = append(ids[j.g], out.ID)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < perThread; i++ {
		for g := range groups {
			jobs <- job{g, i}
		}
	}
	close(jobs)
	wg.Wait()
	th.setShare(0)
	if t.Failed() {
		t.FailNow()
	}
	s.waitStreams(t)

	for g, members := range groups {
		msgs := s.messages(t, members[0].Token, threads[g], 0)
		for i := 0; i < perThread; i++ {
			if n := contentCount(msgs, fmt.Sprintf("share %d-%d", g, i)); n != 1 {
				t.Errorf("thread %d holds message %d %d times, want once", g, i, n)
			}
		}
		for _, u := range members {
			feed := s.feedMessages(t, u.ID, threads[g])
			for _, id := range ids[g] {
				if !feed[id] {
					t.Errorf("%s's feed misses message %s", u.ID, id)
				}
			}
		}
	}
	dups := 0
	for i, l := range listeners {
		g := i / 4
		l.waitAll(t, "every message of its thread", waitTime(), ids[g])
		requireExactlyOnce(t, l, threads[g], ids[g])
		dups += l.client.Duplicates()
	}
	if st := s.Streams[0].Stats(); st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered", st.DeadLettered)
	}
	totals := requireFaultMetrics(t, logs)
	t.Logf("%d messages, %d attempts throttled %v, %d answers 503 (retried), %d duplicate deliveries dropped by the clients, stream %+v;%s",
		perThread*len(groups), th.total.Load(), th.throttled(), busy.Load(), dups, s.Streams[0].Stats(), fmtTotals(totals, obs.DynamoDBThrottles, obs.ServerErrors))
}

// serialKiller is killer (realtime_e2e_test.go) for several invocations,
// made to really stop part way: it kills up to max dispatch invocations
// that carry at least minRecords records, as when Lambda's runtime dies
// mid-batch. The local host runs an invocation detached from its caller's
// context (as Lambda does), so cancelling that stops nothing; instead the
// invocation's context carries a budget of DynamoDB calls, and mortal (the
// functions' DynamoDB client) fails every call past it: the batch's work
// stops there — nothing more is written to feeds, looked up or pushed —
// and the invocation fails.
type serialKiller struct {
	Invoker
	max, minRecords int64
	kills           atomic.Int64
}

// budgetKey carries a killed invocation's remaining DynamoDB calls.
type budgetKey struct{}

func (k *serialKiller) Invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	if fn != "DispatchFunction" || int64(bytes.Count(payload, []byte(`"eventName"`))) < k.minRecords {
		return k.Invoker.Invoke(ctx, fn, payload)
	}
	n := k.kills.Add(1)
	if n > k.max {
		k.kills.Add(-1)
		return k.Invoker.Invoke(ctx, fn, payload)
	}
	budget := new(atomic.Int64)
	// Each kill at another point of its batch: a batch of three threads
	// reads three rosters, then appends its feed entries and looks up
	// connections in a call each, so 2, 3 and 4 calls stop it among the
	// roster reads, at the feed append and at the lookup.
	budget.Store(1 + n)
	_, _ = k.Invoker.Invoke(context.WithValue(ctx, budgetKey{}, budget), fn, payload)
	return nil, errors.New("Runtime exited with error: signal: killed")
}

// mortal fails the DynamoDB calls of a killed invocation past its budget.
type mortal struct{ store.DB }

func dead(ctx context.Context) error {
	if b, ok := ctx.Value(budgetKey{}).(*atomic.Int64); ok && b.Add(-1) < 0 {
		return errors.New("the invocation was killed")
	}
	return nil
}

func (m mortal) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.GetItem(ctx, in, o...)
}
func (m mortal) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.PutItem(ctx, in, o...)
}
func (m mortal) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.UpdateItem(ctx, in, o...)
}
func (m mortal) Query(ctx context.Context, in *dynamodb.QueryInput, o ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.Query(ctx, in, o...)
}
func (m mortal) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.BatchGetItem(ctx, in, o...)
}
func (m mortal) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.BatchWriteItem(ctx, in, o...)
}
func (m mortal) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, o ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if err := dead(ctx); err != nil {
		return nil, err
	}
	return m.DB.TransactWriteItems(ctx, in, o...)
}

// TestFaultDispatcherKilledMidBatch kills the dispatcher part way through
// several batches while three threads take concurrent messages: every
// message still reaches every member's feed, every connected client (once,
// after dedupe, in causal order) and every client that was away and resumes
// afterwards; partner events are still published once per eventId.
func TestFaultDispatcherKilledMidBatch(t *testing.T) {
	logs := &lockedBuffer{}
	k := &serialKiller{max: 3, minRecords: 10}
	s := startStack(t, withLogs(logs), func(c *Config) {
		c.Wrap = func(i Invoker) Invoker { k.Invoker = i; return k }
		c.WrapDB = func(db store.DB) store.DB { return mortal{db} }
	})
	users := s.users(t, 12)
	const size = 4
	var groups [][]acsclient.User
	threads := map[int]string{}
	for g := 0; g < 3; g++ {
		members := users[g*size : (g+1)*size]
		groups = append(groups, members)
		threads[g] = s.createThread(t, members[0].Token, fmt.Sprintf("killed %d", g), members[1:]...).ChatThread.ID
	}
	// The last member of each thread is away while it all happens; it keeps
	// the cursor of this moment.
	live := map[string]*rtListener{}
	away := map[string]string{}
	for _, members := range groups {
		for i, u := range members {
			if i == size-1 {
				_, cursor, r := s.poll(t, u.Token, "", 0)
				if r.Status != http.StatusOK {
					t.Fatal(r)
				}
				away[u.ID] = cursor
				continue
			}
			live[u.ID] = s.listen(t, u)
		}
	}
	for _, l := range live {
		l.waitConnected(t)
	}

	sent := newSendLog()
	perSender := 10 * soakScale()
	var wg sync.WaitGroup
	for g, members := range groups {
		for _, sender := range members[:2] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perSender; i++ {
					sent.send(t, s, sender.Token, threads[g], fmt.Sprintf("killed %d %s %d", g, sender.ID[len(sender.ID)-6:], i))
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	s.waitStreams(t)
	if k.kills.Load() == 0 {
		t.Fatal("no dispatch invocation was killed: the fault was not injected")
	}

	dups := 0
	for g, members := range groups {
		ids := sent.ids(threads[g])
		for _, u := range members {
			feed := s.feedMessages(t, u.ID, threads[g])
			for _, id := range ids {
				if !feed[id] {
					t.Errorf("%s's feed misses message %s", u.ID, id)
				}
			}
			l := live[u.ID]
			if l == nil {
				l = s.listenFrom(t, u, away[u.ID]) // back: resumes from where it left
			}
			l.waitAll(t, "every message of its thread", waitTime(), ids)
			requireExactlyOnce(t, l, threads[g], ids)
			if live[u.ID] != nil {
				sent.requireCausalOrder(t, l, threads[g])
			}
			dups += l.client.Duplicates()
		}
	}
	partners := requirePartnerMessageEvents(t, s, groups, threads, sent)
	st := s.Streams[0].Stats()
	if st.Retried == 0 || st.DeadLettered != 0 {
		t.Errorf("stream stats %+v: want retries and no dead letters", st)
	}
	totals := requireFaultMetrics(t, logs)
	t.Logf("%d messages, %d invocations killed, %d duplicate deliveries dropped by the clients, %s, stream %+v;%s",
		sent.len(), k.kills.Load(), dups, partners, st, fmtTotals(totals, obs.ServerErrors))
}

// sendLog records the messages a test sends, with when each send started
// and ended, for the causal-order check.
type sendLog struct {
	mu   sync.Mutex
	msgs map[msgKey]sentMessage
}

// msgKey names a message: ids are unique only within their thread.
type msgKey struct{ thread, id string }

type sentMessage struct {
	thread, sender, content string
	start, end              time.Time
}

func newSendLog() *sendLog { return &sendLog{msgs: map[msgKey]sentMessage{}} }

// send posts a message (without t.Fatal: it runs on worker goroutines).
func (l *sendLog) send(t *testing.T, s *testStack, token, thread, content string) string {
	start := time.Now()
	r, err := s.chat(token).Do(context.Background(), acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": content}})
	end := time.Now()
	var out struct{ ID string }
	if err != nil || r.Status != http.StatusCreated || r.JSON(&out) != nil || out.ID == "" {
		t.Errorf("send %q: %s %v", content, r, err)
		return ""
	}
	l.mu.Lock()
	l.msgs[msgKey{thread, out.ID}] = sentMessage{thread: thread, sender: token, content: content, start: start, end: end}
	l.mu.Unlock()
	return out.ID
}

func (l *sendLog) ids(thread string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k := range l.msgs {
		if k.thread == thread {
			out = append(out, k.id)
		}
	}
	return out
}

func (l *sendLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.msgs)
}

// requireCausalOrder checks the listener received the thread's messages
// in an order that respects causality: a message whose send had returned
// before another's began arrives first. (Concurrent sends may commit in
// either order; sequenceId is their order in the thread.) It returns how
// many arrived after a message with a higher sequenceId.
func (l *sendLog) requireCausalOrder(t *testing.T, ln *rtListener, thread string) (outOfSequence int) {
	t.Helper()
	evs, _ := ln.snapshot()
	var order []gotMessage
	for _, m := range messageEvents(evs, "chatMessageReceived") {
		if m.ThreadID == thread {
			order = append(order, m)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// laterEnd[i] is the earliest end among the messages arriving at or after i.
	laterEnd := make([]time.Time, len(order)+1)
	laterEnd[len(order)] = time.Now().Add(time.Hour)
	for i := len(order) - 1; i >= 0; i-- {
		laterEnd[i] = laterEnd[i+1]
		if e := l.msgs[msgKey{thread, order[i].ID}].end; !e.IsZero() && e.Before(laterEnd[i]) {
			laterEnd[i] = e
		}
	}
	var maxSeq int64
	for i, m := range order {
		if start := l.msgs[msgKey{thread, m.ID}].start; !start.IsZero() && laterEnd[i+1].Before(start) {
			t.Errorf("%s: message %s arrived before one whose send had returned before it was sent", ln.user.ID, m.ID)
		}
		if m.Seq < maxSeq {
			outOfSequence++
		}
		maxSeq = max(maxSeq, m.Seq)
	}
	return outOfSequence
}

// requirePartnerMessageEvents checks the bus got, for every message sent,
// exactly one ChatMessageReceivedInThread and one ChatMessageReceived per
// member other than the sender, each exactly once by eventId, every copy
// of an eventId the same event. It returns a summary for the log.
func requirePartnerMessageEvents(t *testing.T, s *testStack, groups [][]acsclient.User, threads map[int]string, sent *sendLog) string {
	t.Helper()
	got, total := s.partnerEvents(t)
	type key struct{ typ, thread, msg, recipient string }
	ids := map[key][]string{}
	for id, e := range got {
		if e.DetailType != "ChatMessageReceivedInThread" && e.DetailType != "ChatMessageReceived" {
			continue
		}
		var d struct{ ThreadID, MessageID string }
		_ = json.Unmarshal(e.Raw, &d)
		k := key{e.DetailType, d.ThreadID, d.MessageID, e.Recipient}
		ids[k] = append(ids[k], id)
	}
	want := map[key]bool{}
	for g, members := range groups {
		for _, id := range sent.ids(threads[g]) {
			want[key{"ChatMessageReceivedInThread", threads[g], id, ""}] = true
			sender := sent.msgs[msgKey{threads[g], id}].sender
			for _, u := range members {
				if u.Token != sender {
					want[key{"ChatMessageReceived", threads[g], id, u.ID}] = true
				}
			}
		}
	}
	for k := range want {
		if n := len(ids[k]); n != 1 {
			t.Errorf("%s of message %s (%s) for %q: %d eventIds, want exactly 1", k.typ, k.msg, k.thread, k.recipient, n)
		}
	}
	for k, v := range ids {
		if !want[k] {
			t.Errorf("unexpected %s of message %s (%s) for %q: %v", k.typ, k.msg, k.thread, k.recipient, v)
		}
	}
	// Repeats of one eventId carry the same event.
	details := map[string]string{}
	for _, e := range s.Bus.Events() {
		var d struct{ EventID string }
		_ = json.Unmarshal(e.Detail, &d)
		if prev, ok := details[d.EventID]; ok && prev != string(e.Detail) {
			t.Errorf("eventId %s was published with two different details:\n%s\n%s", d.EventID, prev, e.Detail)
		}
		details[d.EventID] = string(e.Detail)
	}
	return fmt.Sprintf("%d partner events (%d distinct eventIds, %d repeats)", total, len(got), total-len(got))
}

// loseDisconnect drops WsDisconnectFunction invocations while lose is set,
// as when API Gateway's $disconnect never arrives (it is best effort).
type loseDisconnect struct {
	Invoker
	lose atomic.Bool
	lost atomic.Int64
}

func (l *loseDisconnect) Invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	if fn == "WsDisconnectFunction" && l.lose.Load() {
		l.lost.Add(1)
		return nil, errors.New("injected: $disconnect lost")
	}
	return l.Invoker.Invoke(ctx, fn, payload)
}

// TestFaultPushGoneRemovesTheConnection: a connection that went away without
// its $disconnect stays registered until the first push to it, which API
// Gateway answers 410 GoneException: the dispatcher removes it then. The
// client, reconnected, misses nothing.
func TestFaultPushGoneRemovesTheConnection(t *testing.T) {
	logs := &lockedBuffer{}
	ld := &loseDisconnect{}
	s := startStack(t, withLogs(logs), func(c *Config) { c.Wrap = func(i Invoker) Invoker { ld.Invoker = i; return ld } })
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "gone", bob).ChatThread.ID
	bl := s.listen(t, bob)
	bl.waitConnected(t)
	first := s.send(t, alice.Token, thread, "before the drop")
	bl.waitAll(t, "the first message", waitTime(), []string{first})
	old := s.connectionIDs(t, bob.ID)
	if len(old) != 1 {
		t.Fatalf("bob's connections: %v, want one", old)
	}

	// The connection ends; its $disconnect is lost; the client reconnects.
	ld.lose.Store(true)
	if status := s.dropConnection(t, old[0]); status != http.StatusNoContent {
		t.Fatalf("DELETE @connections: %d", status)
	}
	var now []string
	deadline := time.Now().Add(20 * time.Second)
	for len(now) != 2 || ld.lost.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's connections %v (lost $disconnects %d): want the stale one and a new one", now, ld.lost.Load())
		}
		time.Sleep(20 * time.Millisecond)
		now = s.connectionIDs(t, bob.ID)
	}
	ld.lose.Store(false)

	second := s.send(t, alice.Token, thread, "after the drop")
	bl.waitAll(t, "the second message", waitTime(), []string{first, second})
	s.waitStreams(t)
	after := s.connectionIDs(t, bob.ID)
	if len(after) != 1 || after[0] == old[0] {
		t.Errorf("bob's connections after the push: %v, want only the new one (the stale %s removed on 410)", after, old[0])
	}
	requireExactlyOnce(t, bl, thread, []string{first, second})
	totals := requireFaultMetrics(t, logs)
	t.Logf("stale connection %s removed; reconnects %d;%s", old[0], bl.closes.Load(), fmtTotals(totals, obs.PushesGone, obs.PushesDelivered))
}

// pushAttempts is how many attempts the @connections client makes of a
// post (the SDK's default, 3: it retries 5xx and throttling itself).
const pushAttempts = 3

// failingPushes is a PushFault: the first push (each of its attempts) of
// every event whose message holds marker fails with a 500; pushed again
// later (a resume), the event goes through.
type failingPushes struct {
	marker string
	mu     sync.Mutex
	failed map[string]int // posts failed, by event id
}

func newFailingPushes(marker string) *failingPushes {
	return &failingPushes{marker: marker, failed: map[string]int{}}
}

func (p *failingPushes) fault(_ string, data []byte) int {
	var f struct {
		ID   string
		Data struct{ Message string }
	}
	if json.Unmarshal(data, &f) != nil || !strings.Contains(f.Data.Message, p.marker) {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed[f.ID] == pushAttempts {
		return 0
	}
	p.failed[f.ID]++
	return http.StatusInternalServerError
}

// count is how many pushes failed after the SDK's retries.
func (p *failingPushes) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.failed {
		n += c / pushAttempts
	}
	return n
}

// TestFaultPushFailureLosesNothing: PostToConnection fails with a 500 for
// some events (the connection itself is fine). They are in the feed, and
// the client gets them when it resumes — even when later events did reach
// it, and more than realtime.Settle later, so its cursor had moved past
// the missed ones by more than a resume reaches back.
func TestFaultPushFailureLosesNothing(t *testing.T) {
	logs := &lockedBuffer{}
	pushes := newFailingPushes("[push fails]")
	s := startStack(t, withLogs(logs), func(c *Config) { c.PushFault = pushes.fault })
	failures := pushes.count
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "push failures", bob).ChatThread.ID
	bl := s.listen(t, bob)
	bl.waitConnected(t)
	before := s.send(t, alice.Token, thread, "before")
	bl.waitAll(t, "the first message", waitTime(), []string{before})

	missed := s.send(t, alice.Token, thread, "[push fails] missed")
	sentAt := time.Now()
	s.waitStreams(t)
	if failures() != 1 {
		t.Fatalf("%d pushes failed, want 1: the fault was not injected", failures())
	}
	// Let the missed event's position fall more than Settle behind, then
	// deliver a later one: the client's cursor moves to it.
	time.Sleep(time.Until(sentAt.Add(realtime.Settle + 300*time.Millisecond)))
	after := s.send(t, alice.Token, thread, "after")
	bl.waitAll(t, "the later message", waitTime(), []string{after})
	// A burst, a third of whose pushes fail.
	var burst []string
	for i := 0; i < 9; i++ {
		content := fmt.Sprintf("burst %d", i)
		if i%3 == 0 {
			content = "[push fails] " + content
		}
		burst = append(burst, s.send(t, alice.Token, thread, content))
	}
	s.waitStreams(t)
	// Sooner or later the client reconnects (API Gateway closes every
	// connection within 2 h); here, now.
	for _, id := range s.connectionIDs(t, bob.ID) {
		s.dropConnection(t, id)
	}
	all := append([]string{before, missed, after}, burst...)
	bl.waitAll(t, "every message, the failed pushes included", waitTime(), all)
	requireExactlyOnce(t, bl, thread, all)
	totals := requireFaultMetrics(t, logs)
	t.Logf("%d pushes failed; bob reconnected %d times, %d duplicates dropped;%s", failures(), bl.closes.Load(), bl.client.Duplicates(),
		fmtTotals(totals, obs.PushesFailed, obs.PushesDelivered))
}

// TestFaultReplayPushFailureLosesNothing: pushes of a replay fail. The
// events were sent while the client was offline, so the replay makes their
// first pushes, and a resume frame's replay can fail as well as the one the
// connect URL asks for. The server closes the connection, as for a failed
// live push, and the client resumes again from its cursor. Left open, the
// connection never finished the replay: the client waited for "resumed",
// asked once more and then missed every event after the second failure.
func TestFaultReplayPushFailureLosesNothing(t *testing.T) {
	pushes := newFailingPushes("[push fails]")
	s := startStack(t, func(c *Config) { c.PushFault = pushes.fault })
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "replay push failures", bob).ChatThread.ID
	_, cursor, r := s.poll(t, bob.Token, "", 0)
	if r.Status != http.StatusOK {
		t.Fatalf("long poll: %s", r)
	}
	var sent []string
	for _, content := range []string{"[push fails] first", "second", "[push fails] third", "fourth"} {
		sent = append(sent, s.send(t, alice.Token, thread, content))
	}
	s.waitStreams(t)
	bl := s.listenFrom(t, bob, cursor)
	bl.waitAll(t, "every message, the failed replay pushes included", waitTime(), sent)
	requireExactlyOnce(t, bl, thread, sent)
	if n := pushes.count(); n != 2 {
		t.Errorf("%d pushes failed, want 2: the faults did not reach the replays", n)
	}
	if n := bl.closes.Load(); n < 2 {
		t.Errorf("bob reconnected %d times, want at least 2 (once after each failed replay)", n)
	}
	t.Logf("%d replay pushes failed; bob reconnected %d times, %d duplicates dropped", pushes.count(), bl.closes.Load(), bl.client.Duplicates())
}

// TestFaultPartnerEventsRejectedUnderLoad extends
// TestRejectedEntriesArriveExactlyOnce (events_e2e_test.go, first attempts
// refused on one small chat) to load and to record-level retries: the bus
// refuses 40 % of all attempts, and every attempt of the events of some
// messages until the publisher gives up, so their stream records fail and
// are retried (bisecting batches, republishing what had gone through).
// Every partner event still arrives exactly once by eventId.
func TestFaultPartnerEventsRejectedUnderLoad(t *testing.T) {
	const stubborn = "[bus refuses 4 times]"
	s := startStack(t, func(c *Config) {
		c.EventReject = func(e eventbus.Entry, attempt int) bool {
			if attempt >= 6 {
				return false // so the retries always get there
			}
			if strings.Contains(e.Detail, stubborn) {
				return attempt < 4 // the publisher's 4 attempts: the record fails once
			}
			h := fnv.New32a()
			h.Write([]byte(e.Detail))
			h.Write([]byte{byte(attempt)})
			return h.Sum32()%10 < 4
		}
	})
	users := s.users(t, 9)
	const size = 3
	var groups [][]acsclient.User
	threads := map[int]string{}
	for g := 0; g < 3; g++ {
		members := users[g*size : (g+1)*size]
		groups = append(groups, members)
		threads[g] = s.createThread(t, members[0].Token, fmt.Sprintf("bus %d", g), members[1:]...).ChatThread.ID
	}
	sent := newSendLog()
	perThread := 10 * soakScale()
	var wg sync.WaitGroup
	for g, members := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perThread; i++ {
				content := fmt.Sprintf("bus %d-%d", g, i)
				if i%5 == 2 {
					content += " " + stubborn
				}
				sent.send(t, s, members[i%size].Token, threads[g], content)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	summary := requirePartnerMessageEvents(t, s, groups, threads, sent)
	created := countTypes(mapOf(s, t))
	if created["ChatThreadCreated"] != len(groups) || created["ChatThreadCreatedWithUser"] != len(groups)*(size-1) {
		t.Errorf("thread events %v, want %d ChatThreadCreated and %d ChatThreadCreatedWithUser", created, len(groups), len(groups)*(size-1))
	}
	bus, st := s.Bus.Stats(), s.Streams[0].Stats()
	if bus.Rejected == 0 || st.Retried == 0 {
		t.Errorf("bus %+v, stream %+v: the faults did not reach the records", bus, st)
	}
	if st.DeadLettered != 0 {
		t.Errorf("%d records dead-lettered; the retries should have delivered them all", st.DeadLettered)
	}
	t.Logf("%d messages; %s; bus %+v; stream %+v", sent.len(), summary, bus, st)
}

func mapOf(s *testStack, t *testing.T) map[string]partnerEvent {
	got, _ := s.partnerEvents(t)
	return got
}
