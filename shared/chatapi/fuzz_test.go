package chatapi_test

// Fuzz targets for every chat operation, end to end through apigw.HTTP, the
// entry point API Gateway calls: body, query string, path parameters,
// headers and the caller are fuzzed; the stores are the in-memory fzStore.
//
// Properties, for every input:
//   - no panic, and the Lambda handler returns no error;
//   - the status is the operation's one success status (the SDKs throw on
//     any other 2xx) or a 4xx; never a 5xx for anything a client controls;
//   - a body is JSON with Content-Type application/json; a 4xx body is
//     {"error":{"code","message"}} with both non-empty (so is innererror
//     when present), and a 401 carries WWW-Authenticate;
//   - a refused request writes nothing, and nothing stored breaks a limit
//     docs/api.md promises (see fzStore);
//   - a list's nextLink names this API and, requested verbatim as the SDKs
//     do, answers 200.
//
// Short runs: go test ./shared/chatapi -run '^$' -fuzz '^FuzzSendMessage$' -fuzztime 10s

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/apigw/apigwtest"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/sanitize"
)

var fzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func fzUser(n int) string {
	return fmt.Sprintf("8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-%012d", n)
}

var (
	fzMe    = fzUser(1)
	fzAlice = fzUser(2)
	fzBob   = fzUser(3)
	fzCarol = fzUser(4)
	fzDave  = fzUser(5) // an identity in no thread
	fzGhost = fzUser(99)
)

// fzThreadID is a thread id as chat.NewThreadID makes them, with fixed
// instead of random bytes, so seeds name the same threads on every run.
func fzThreadID(created time.Time, n byte) string {
	var b [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(created.UnixMilli()))
	copy(b[:6], ms[2:])
	for i := 6; i < 16; i++ {
		b[i] = n
	}
	return "19:" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])) + "@thread.v2"
}

// The seeded threads: the caller "me" is a member of live, deleted and
// expired, was removed from removed, and never was in foreign.
var (
	fzLiveCreated = fzNow.Add(-48 * time.Hour)
	fzLive        = fzThreadID(fzLiveCreated, 1)
	fzDeleted     = fzThreadID(fzNow.Add(-24*time.Hour), 2)
	fzRemoved     = fzThreadID(fzNow.Add(-24*time.Hour), 3)
	fzExpired     = fzThreadID(fzNow.Add(-40*24*time.Hour), 4)
	fzForeign     = fzThreadID(fzNow.Add(-24*time.Hour), 5)
)

// fzMsg is the public id of a message of the live thread.
func fzMsg(seq int64) string { return chat.MessageID(fzLive, seq) }

func fzEncoded(id string) string { return strings.NewReplacer(":", "%3A", "@", "%40").Replace(id) }

func fzMember(u string, joined time.Time, seq int64) chat.Participant {
	return chat.Participant{UserID: u, JoinedOn: joined, JoinedSeq: seq}
}

// fzSimpleThread is a thread with its two creation messages.
func fzSimpleThread(id string, created time.Time, members ...chat.Participant) (chat.Thread, []chat.Participant, []chat.Message) {
	t := chat.Thread{ID: id, Topic: "t", CreatedOn: created, CreatedBy: members[0].UserID, LastMessageAt: created, Seq: 2, Members: len(members)}
	ms := []chat.Message{
		{Seq: 1, Type: chat.TypeParticipantAdded, Participants: members, InitiatorID: members[0].UserID, CreatedOn: created, Version: created.UnixMilli()},
		{Seq: 2, Type: chat.TypeTopicUpdated, Topic: "t", InitiatorID: members[0].UserID, CreatedOn: created, Version: created.UnixMilli()},
	}
	return t, members, ms
}

// fzWorld is one fresh set of stores and handlers; each fuzz input gets its
// own, so inputs cannot influence each other and every failure replays.
type fzWorld struct {
	st   *fzStore
	api  *chatapi.API
	poll apigw.Handler
}

func newFzWorld() *fzWorld {
	clock := func() time.Time { return fzNow }
	st := newFzStore(clock, fzMe, fzAlice, fzBob, fzCarol, fzDave)

	c := fzLiveCreated
	at := func(h int) time.Time { return c.Add(time.Duration(h) * time.Hour) }
	me, alice := fzMember(fzMe, c, 1), fzMember(fzAlice, c, 1)
	alice.DisplayName = "Alice"
	bob := fzMember(fzBob, c, 1)
	bob.RemovedOn, bob.RemovedSeq = at(3), 6
	carol := fzMember(fzCarol, at(4), 7)
	carol.ShareHistoryTime = c.Add(90 * time.Minute)
	bobAtRemoval := fzMember(fzBob, c, 1)
	st.seed(chat.Thread{
		ID: fzLive, Topic: "Lunch", CreatedOn: c, CreatedBy: fzMe, Metadata: map[string]string{"project": "x"},
		Retention: chat.Retention{Kind: chat.RetentionNone}, LastMessageAt: at(4), Seq: 7, Rev: 1, Members: 3,
	}, []chat.Participant{me, alice, bob, carol}, []chat.Message{
		{Seq: 1, Type: chat.TypeParticipantAdded, Participants: []chat.Participant{me, alice, bobAtRemoval}, InitiatorID: fzMe, CreatedOn: c, Version: c.UnixMilli()},
		{Seq: 2, Type: chat.TypeTopicUpdated, Topic: "Lunch", InitiatorID: fzMe, CreatedOn: c, Version: c.UnixMilli()},
		{Seq: 3, Type: chat.TypeText, SenderID: fzMe, SenderDisplayName: "Me", Body: "hello", CreatedOn: at(1), Version: at(1).UnixMilli(), Metadata: map[string]string{"k": "v"}},
		{Seq: 4, Type: chat.TypeHTML, SenderID: fzAlice, Body: "<b>hi</b>", CreatedOn: at(2), Version: at(2).UnixMilli()},
		{Seq: 5, Type: chat.TypeText, SenderID: fzMe, CreatedOn: at(2), DeletedOn: c.Add(150 * time.Minute), Version: c.Add(150 * time.Minute).UnixMilli()},
		{Seq: 6, Type: chat.TypeParticipantRemoved, Participants: []chat.Participant{bobAtRemoval}, InitiatorID: fzMe, CreatedOn: at(3), Version: at(3).UnixMilli()},
		{Seq: 7, Type: chat.TypeParticipantAdded, Participants: []chat.Participant{carol}, InitiatorID: fzAlice, CreatedOn: at(4), Version: at(4).UnixMilli()},
	})
	st.seedReceipt(fzLive, chat.Receipt{UserID: fzAlice, Seq: 3, ReadOn: at(1), MessageCreatedOn: at(1)})
	st.seedReceipt(fzLive, chat.Receipt{UserID: fzMe, Seq: 4, ReadOn: at(2), MessageCreatedOn: at(2)})

	day := fzNow.Add(-24 * time.Hour)
	t, ps, ms := fzSimpleThread(fzDeleted, day, fzMember(fzMe, day, 1), fzMember(fzAlice, day, 1))
	t.DeletedOn = fzNow.Add(-time.Hour)
	st.seed(t, ps, ms)

	t, ps, ms = fzSimpleThread(fzRemoved, day, fzMember(fzAlice, day, 1), fzMember(fzMe, day, 1))
	ps[1].RemovedOn, ps[1].RemovedSeq = day.Add(time.Hour), 3
	ms = append(ms, chat.Message{Seq: 3, Type: chat.TypeParticipantRemoved, Participants: []chat.Participant{fzMember(fzMe, day, 1)}, InitiatorID: fzAlice, CreatedOn: day.Add(time.Hour), Version: day.Add(time.Hour).UnixMilli()})
	t.Seq, t.Members = 3, 1
	st.seed(t, ps, ms)

	old := fzNow.Add(-40 * 24 * time.Hour)
	t, ps, ms = fzSimpleThread(fzExpired, old, fzMember(fzMe, old, 1))
	t.Retention = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
	st.seed(t, ps, ms)

	st.seed(fzSimpleThread(fzForeign, day, fzMember(fzAlice, day, 1), fzMember(fzBob, day, 1)))

	w := &fzWorld{st: st}
	w.api = &chatapi.API{Chat: &chat.Service{
		Threads: st, Users: st, Requests: st, Messages: st, Participants: st, Receipts: st, Typing: fzTyping{}, HTML: sanitize.HTML(), Now: clock,
	}, Now: clock}

	// The long poll reads a feed whose clock moves a minute per look, so a
	// poll never waits in real time.
	var mu sync.Mutex
	step := fzNow
	stepping := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		step = step.Add(time.Minute)
		return step
	}
	feed := &fzFeed{st: st, entries: []realtime.FeedEntry{
		{UserID: fzMe, Pos: fzNow.Add(-time.Hour).UnixMilli(), EventID: "e_aaaaaaaaaaaaaaaaaaaaaa", Type: realtime.TypeMessageReceived, ThreadID: fzLive, At: at(1), Seq: 3},
		{UserID: fzMe, Pos: fzNow.Add(-time.Minute).UnixMilli(), EventID: "e_bbbbbbbbbbbbbbbbbbbbbb", Type: realtime.TypeThreadUpdated, ThreadID: fzLive, At: fzNow.Add(-time.Minute), Data: json.RawMessage(`{"version":"1"}`)},
		{UserID: fzMe, Pos: fzNow.Add(-30 * time.Second).UnixMilli(), EventID: "e_cccccccccccccccccccccc", Type: realtime.TypeMessageReceived, ThreadID: fzDeleted, At: fzNow, Seq: 9},
	}}
	reader := &realtime.Reader{Feed: feed, Messages: feed, Retention: 24 * time.Hour, Now: stepping}
	w.poll = chatapi.PollEvents(reader, clock)
	return w
}

// fzFeed is a realtime.FeedStore and MessageReader over fixed entries, with
// the real feed table's keys: F#<user> / %013d#<event id>.
type fzFeed struct {
	st      *fzStore
	entries []realtime.FeedEntry // sorted by (Pos, EventID)
}

func (f *fzFeed) Append(context.Context, []realtime.FeedEntry) error {
	return fmt.Errorf("fzFeed: reads only")
}

func (f *fzFeed) Read(_ context.Context, userID string, after realtime.FeedKey, limit int) ([]realtime.FeedEntry, error) {
	if err := fzKey("F#"+userID, fmt.Sprintf("%013d#%s", after.Pos, after.EventID)); err != nil {
		return nil, err
	}
	var out []realtime.FeedEntry
	for _, e := range f.entries {
		if e.UserID != userID || e.Pos < after.Pos || (e.Pos == after.Pos && e.EventID <= after.EventID) {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

func (f *fzFeed) MessagesByKey(_ context.Context, keys []realtime.MessageKey) (map[realtime.MessageKey]chat.Message, error) {
	f.st.mu.Lock()
	defer f.st.mu.Unlock()
	out := map[realtime.MessageKey]chat.Message{}
	for _, k := range keys {
		if i := f.st.msgIndex(k.ThreadID, k.Seq); i >= 0 {
			out[k] = cloneFzMessage(f.st.msgs[k.ThreadID][i])
		}
	}
	return out, nil
}

// fzCaller picks who calls: the authorizer's verdict as API Gateway passes it.
func fzCaller(sel uint8) map[string]any {
	valid := func(user, scopes string) map[string]any {
		return map[string]any{"userId": user, "scopes": scopes, "expires": strconv.FormatInt(fzNow.Add(time.Hour).Unix(), 10)}
	}
	switch sel % 10 {
	case 1:
		return valid(fzMe, "chat.join")
	case 2:
		return valid(fzMe, "chat.join.limited")
	case 3:
		return valid(fzMe, "voip")
	case 4:
		return valid(fzAlice, "chat")
	case 5:
		return valid(fzBob, "chat,voip")
	case 6:
		return valid(fzCarol, "chat")
	case 7:
		return map[string]any{"authError": "TokenRevoked", "authMessage": "The access token was revoked."}
	case 8:
		return map[string]any{}
	case 9:
		return map[string]any{"userId": fzMe, "scopes": "chat", "expires": strconv.FormatInt(fzNow.Add(-time.Second).Unix(), 10)}
	default:
		return valid(fzMe, "chat")
	}
}

// fzOp is one operation under test.
type fzOp struct {
	method, route string // route key, as template.yaml names it
	handler       func(w *fzWorld) apigw.Handler
	success       int
	successBody   bool
	check         func(t *testing.T, resp events.APIGatewayV2HTTPResponse) // extra checks of a success
	paged         bool                                                     // a list whose nextLink must work
}

// fzInput is one fuzzed request. Every target takes the same arguments (in
// this order), so one driver serves them all.
type fzInput struct {
	caller      uint8
	query       string // raw query string
	threadID    string // the chatThreadId path parameter
	messageID   string // the chatMessageId path parameter
	requestID   string // repeatability-request-id ("" for none)
	contentType string // "" for none
	body        string
	bodyMode    uint8 // 0: as text; 1: base64-encoded by the gateway; 2: flagged base64 but sent as is
}

func (in fzInput) add(f *testing.F) {
	f.Add(in.caller, in.query, in.threadID, in.messageID, in.requestID, in.contentType, in.body, in.bodyMode)
}

// event builds what API Gateway hands the function. Text fields of a Lambda
// event are JSON strings, so they arrive as valid UTF-8 whatever the client
// sent; only a base64 body carries arbitrary bytes.
func (in fzInput) event(op fzOp) events.APIGatewayV2HTTPRequest {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	params := map[string]string{}
	path := op.route
	if strings.Contains(op.route, "{chatThreadId}") {
		params["chatThreadId"] = valid(in.threadID)
		path = strings.ReplaceAll(path, "{chatThreadId}", params["chatThreadId"])
	}
	if strings.Contains(op.route, "{chatMessageId}") {
		params["chatMessageId"] = valid(in.messageID)
		path = strings.ReplaceAll(path, "{chatMessageId}", params["chatMessageId"])
	}
	headers := map[string]string{"host": "chat.example.test", "accept": "application/json"}
	if in.requestID != "" {
		headers["repeatability-request-id"] = valid(in.requestID)
	}
	if in.contentType != "" {
		headers["content-type"] = valid(in.contentType)
	}
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey:       op.method + " " + op.route,
		RawPath:        path,
		RawQueryString: valid(in.query),
		Headers:        headers,
		PathParameters: params,
		Body:           valid(in.body),
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID:  "fuzz-request",
			DomainName: "chat.example.test",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: op.method, Path: path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: fzCaller(in.caller)},
		},
	}
	switch in.bodyMode % 3 {
	case 1:
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(in.body)), true
	case 2:
		ev.IsBase64Encoded = true
	}
	return ev
}

var fzLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// fzRun serves one input on a fresh world and checks every property.
func fzRun(t *testing.T, op fzOp, in fzInput) {
	w := newFzWorld()
	resp, err := apigw.HTTP("fuzz", fzLog, op.handler(w))(context.Background(), in.event(op))
	if err != nil {
		t.Fatalf("the Lambda handler returned an error: %v", err)
	}
	writes, violations := w.st.state()
	for _, v := range violations {
		t.Errorf("stored data that breaks a documented limit: %s", v)
	}
	switch s := resp.StatusCode; {
	case s == op.success:
		fzCheckSuccess(t, op, resp)
		if op.paged {
			fzFollow(t, op, w, in, resp)
		}
	case s >= 400 && s < 500:
		apigwtest.RequireACSError(t, resp)
		if writes != 0 {
			t.Errorf("a refused request (%d %s) made %d writes", s, resp.Body, writes)
		}
	default:
		t.Fatalf("status %d %s; want %d or a 4xx", s, resp.Body, op.success)
	}
}

// fzFollow requests a page's nextLink the way the SDKs do, verbatim: it
// must name this API and answer 200.
func fzFollow(t *testing.T, op fzOp, w *fzWorld, in fzInput, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	var page struct {
		NextLink string `json:"nextLink"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || page.NextLink == "" {
		return
	}
	u, err := url.Parse(page.NextLink)
	if err != nil || u.Scheme != "https" || u.Host != "chat.example.test" || u.Query().Get("api-version") == "" {
		t.Fatalf("nextLink %q (%v)", page.NextLink, err)
	}
	next := in
	next.query = u.RawQuery
	if strings.Contains(op.route, "{chatThreadId}") {
		// API Gateway hands the function the decoded path segment.
		segs := strings.Split(u.EscapedPath(), "/")
		if len(segs) < 4 {
			t.Fatalf("nextLink %q names no thread", page.NextLink)
		}
		if next.threadID, err = url.PathUnescape(segs[3]); err != nil {
			t.Fatalf("nextLink %q: %v", page.NextLink, err)
		}
	}
	again, err := apigw.HTTP("fuzz", fzLog, op.handler(w))(context.Background(), next.event(op))
	if err != nil || again.StatusCode != op.success {
		t.Fatalf("nextLink %q answered %d %s (%v); want %d", page.NextLink, again.StatusCode, again.Body, err, op.success)
	}
}

func fzCheckSuccess(t *testing.T, op fzOp, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	if !op.successBody {
		if resp.Body != "" {
			t.Errorf("%d has a body: %q", resp.StatusCode, resp.Body)
		}
		return
	}
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q; want application/json", ct)
	}
	if !utf8.ValidString(resp.Body) || !json.Valid([]byte(resp.Body)) {
		t.Fatalf("body is not JSON: %q", resp.Body)
	}
	if op.check != nil {
		op.check(t, resp)
	}
}

func fzFuzz(f *testing.F, op fzOp, seeds []fzInput) {
	for _, s := range seeds {
		s.add(f)
	}
	f.Fuzz(func(t *testing.T, caller uint8, query, threadID, messageID, requestID, contentType, body string, bodyMode uint8) {
		fzRun(t, op, fzInput{caller, query, threadID, messageID, requestID, contentType, body, bodyMode})
	})
}

const fzV = "api-version=2025-03-15"

// fzCommon are seeds every operation gets: the usual request and the ways
// its envelope goes wrong.
func fzCommon(thread, message, body string) []fzInput {
	return []fzInput{
		{caller: 0, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 0, query: fzV, threadID: fzEncoded(thread), messageID: message, body: body, contentType: "application/json"},
		{caller: 0, query: fzV, threadID: thread, messageID: message, body: body, bodyMode: 1},
		{caller: 0, query: fzV, threadID: thread, messageID: message, body: "%%%not base64", bodyMode: 2},
		{caller: 0, query: "", threadID: thread, messageID: message, body: body},
		{caller: 0, query: "api-version=2020-01-01", threadID: thread, messageID: message, body: body},
		{caller: 0, query: "api-version=2025-03-15&api-version=2024-03-07", threadID: thread, messageID: message, body: body},
		{caller: 0, query: "a=%zz&" + fzV, threadID: thread, messageID: message, body: body},
		{caller: 0, query: fzV + ";x=1", threadID: thread, messageID: message, body: body},
		{caller: 1, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 2, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 3, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 4, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 5, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 6, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 7, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 8, query: fzV, threadID: thread, messageID: message, body: body},
		{caller: 9, query: fzV, threadID: thread, messageID: message, body: body},
	}
}

// fzThreads are seeds naming every kind of thread, and ids that are none.
func fzThreads(message, body string) []fzInput {
	var out []fzInput
	for _, id := range []string{fzLive, fzDeleted, fzRemoved, fzExpired, fzForeign, fzThreadID(fzNow, 9),
		"", "19:", "19:abc@thread.v2", "19%3Amockthread_abc123%40thread.v2", "19:a b/c?d#e%f+g@thread.v2",
		"19%253A" + strings.TrimPrefix(fzEncoded(fzLive), "19%3A"), strings.ToUpper(fzLive), fzLive + " ", "%", "%ZZ"} {
		out = append(out, fzInput{caller: 0, query: fzV, threadID: id, messageID: message, body: body})
	}
	return out
}

// fzBodies are seeds with each body, sent to the live thread.
func fzBodies(message string, bodies ...string) []fzInput {
	var out []fzInput
	for _, b := range bodies {
		out = append(out, fzInput{caller: 0, query: fzV, threadID: fzLive, messageID: message, body: b})
	}
	return out
}

// fzMalformed are bodies every JSON operation must refuse cleanly.
var fzMalformed = []string{
	"", " ", "null", "[]", "0", `""`, "{", `{"a":1}{"b":2}`, `{"a":1} x`, "\xff\xfe{}", `{"a":"\ud800"}`,
	`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`,
}

func fzAll(groups ...[]fzInput) []fzInput {
	var out []fzInput
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func fzWithQuery(thread string, queries ...string) []fzInput {
	var out []fzInput
	for _, q := range queries {
		out = append(out, fzInput{caller: 0, query: q, threadID: thread})
	}
	return out
}

// fzPageQueries exercise maxPageSize, skip and startTime.
var fzPageQueries = []string{
	"maxPageSize=0&skip=0&" + fzV, "maxPageSize=1&" + fzV, "maxPageSize=200&" + fzV, "maxPageSize=201&" + fzV,
	"maxPageSize=-1&" + fzV, "maxPageSize=abc&" + fzV, "maxPageSize=99999999999999999999&" + fzV, "maxPageSize=1e3&" + fzV,
	"maxPageSize=%2B5&" + fzV, "maxPageSize=&" + fzV, "skip=1&" + fzV, "skip=-1&" + fzV, "skip=9223372036854775807&" + fzV,
	"skip=abc&" + fzV, "maxPageSize=2&skip=2&" + fzV,
	fzV + "&startTime=2025-01-01T00%3A00%3A00.000Z", fzV + "&startTime=0", fzV + "&startTime=2025-01-01T00:00:00",
	fzV + "&startTime=9999-12-31T23%3A59%3A59.999999999Z", fzV + "&startTime=0001-01-01T00%3A00%3A00Z",
	fzV + "&startTime=2025-01-01T00%3A00%3A00%2B14%3A00", fzV + "&startTime=yesterday",
	"maxPageSize=1&" + fzV + "&startTime=0000-01-01T00%3A00%3A00%2B14%3A00", "maxPageSize=1&skip=1&" + fzV + "&startTime=2025-05-01T00%3A00%3A00Z",
	fzV + "&syncState=" + base64.RawURLEncoding.EncodeToString([]byte("m1|3")),
	fzV + "&syncState=" + base64.RawURLEncoding.EncodeToString([]byte("m1|0")),
	fzV + "&syncState=" + base64.RawURLEncoding.EncodeToString([]byte("t1|1|1|"+fzLive)),
	fzV + "&syncState=" + base64.RawURLEncoding.EncodeToString([]byte("t1|x|1|"+fzLive)), fzV + "&syncState=%%%",
}

// Every operation, as template.yaml routes them.

func fzRequestIDs(thread, body string) []fzInput {
	var out []fzInput
	for _, id := range []string{"9c1f0c2a-2f5e-4a51-8c7e-3f6b6d7a0c11", " ", "|", "a|b|c", strings.Repeat("r", 200), strings.Repeat("x", 3000)} {
		out = append(out, fzInput{caller: 0, query: fzV, threadID: thread, requestID: id, body: body, contentType: "application/json"})
	}
	return out
}

var fzCreateThread = fzOp{method: "POST", route: "/chat/threads", success: 201, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.CreateThread },
	check: func(t *testing.T, resp events.APIGatewayV2HTTPResponse) {
		var out struct {
			ChatThread struct {
				ID string `json:"id"`
			} `json:"chatThread"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || !chat.ValidThreadID(out.ChatThread.ID) {
			t.Errorf("created thread id = %q (%v)", out.ChatThread.ID, err)
		}
		if loc := resp.Headers["Location"]; !strings.HasPrefix(loc, "https://chat.example.test/chat/threads/") {
			t.Errorf("Location = %q", loc)
		}
	}}

func FuzzCreateThread(f *testing.F) {
	p := func(id string, extra string) string {
		return `{"communicationIdentifier":{"rawId":"` + id + `","communicationUser":{"id":"` + id + `"}}` + extra + `}`
	}
	full := `{"topic":"Lunch","participants":[` + p(fzMe, `,"displayName":"Alice"`) + `,` +
		p(fzBob, `,"displayName":"Bob","shareHistoryTime":"2025-01-01T00:00:00.000Z","metadata":{"role":"guest"}`) +
		`],"metadata":{"project":"x","another key":"v"},"retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":40}}`
	fzFuzz(f, fzCreateThread, fzAll(fzCommon("", "", `{"topic":"Min"}`), fzRequestIDs("", full), fzBodies("", fzMalformed...), fzBodies("",
		full, `{"topic":"Min"}`, `{"topic":null}`, `{"topic":""}`, `{"topic":"  "}`, `{"topic":5}`, `{"topic":"`+strings.Repeat("é", 251)+`"}`,
		`{"topic":"t","participants":null}`, `{"topic":"t","participants":{}}`, `{"topic":"t","participants":[{}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"rawId":"4:+14255550123","phoneNumber":{"value":"+14255550123"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"rawId":"8:orgid:x","microsoftTeamsUser":{"userId":"x","cloud":"public"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"rawId":"28:orgid:a","microsoftTeamsApp":{"appId":"a"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"communicationUser":{"id":"`+fzGhost+`"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"communicationUser":{"id":"x"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"communicationUser":{"id":"`+strings.Repeat("u", 2100)+`"}}}]}`,
		`{"topic":"t","participants":[{"communicationIdentifier":{"rawId":"`+fzAlice+`","communicationUser":{"id":"`+fzBob+`"}}}]}`,
		`{"topic":"t","participants":[`+p(fzAlice, `,"displayName":"`+strings.Repeat("n", 300)+`"`)+`]}`,
		`{"topic":"t","participants":[`+p(fzAlice, `,"shareHistoryTime":"yesterday"`)+`]}`,
		`{"topic":"t","participants":[`+p(fzAlice, `,"shareHistoryTime":5`)+`]}`,
		`{"topic":"t","participants":[`+p(fzAlice, `,"metadata":{"":"x"}`)+`]}`,
		`{"topic":"t","participants":[`+strings.Repeat(p(fzAlice, "")+",", 200)+p(fzBob, "")+`]}`,
		`{"topic":"t","metadata":{"k":"`+strings.Repeat("x", 1100)+`"}}`, `{"topic":"t","metadata":{"":"v"}}`, `{"topic":"t","metadata":{"k":1}}`,
		`{"topic":"t","retentionPolicy":{"kind":"none"}}`, `{"topic":"t","retentionPolicy":{"kind":"threadCreationDate"}}`,
		`{"topic":"t","retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":91}}`,
		`{"topic":"t","retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":1e100}}`,
		`{"topic":"t","retentionPolicy":{"kind":"forever"}}`, `{"topic":"t","retentionPolicy":null}`, `{"topic":"t","retentionPolicy":[]}`,
	)))
}

var fzGetThread = fzOp{method: "GET", route: "/chat/threads/{chatThreadId}", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.GetThread }}

func FuzzGetThread(f *testing.F) {
	fzFuzz(f, fzGetThread, fzAll(fzCommon(fzLive, "", ""), fzThreads("", "")))
}

var fzListThreads = fzOp{paged: true, method: "GET", route: "/chat/threads", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.ListThreads }}

func FuzzListThreads(f *testing.F) {
	fzFuzz(f, fzListThreads, fzAll(fzCommon("", "", ""), fzWithQuery("", fzPageQueries...)))
}

var fzUpdateThread = fzOp{method: "PATCH", route: "/chat/threads/{chatThreadId}", success: 204,
	handler: func(w *fzWorld) apigw.Handler { return w.api.UpdateThread }}

func FuzzUpdateThread(f *testing.F) {
	fzFuzz(f, fzUpdateThread, fzAll(fzCommon(fzLive, "", `{"topic":"new"}`), fzThreads("", `{"topic":"new"}`), fzBodies("", fzMalformed...), fzBodies("",
		`{}`, `{"topic":"new"}`, `{"topic":null}`, `{"topic":""}`, `{"topic":5}`, `{"topic":"Lunch"}`,
		`{"metadata":null}`, `{"metadata":{"project":null,"c":"3"}}`, `{"metadata":"x"}`, `{"metadata":{"a":1}}`, `{"metadata":{"":"x"}}`,
		`{"metadata":{"k":"`+strings.Repeat("x", 1100)+`"}}`, `{"retentionPolicy":null}`, `{"retentionPolicy":{"kind":"none"}}`,
		`{"retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":30}}`, `{"retentionPolicy":{"kind":"threadCreationDate"}}`,
		`{"retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":-1}}`, `{"retentionPolicy":5}`, `{"retentionPolicy":{"kind":"x"}}`,
		`{"topic":"a","metadata":{"x":"y"},"retentionPolicy":{"kind":"none"}}`,
	)))
}

var fzDeleteThread = fzOp{method: "DELETE", route: "/chat/threads/{chatThreadId}", success: 204,
	handler: func(w *fzWorld) apigw.Handler { return w.api.DeleteThread }}

func FuzzDeleteThread(f *testing.F) {
	fzFuzz(f, fzDeleteThread, fzAll(fzCommon(fzLive, "", ""), fzThreads("", "")))
}

var fzSendMessage = fzOp{method: "POST", route: "/chat/threads/{chatThreadId}/messages", success: 201, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.SendMessage },
	check: func(t *testing.T, resp events.APIGatewayV2HTTPResponse) {
		var out struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
			t.Fatal(err)
		}
		if _, err := strconv.ParseInt(out.ID, 10, 64); err != nil {
			t.Errorf("message id %q is not numeric", out.ID)
		}
		if !strings.HasSuffix(resp.Headers["Location"], "/messages/"+out.ID) {
			t.Errorf("Location = %q", resp.Headers["Location"])
		}
	}}

func FuzzSendMessage(f *testing.F) {
	const hello = `{"content":"hello","senderDisplayName":"Me","type":"text","metadata":{"tag":"x"}}`
	fzFuzz(f, fzSendMessage, fzAll(fzCommon(fzLive, "", hello), fzThreads("", hello), fzRequestIDs(fzLive, hello), fzBodies("", fzMalformed...), fzBodies("",
		`{"content":"hi"}`, `{"content":""}`, `{"content":null}`, `{}`, `{"content":5}`, `{"content":"hi","type":"HTML"}`,
		`{"content":"<p onclick=x>hi</p><script>x</script>","type":"html"}`, `{"content":"<script></script>","type":"html"}`,
		`{"content":"hi","type":"markdown"}`, `{"content":"hi","type":"RichText/Html"}`, `{"content":"héllo ☃ 😀 <&>\"'","senderDisplayName":"Zoë"}`,
		`{"content":"`+strings.Repeat("x", 28*1024)+`"}`, `{"content":"`+strings.Repeat("x", 28*1024+1)+`"}`,
		`{"content":"hi","senderDisplayName":"`+strings.Repeat("é", 257)+`"}`, `{"content":"hi","metadata":{"":"x"}}`,
		`{"content":"hi","metadata":{"k":"`+strings.Repeat("x", 1100)+`"}}`, `{"content":"hi","metadata":{"k":null}}`,
		`{"content":"\u0000"}`, `{"content":"\ud83d"}`,
	)))
}

var fzListMessages = fzOp{paged: true, method: "GET", route: "/chat/threads/{chatThreadId}/messages", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.ListMessages }}

func FuzzListMessages(f *testing.F) {
	fzFuzz(f, fzListMessages, fzAll(fzCommon(fzLive, "", ""), fzThreads("", ""), fzWithQuery(fzLive, fzPageQueries...)))
}

// fzMessageIDs are seeds naming every kind of message of the live thread,
// and ids that are none.
func fzMessageIDs(body string) []fzInput {
	var out []fzInput
	for _, id := range []string{fzMsg(1), fzMsg(3), fzMsg(4), fzMsg(5), fzMsg(6), fzMsg(7), fzMsg(8), fzMsg(0), fzMsg(-1),
		"", "0", "-1", "1", "abc", "1e3", "9223372036854775807", "99999999999999999999", fzMsg(3) + " ", "+" + fzMsg(3), "m%2F1%202"} {
		out = append(out, fzInput{caller: 0, query: fzV, threadID: fzLive, messageID: id, body: body})
	}
	for _, c := range []uint8{4, 5, 6} { // alice, bob (removed), carol (joined later, limited history)
		for _, seq := range []int64{3, 4, 5, 7} {
			out = append(out, fzInput{caller: c, query: fzV, threadID: fzLive, messageID: fzMsg(seq), body: body})
		}
	}
	return out
}

var fzGetMessage = fzOp{method: "GET", route: "/chat/threads/{chatThreadId}/messages/{chatMessageId}", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.GetMessage }}

func FuzzGetMessage(f *testing.F) {
	fzFuzz(f, fzGetMessage, fzAll(fzCommon(fzLive, fzMsg(3), ""), fzThreads(fzMsg(1), ""), fzMessageIDs("")))
}

var fzUpdateMessage = fzOp{method: "PATCH", route: "/chat/threads/{chatThreadId}/messages/{chatMessageId}", success: 204,
	handler: func(w *fzWorld) apigw.Handler { return w.api.UpdateMessage }}

func FuzzUpdateMessage(f *testing.F) {
	const edit = `{"content":"edited","metadata":{"k":null,"n":"1"}}`
	fzFuzz(f, fzUpdateMessage, fzAll(fzCommon(fzLive, fzMsg(3), edit), fzThreads(fzMsg(3), edit), fzMessageIDs(edit), fzBodies(fzMsg(3), fzMalformed...), fzBodies(fzMsg(3),
		`{}`, `{"content":"hello"}`, `{"content":null}`, `{"content":""}`, `{"content":5}`, `{"metadata":null}`, `{"metadata":{"k":"v"}}`,
		`{"metadata":[]}`, `{"metadata":{"":"x"}}`, `{"metadata":{"k":"`+strings.Repeat("x", 1100)+`"}}`, `{"content":"`+strings.Repeat("x", 28*1024+1)+`"}`,
	), fzBodies(fzMsg(4), `{"content":"<script>x</script><b>ok</b>"}`, `{"content":"<script></script>"}`), fzBodies(fzMsg(5), `{"content":"x"}`),
		[]fzInput{ // alice edits her own html message
			{caller: 4, query: fzV, threadID: fzLive, messageID: fzMsg(4), body: `{"content":"<i>edited</i><script>x</script>"}`},
			{caller: 4, query: fzV, threadID: fzLive, messageID: fzMsg(4), body: `{"content":"<script></script>"}`},
		}))
}

var fzDeleteMessage = fzOp{method: "DELETE", route: "/chat/threads/{chatThreadId}/messages/{chatMessageId}", success: 204,
	handler: func(w *fzWorld) apigw.Handler { return w.api.DeleteMessage }}

func FuzzDeleteMessage(f *testing.F) {
	fzFuzz(f, fzDeleteMessage, fzAll(fzCommon(fzLive, fzMsg(3), ""), fzThreads(fzMsg(3), ""), fzMessageIDs("")))
}

var fzListParticipants = fzOp{paged: true, method: "GET", route: "/chat/threads/{chatThreadId}/participants", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.ListParticipants }}

func FuzzListParticipants(f *testing.F) {
	fzFuzz(f, fzListParticipants, fzAll(fzCommon(fzLive, "", ""), fzThreads("", ""), fzWithQuery(fzLive, fzPageQueries...)))
}

// fzIdentifiers are request identifiers: valid, of other kinds, malformed.
func fzIdentifiers() []string {
	return []string{
		`{"rawId":"` + fzDave + `","communicationUser":{"id":"` + fzDave + `"}}`, `{"communicationUser":{"id":"` + fzBob + `"}}`,
		`{"rawId":"` + fzAlice + `"}`, `{"rawId":"` + fzGhost + `"}`, `{"rawId":"` + fzMe + `"}`, `{"communicationUser":{"id":"` + fzCarol + `"}}`,
		`{"rawId":"4:+14255550123","phoneNumber":{"value":"+14255550123"}}`, `{"rawId":"8:gcch:aad-oid","microsoftTeamsUser":{"userId":"aad-oid","isAnonymous":false,"cloud":"gcch"}}`,
		`{"rawId":"28:orgid:app-id","microsoftTeamsApp":{"appId":"app-id","cloud":"public"}}`, `{"rawId":"28:custom-raw"}`, `{}`,
		`{"communicationUser":{}}`, `{"communicationUser":null}`, `{"communicationUser":{"id":"x"}}`, `{"rawId":5}`,
		`{"communicationUser":{"id":"` + strings.Repeat("u", 2100) + `"}}`, `{"rawId":"` + fzAlice + `","communicationUser":{"id":"` + fzBob + `"}}`,
		`{"communicationUser":{"id":"` + fzDave + `"},"phoneNumber":{"value":"+1"}}`, `{"kind":"communicationUser","rawId":"` + fzDave + `"}`,
	}
}

var fzAddParticipants = fzOp{method: "POST", route: "/chat/threads/{chatThreadId}/participants/:add", success: 201, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.AddParticipants }}

func FuzzAddParticipants(f *testing.F) {
	one := func(id string) string { return `{"participants":[{"communicationIdentifier":` + id + `}]}` }
	dave := one(fzIdentifiers()[0])
	bodies := []string{`{}`, `{"participants":[]}`, `{"participants":null}`, `{"participants":{}}`, `{"participants":[{}]}`,
		`{"participants":[{"communicationIdentifier":{"rawId":"` + fzDave + `"},"displayName":"Dave","shareHistoryTime":"2025-05-31T12:00:00.000Z","metadata":{"r":"g"}}]}`,
		`{"participants":[{"communicationIdentifier":{"rawId":"` + fzDave + `"},"displayName":"` + strings.Repeat("d", 257) + `"}]}`,
		`{"participants":[{"communicationIdentifier":{"rawId":"` + fzDave + `"},"metadata":{"":"x"}}]}`,
		`{"participants":[{"communicationIdentifier":{"rawId":"` + fzDave + `"},"shareHistoryTime":"2025-05-31T12:00:00"}]}`,
		`{"participants":[{"communicationIdentifier":{"rawId":"` + fzDave + `"}},{"communicationIdentifier":{"rawId":"` + fzDave + `"},"displayName":"twice"}]}`,
		`{"participants":[` + strings.Repeat(`{"communicationIdentifier":{"rawId":"`+fzDave+`"}},`, 200) + `{"communicationIdentifier":{"rawId":"` + fzBob + `"}}]}`,
	}
	for _, id := range fzIdentifiers() {
		bodies = append(bodies, one(id))
	}
	fzFuzz(f, fzAddParticipants, fzAll(fzCommon(fzLive, "", dave), fzThreads("", dave), fzBodies("", fzMalformed...), fzBodies("", bodies...)))
}

var fzRemoveParticipant = fzOp{method: "POST", route: "/chat/threads/{chatThreadId}/participants/:remove", success: 204,
	handler: func(w *fzWorld) apigw.Handler { return w.api.RemoveParticipant }}

func FuzzRemoveParticipant(f *testing.F) {
	alice := `{"rawId":"` + fzAlice + `","communicationUser":{"id":"` + fzAlice + `"}}`
	fzFuzz(f, fzRemoveParticipant, fzAll(fzCommon(fzLive, "", alice), fzThreads("", alice), fzBodies("", fzMalformed...), fzBodies("", fzIdentifiers()...)))
}

var fzSendReadReceipt = fzOp{method: "POST", route: "/chat/threads/{chatThreadId}/readReceipts", success: 200,
	handler: func(w *fzWorld) apigw.Handler { return w.api.SendReadReceipt }}

func FuzzSendReadReceipt(f *testing.F) {
	body := func(id string) string { return `{"chatMessageId":` + strconv.Quote(id) + `}` }
	var bodies []string
	for _, in := range fzMessageIDs("") {
		bodies = append(bodies, body(in.messageID))
	}
	fzFuzz(f, fzSendReadReceipt, fzAll(fzCommon(fzLive, "", body(fzMsg(4))), fzThreads("", body(fzMsg(1))), fzBodies("", fzMalformed...), fzBodies("", bodies...),
		fzBodies("", `{}`, `{"chatMessageId":null}`, `{"chatMessageId":""}`, `{"chatMessageId":`+fzMsg(4)+`}`)))
}

var fzListReadReceipts = fzOp{paged: true, method: "GET", route: "/chat/threads/{chatThreadId}/readReceipts", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.api.ListReadReceipts }}

func FuzzListReadReceipts(f *testing.F) {
	fzFuzz(f, fzListReadReceipts, fzAll(fzCommon(fzLive, "", ""), fzThreads("", ""), fzWithQuery(fzLive, fzPageQueries...)))
}

var fzSendTyping = fzOp{method: "POST", route: "/chat/threads/{chatThreadId}/typing", success: 200,
	handler: func(w *fzWorld) apigw.Handler { return w.api.SendTyping }}

func FuzzSendTyping(f *testing.F) {
	fzFuzz(f, fzSendTyping, fzAll(fzCommon(fzLive, "", `{"senderDisplayName":"Me"}`), fzThreads("", ""), fzBodies("", fzMalformed[1:]...), fzBodies("",
		"", `{}`, `{"senderDisplayName":null}`, `{"senderDisplayName":5}`, `{"senderDisplayName":"`+strings.Repeat("é", 257)+`"}`,
	)))
}

var fzPollEvents = fzOp{method: "GET", route: "/chat/events", success: 200, successBody: true,
	handler: func(w *fzWorld) apigw.Handler { return w.poll },
	check: func(t *testing.T, resp events.APIGatewayV2HTTPResponse) {
		var out struct {
			Value  []json.RawMessage `json:"value"`
			Cursor string            `json:"cursor"`
		}
		if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || out.Value == nil || out.Cursor == "" {
			t.Errorf("poll answer %s (%v); want a value array and a cursor", resp.Body, err)
		}
	}}

// fzCursor is a feed cursor as the realtime package writes them.
func fzCursor(flag string, pos int64, eventID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("f1|" + flag + "|" + strconv.FormatInt(pos, 10) + "|" + eventID))
}

func FuzzPollEvents(f *testing.F) {
	q := func(cursor string, timeout string) string {
		s := "timeoutSeconds=" + timeout
		if cursor != "" {
			s += "&cursor=" + url.QueryEscape(cursor)
		}
		return s
	}
	hour := fzNow.Add(-time.Hour).UnixMilli()
	fzFuzz(f, fzPollEvents, fzAll(fzCommon("", "", ""), fzWithQuery("",
		"", q("", "0"), q("", "25"), q("", "26"), q("", "-1"), q("", "x"), q("", "99999999999999999999"),
		q(fzCursor("s", hour, ""), "0"), q(fzCursor("l", hour, "e_aaaaaaaaaaaaaaaaaaaaaa"), "1"), q(fzCursor("s", hour, "e_aaaaaaaaaaaaaaaaaaaaaa"), "0"),
		q(fzCursor("s", 0, ""), "0"), q(fzCursor("s", fzNow.Add(time.Hour).UnixMilli(), ""), "0"), q(fzCursor("x", hour, ""), "0"),
		q(fzCursor("s", -1, ""), "0"), q(fzCursor("s", hour, strings.Repeat("e", 1100)), "0"), q("%%%", "0"), q("Zg", "0"),
		q(base64.RawURLEncoding.EncodeToString([]byte("f1|s|9223372036854775807|")), "0"),
	)))
}
