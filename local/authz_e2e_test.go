package local

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/token"
)

// The authorization matrix: every chat operation, the long poll and the
// WebSocket handshake against every kind of caller that must be refused, and
// every Identity API operation against every way an HMAC signature can be
// wrong, all through the real local stack (emulated API Gateway with its
// authorizers, the functions' real handlers, DynamoDB Local, the WebSocket
// gateway, the stream dispatcher). Expected answers are the documented ones:
// docs/api.md (status, ACS code, innererror code) and docs/realtime.md
// (handshake status, who receives which event).

// The operations of the matrix, in docs/api.md's order.
const (
	opCreateThread      = "create thread"
	opGetThread         = "get thread"
	opListThreads       = "list threads"
	opUpdateThread      = "update thread"
	opDeleteThread      = "delete thread"
	opSendMessage       = "send message"
	opListMessages      = "list messages"
	opGetMessage        = "get message"
	opUpdateMessage     = "update message"
	opDeleteMessage     = "delete message"
	opListParticipants  = "list participants"
	opAddParticipants   = "add participants"
	opRemoveParticipant = "remove participant"
	opSendReceipt       = "send read receipt"
	opListReceipts      = "list read receipts"
	opSendTyping        = "send typing"
	opPollEvents        = "GET /chat/events"
)

var authzOps = []string{
	opCreateThread, opGetThread, opListThreads, opUpdateThread, opDeleteThread,
	opSendMessage, opListMessages, opGetMessage, opUpdateMessage, opDeleteMessage,
	opListParticipants, opAddParticipants, opRemoveParticipant,
	opSendReceipt, opListReceipts, opSendTyping, opPollEvents,
}

// authzThreadOps are the operations that address one thread.
var authzThreadOps = []string{
	opGetThread, opUpdateThread, opDeleteThread,
	opSendMessage, opListMessages, opGetMessage, opUpdateMessage, opDeleteMessage,
	opListParticipants, opAddParticipants, opRemoveParticipant,
	opSendReceipt, opListReceipts, opSendTyping,
}

// authzCaller is one caller of the matrix and what its requests address.
type authzCaller struct {
	name   string
	token  string
	thread string // the thread of the per-thread operations
	read   string // the message get message and send read receipt name
	own    string // the message update and delete message change: the caller's own where its identity has one
	add    string // the user add participants names
	remove string // the user remove participant names
}

// request is op as this caller sends it: well-formed, so that only who asks
// can be the reason for a refusal.
func (c authzCaller) request(op string) acsclient.Request {
	get := func(path string) acsclient.Request { return acsclient.Request{Method: http.MethodGet, Path: path} }
	threadPath := func(rest string) string { return acsclient.ThreadPath(c.thread, rest) }
	switch op {
	case opCreateThread:
		return acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15", Body: map[string]any{"topic": "intruder's thread"}}
	case opGetThread:
		return get(threadPath(""))
	case opListThreads:
		return get("/chat/threads?maxPageSize=200&api-version=2025-03-15")
	case opUpdateThread:
		return acsclient.Request{Method: http.MethodPatch, Path: threadPath(""), Body: map[string]any{"topic": "hijacked", "metadata": map[string]string{"owner": "intruder"}}}
	case opDeleteThread:
		return acsclient.Request{Method: http.MethodDelete, Path: threadPath("")}
	case opSendMessage:
		return acsclient.Request{Method: http.MethodPost, Path: threadPath("messages"), Body: map[string]any{"content": "intruder", "senderDisplayName": c.name}}
	case opListMessages:
		return get(strings.Replace(threadPath("messages"), "?", "?maxPageSize=200&", 1))
	case opGetMessage:
		return get(threadPath("messages/" + c.read))
	case opUpdateMessage:
		return acsclient.Request{Method: http.MethodPatch, Path: threadPath("messages/" + c.own), Body: map[string]any{"content": "hijacked"}}
	case opDeleteMessage:
		return acsclient.Request{Method: http.MethodDelete, Path: threadPath("messages/" + c.own)}
	case opListParticipants:
		return get(threadPath("participants"))
	case opAddParticipants:
		return acsclient.Request{Method: http.MethodPost, Path: threadPath("participants/:add"), Body: map[string]any{"participants": []any{acsclient.Participant(c.add, "added")}}}
	case opRemoveParticipant:
		return acsclient.Request{Method: http.MethodPost, Path: threadPath("participants/:remove"), Body: map[string]any{"rawId": c.remove, "communicationUser": map[string]any{"id": c.remove}}}
	case opSendReceipt:
		return acsclient.Request{Method: http.MethodPost, Path: threadPath("readReceipts"), Body: map[string]any{"chatMessageId": c.read}}
	case opListReceipts:
		return get(threadPath("readReceipts"))
	case opSendTyping:
		return acsclient.Request{Method: http.MethodPost, Path: threadPath("typing"), Body: map[string]any{"senderDisplayName": c.name}}
	case opPollEvents:
		return get("/chat/events?timeoutSeconds=0")
	}
	panic("no request for " + op)
}

// authzWant is the answer a row must get.
type authzWant struct {
	status      int
	code, inner string // the ACS error code and innererror code; "" for a success
	gateway     bool   // API Gateway's own 401 body: no function ran
	check       func(t *testing.T, label string, r acsclient.Response)
}

func (w authzWant) String() string {
	switch {
	case w.gateway:
		return fmt.Sprintf("%d (API Gateway)", w.status)
	case w.inner != "":
		return fmt.Sprintf("%d %s/%s", w.status, w.code, w.inner)
	case w.code != "":
		return fmt.Sprintf("%d %s", w.status, w.code)
	}
	return strconv.Itoa(w.status)
}

func unauthenticated(inner string) authzWant {
	return authzWant{status: http.StatusUnauthorized, code: "Unauthorized", inner: inner}
}
func forbidden(inner string) authzWant {
	return authzWant{status: http.StatusForbidden, code: "Forbidden", inner: inner}
}
func notFound(inner string) authzWant {
	return authzWant{status: http.StatusNotFound, code: "NotFound", inner: inner}
}
func succeeds(status int, check func(t *testing.T, label string, r acsclient.Response)) authzWant {
	return authzWant{status: status, check: check}
}

// every expects w from each of ops.
func every(w authzWant, ops []string) map[string]authzWant {
	m := map[string]authzWant{}
	for _, op := range ops {
		m[op] = w
	}
	return m
}

// with is m plus overrides.
func with(m map[string]authzWant, overrides map[string]authzWant) map[string]authzWant {
	out := maps.Clone(m)
	maps.Copy(out, overrides)
	return out
}

// authzRow is one cell of the matrix: an operation by a caller.
type authzRow struct {
	op     string
	caller authzCaller
	want   authzWant
}

func (r authzRow) label() string { return r.op + " × " + r.caller.name }

// run sends the row's request and checks the answer.
func (r authzRow) run(t *testing.T, s *testStack) {
	t.Helper()
	resp := s.do(t, r.caller.token, r.caller.request(r.op))
	label := r.label()
	switch {
	case r.want.gateway:
		if resp.Status != r.want.status || string(resp.Body) != `{"message":"Unauthorized"}` {
			t.Errorf("%s: %s, want API Gateway's 401 {\"message\":\"Unauthorized\"}", label, resp)
			return
		}
	case r.want.code != "":
		acsError(t, label, resp, r.want.status, r.want.code, r.want.inner)
		if resp.Status != r.want.status {
			return
		}
	case resp.Status != r.want.status:
		t.Errorf("%s: %s, want %s", label, resp, r.want)
		return
	}
	if r.want.check != nil {
		r.want.check(t, label, resp)
	}
}

// rows expands a caller's expectations in the order of authzOps.
func rows(c authzCaller, want map[string]authzWant) []authzRow {
	var out []authzRow
	for _, op := range authzOps {
		if w, ok := want[op]; ok {
			out = append(out, authzRow{op: op, caller: c, want: w})
		}
	}
	return out
}

// runRows runs rows as parallel subtests (refusals change nothing, so their
// order does not matter) and waits for all of them.
func runRows(t *testing.T, s *testStack, name string, rs []authzRow) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		for _, r := range rs {
			t.Run(r.label(), func(t *testing.T) {
				t.Parallel()
				r.run(t, s)
			})
		}
	})
}

// threadListed checks whether a list-threads answer holds thread.
func threadListed(thread string, want bool) func(*testing.T, string, acsclient.Response) {
	return func(t *testing.T, label string, r acsclient.Response) {
		t.Helper()
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
		}
		if err := r.JSON(&page); err != nil {
			t.Errorf("%s: %v: %s", label, err, r.Body)
			return
		}
		got := false
		for _, v := range page.Value {
			got = got || v.ID == thread
		}
		if got != want {
			t.Errorf("%s: thread %s listed = %v, want %v: %s", label, thread, got, want, r.Body)
		}
	}
}

// noEvents checks a long-poll answer is empty.
func noEvents(t *testing.T, label string, r acsclient.Response) {
	t.Helper()
	var page struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := r.JSON(&page); err != nil || page.Value == nil || len(page.Value) != 0 {
		t.Errorf("%s: want no events: %s", label, r.Body)
	}
}

// forgeries are tokens of the right shape that this deployment never issued,
// each claiming to be victim with the chat scope.
func forgeries(t *testing.T, s *testStack, victim, bystander, limited acsclient.User) []authzCaller {
	t.Helper()
	real := mustSigner(t, s)
	now := time.Now()
	claims := token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: token.Issuer, Subject: victim.ID, ID: "forged",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		Scope: "chat", ResourceID: s.Secrets.ResourceID, SkypeID: strings.TrimPrefix(victim.ID, "8:"),
	}
	_, otherKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(m jwt.SigningMethod, kid string, key any) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, claims)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		out, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	otherDeployment, err := token.NewSigner([]byte("the signing secret of another deployment"))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := otherDeployment.Issue(victim.ID, s.Secrets.ResourceID, []string{"chat"}, 0, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	none := b64json(t, map[string]any{"alg": "none", "typ": "JWT", "kid": real.KeyID()}) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
	return []authzCaller{
		{name: "forged: another key under the deployment's kid", token: sign(jwt.SigningMethodEdDSA, real.KeyID(), otherKey)},
		{name: "forged: another deployment's key and kid", token: foreign},
		{name: "forged: no kid", token: sign(jwt.SigningMethodEdDSA, "", otherKey)},
		{name: "forged: alg none", token: none},
		{name: "forged: HS256 keyed with the public key", token: sign(jwt.SigningMethodHS256, real.KeyID(), []byte(real.PublicKey()))},
		// Real tokens, edited after signing.
		{name: "tampered: a bystander's token claiming the victim", token: retouch(t, bystander.Token, func(_, p map[string]any) {
			p["sub"], p["skypeid"] = victim.ID, strings.TrimPrefix(victim.ID, "8:")
		})},
		{name: "tampered: chat.join.limited token claiming chat", token: retouch(t, limited.Token, func(_, p map[string]any) { p["acsScope"] = "chat" })},
		{name: "tampered: kid changed", token: retouch(t, victim.Token, func(h, _ map[string]any) { h["kid"] = "AAAAAAAAAAAAAAAA" })},
	}
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// retouch edits a signed token's header and payload and keeps its signature.
func retouch(t *testing.T, tok string, edit func(header, payload map[string]any)) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	var seg [2]map[string]any
	for i := range seg {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, &seg[i]) != nil {
			t.Fatalf("token segment %d: %v", i, err)
		}
	}
	edit(seg[0], seg[1])
	return b64json(t, seg[0]) + "." + b64json(t, seg[1]) + "." + parts[2]
}

// pollWatch is an outsider's long poll kept open, poll after poll, for as
// long as the test runs: anything it ever returns is a leak.
type pollWatch struct {
	mu     sync.Mutex
	frames []frame
	errs   []string
	polls  int
	stop   chan struct{}
	done   chan struct{}
}

func (s *testStack) watchPoll(tok string) *pollWatch {
	w := &pollWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		cursor := ""
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			path := "/chat/events?timeoutSeconds=2"
			if cursor != "" {
				path += "&cursor=" + url.QueryEscape(cursor)
			}
			r, err := s.chat(tok).Do(context.Background(), acsclient.Request{Method: http.MethodGet, Path: path})
			var page struct {
				Value  []json.RawMessage `json:"value"`
				Cursor string            `json:"cursor"`
			}
			w.mu.Lock()
			w.polls++
			switch {
			case err != nil:
				w.errs = append(w.errs, err.Error())
			case r.Status != http.StatusOK || r.JSON(&page) != nil || page.Cursor == "":
				w.errs = append(w.errs, r.String())
			default:
				for _, raw := range page.Value {
					var f frame
					_ = json.Unmarshal(raw, &f)
					f.raw = string(raw)
					w.frames = append(w.frames, f)
				}
				cursor = page.Cursor
			}
			failed := len(w.errs) > 0
			w.mu.Unlock()
			if failed {
				return
			}
		}
	}()
	return w
}

// finish stops the watch (after the poll in flight) and reports what it saw.
func (w *pollWatch) finish(t *testing.T, who string) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		t.Errorf("%s's long poll failed: %v", who, w.errs)
	}
	if w.polls < 2 {
		t.Errorf("%s's long poll ran %d times; it was not held open during the test", who, w.polls)
	}
	for _, f := range w.frames {
		t.Errorf("%s's long poll received an event: %s", who, f.raw)
	}
}

// feedIDs reads a user's whole feed straight from the table.
func (s *testStack) feedIDs(t *testing.T, user string) map[string]realtime.FeedEntry {
	t.Helper()
	entries, err := s.Realtime.Read(context.Background(), user, realtime.FeedKey{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]realtime.FeedEntry{}
	for _, e := range entries {
		out[e.EventID] = e
	}
	return out
}

func (w *wsClient) snapshot() []frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]frame(nil), w.frames...)
}

func (s *testStack) mustStatus(t *testing.T, what string, tok string, r acsclient.Request, status int) acsclient.Response {
	t.Helper()
	resp := s.do(t, tok, r)
	if resp.Status != status {
		t.Fatalf("%s: %s, want %d", what, resp, status)
	}
	return resp
}

func (s *testStack) identityCall(t *testing.T, what, method, path string, status int) {
	t.Helper()
	r, err := s.ids.Do(context.Background(), acsclient.Signed{Method: method, Path: path})
	if err != nil || r.Status != status {
		t.Fatalf("%s: %v %s, want %d", what, err, r, status)
	}
}

func TestAuthzChatMatrix(t *testing.T) {
	t.Parallel()
	// No authorizer cache: a revoked token and a deleted user's token are used
	// successfully before they are voided, so a cached verdict would still let
	// them through for AuthorizerCacheSeconds (docs/api.md documents that
	// delay; TestRevokedTokenIsRefusedAfterTheAuthorizerCache covers it).
	// Here they must be refused at once.
	s := startStack(t, withAuthorizerTTL(0))
	ctx := context.Background()
	us := s.users(t, 8, "chat") // scopes given: users() writes its default from every goroutine
	alice, bob, carol, mallory, voipUser, revoked, deleted, extra := us[0], us[1], us[2], us[3], us[4], us[5], us[6], us[7]
	joiner, limited := s.user(t, "chat.join"), s.user(t, "chat.join.limited")

	// Listeners, from before anything happens: mallory is in no thread and
	// holds a WebSocket and a long poll open throughout; carol keeps hers
	// after her removal; bob is the control that shows events did flow.
	mws := s.mustDial(t, mallory.Token, "")
	mpoll := s.watchPoll(mallory.Token)
	cws := s.mustDial(t, carol.Token, "")
	bws := s.mustDial(t, bob.Token, "")

	thread := s.createThread(t, alice.Token, "authz", bob, carol, joiner, limited, voipUser, revoked, deleted).ChatThread.ID
	aliceOld := s.send(t, alice.Token, thread, "alice, before carol's removal")
	carolMsg := s.send(t, carol.Token, thread, "carol's own")
	joinerMsg := s.send(t, joiner.Token, thread, "joiner's own")
	limitedMsg := s.send(t, limited.Token, thread, "limited's own")
	voipMsg := s.send(t, voipUser.Token, thread, "sent with a chat token")
	revokedMsg := s.send(t, revoked.Token, thread, "sent before the revocation")
	deletedMsg := s.send(t, deleted.Token, thread, "sent before the deletion")

	// A thread bob is in that alice deletes.
	gone := s.createThread(t, alice.Token, "gone", bob).ChatThread.ID
	goneMsg := s.send(t, bob.Token, gone, "bob's own, in a thread about to go")
	s.mustStatus(t, "delete the gone thread", alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(gone, "")}, http.StatusNoContent)

	// Void tokens that have just been used successfully.
	s.identityCall(t, "revoke", http.MethodPost, acsclient.IdentityPath(revoked.ID, ":revokeAccessTokens"), http.StatusNoContent)
	s.identityCall(t, "delete identity", http.MethodDelete, acsclient.IdentityPath(deleted.ID, ""), http.StatusNoContent)
	voipTok, err := s.ids.IssueToken(ctx, voipUser.ID, "voip")
	if err != nil {
		t.Fatal(err)
	}
	voipJoinTok, err := s.ids.IssueToken(ctx, voipUser.ID, "voip.join")
	if err != nil {
		t.Fatal(err)
	}

	// Carol is removed; her WebSocket stays open. Everything she may ever
	// receive about the thread is in her feed now.
	if r := s.remove(t, alice.Token, thread, carol.ID); r.Status != http.StatusNoContent {
		t.Fatalf("remove carol: %s", r)
	}
	cws.waitFor(t, "carol's own participantsRemoved", func(fs []frame) bool {
		return has(fs, "participantsRemoved", func(f frame) bool { return strings.Contains(string(f.Data["participantsRemoved"]), carol.ID) })
	})
	if err := s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}
	carolFeed := s.feedIDs(t, carol.ID)
	carolSeen := len(cws.snapshot())
	removedSeq := int64(0)
	for _, m := range s.messages(t, alice.Token, thread, 200) {
		if m.Type == "participantRemoved" {
			removedSeq = m.seq(t)
		}
	}
	if removedSeq == 0 {
		t.Fatal("no participantRemoved message")
	}

	// Life goes on without carol: alice writes, and the weaker scopes do
	// everything docs/api.md's capability table allows them (each must
	// succeed). Bob sees all of it; carol and mallory must see none of it.
	aliceNew := s.send(t, alice.Token, thread, "alice, after carol's removal")
	s.mustStatus(t, "alice renames the thread", alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, ""), Body: map[string]any{"topic": "authz, renamed"}}, http.StatusNoContent)
	weak := []authzCaller{
		{name: "chat.join member", token: joiner.Token, read: joinerMsg, own: joinerMsg, add: extra.ID, remove: extra.ID},
		{name: "chat.join.limited member", token: limited.Token, read: limitedMsg, own: limitedMsg},
	}
	for _, c := range weak {
		c.thread = thread
		steps := []authzRow{
			{op: opGetThread, want: succeeds(200, nil)},
			{op: opListThreads, want: succeeds(200, threadListed(thread, true))},
			{op: opSendMessage, want: succeeds(201, nil)},
			{op: opListMessages, want: succeeds(200, nil)},
			{op: opGetMessage, want: succeeds(200, nil)},
			{op: opUpdateMessage, want: succeeds(204, nil)},
			{op: opSendReceipt, want: succeeds(200, nil)},
			{op: opListReceipts, want: succeeds(200, nil)},
			{op: opListParticipants, want: succeeds(200, nil)},
			{op: opSendTyping, want: succeeds(200, nil)},
			{op: opPollEvents, want: succeeds(200, nil)},
			{op: opDeleteMessage, want: succeeds(204, nil)},
		}
		if c.add != "" {
			steps = append(steps, authzRow{op: opAddParticipants, want: succeeds(201, nil)}, authzRow{op: opRemoveParticipant, want: succeeds(204, nil)})
		}
		for _, st := range steps {
			st.caller = c
			st.run(t, s)
		}
		s.mustDial(t, c.token, "") // and connect for real-time events
	}
	typists := map[string]bool{}
	bws.waitFor(t, "the traffic after carol's removal at bob", func(fs []frame) bool {
		for _, f := range fs {
			if f.Type == "typingIndicatorReceived" {
				typists[string(f.Data["sender"])] = true
			}
		}
		return len(typists) == 2 && has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == aliceNew }) &&
			has(fs, "chatThreadPropertiesUpdated", nil) &&
			has(fs, "participantsRemoved", func(f frame) bool { return strings.Contains(string(f.Data["participantsRemoved"]), extra.ID) })
	})
	if err := s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}

	// What the refusals must leave exactly as it is.
	stateReqs := []acsclient.Request{
		{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "")},
		{Method: http.MethodGet, Path: strings.Replace(acsclient.ThreadPath(thread, "messages"), "?", "?maxPageSize=200&", 1)},
		{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "participants")},
		{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "readReceipts")},
		{Method: http.MethodGet, Path: "/chat/threads?maxPageSize=200&api-version=2025-03-15"},
	}
	state := func() []string {
		var out []string
		for _, r := range stateReqs {
			out = append(out, s.mustStatus(t, "read state", alice.Token, r, http.StatusOK).String())
		}
		for _, u := range []acsclient.User{joiner, limited, bob, mallory} {
			out = append(out, s.mustStatus(t, "read state", u.Token, stateReqs[4], http.StatusOK).String())
		}
		return out
	}
	before := state()

	// The matrix.
	base := authzCaller{thread: thread, read: aliceNew, own: aliceNew, add: extra.ID, remove: bob.ID}
	as := func(name, tok string, edit func(*authzCaller)) authzCaller {
		c := base
		c.name, c.token = name, tok
		if edit != nil {
			edit(&c)
		}
		return c
	}
	expired, _, err := mustSigner(t, s).Issue(alice.ID, s.Secrets.ResourceID, []string{"chat"}, 0, time.Now().Add(-3*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Callers refused by the authorizer, whatever they ask.
	type tokenCaller struct {
		c    authzCaller
		want authzWant
	}
	tokenCallers := []tokenCaller{
		{as("no token", "", nil), authzWant{status: http.StatusUnauthorized, gateway: true}},
		{as("not a JWT", "not.a.jwt", nil), unauthenticated("TokenMalformed")},
		{as("expired token", expired, nil), unauthenticated("TokenExpired")},
		{as("revoked token", revoked.Token, func(c *authzCaller) { c.own = revokedMsg }), unauthenticated("TokenRevoked")},
		{as("deleted identity's token", deleted.Token, func(c *authzCaller) { c.own = deletedMsg }), unauthenticated("IdentityDeleted")},
	}
	for _, f := range forgeries(t, s, alice, mallory, limited) {
		tokenCallers = append(tokenCallers, tokenCaller{as(f.name, f.token, nil), unauthenticated("TokenSignatureInvalid")})
	}
	var matrix []authzRow
	for _, tc := range tokenCallers {
		matrix = append(matrix, rows(tc.c, every(tc.want, authzOps))...)
	}
	// Scopes (docs/api.md: ACS's capability table): each caller is a member
	// whose identity owns the message it tries to change, so the scope is
	// the only reason to refuse.
	scope := forbidden("InsufficientScope")
	manageThread := every(scope, []string{opCreateThread, opUpdateThread, opDeleteThread})
	for _, tok := range []struct{ name, token string }{{"voip token", voipTok}, {"voip.join token", voipJoinTok}} {
		matrix = append(matrix, rows(as(tok.name, tok.token, func(c *authzCaller) { c.read, c.own = voipMsg, voipMsg }), every(scope, authzOps))...)
	}
	matrix = append(matrix, rows(as("chat.join member", joiner.Token, nil), manageThread)...)
	lim := as("chat.join.limited member", limited.Token, func(c *authzCaller) { c.add, c.remove = extra.ID, bob.ID })
	matrix = append(matrix, rows(lim, with(manageThread, every(scope, []string{opAddParticipants, opRemoveParticipant})))...)
	lim.name, lim.remove = "chat.join.limited member, removing itself", limited.ID
	matrix = append(matrix, authzRow{op: opRemoveParticipant, caller: lim, want: scope})
	// Membership.
	outsider := as("non-member", mallory.Token, func(c *authzCaller) { c.add = mallory.ID })
	matrix = append(matrix, rows(outsider, with(every(forbidden("NotAParticipant"), authzThreadOps), map[string]authzWant{
		opListThreads: succeeds(200, threadListed(thread, false)),
		opPollEvents:  succeeds(200, noEvents),
	}))...)
	removed := as("removed member", carol.Token, func(c *authzCaller) { c.own, c.add = carolMsg, carol.ID })
	matrix = append(matrix, rows(removed, with(every(forbidden("ParticipantRemoved"), authzThreadOps), map[string]authzWant{
		opGetThread:    succeeds(200, nil),
		opListThreads:  succeeds(200, threadListed(thread, true)),
		opListMessages: succeeds(200, historyUpTo(removedSeq, carolMsg)),
		opGetMessage:   notFound("MessageNotFound"), // sent after the removal
		opPollEvents:   succeeds(200, noEvents),
	}))...)
	removed.name, removed.read = "removed member, a message from before its removal", aliceOld
	matrix = append(matrix, authzRow{op: opGetMessage, caller: removed, want: succeeds(200, nil)})
	matrix = append(matrix, rows(as("member, not the sender", bob.Token, nil), every(forbidden("NotMessageSender"), []string{opUpdateMessage, opDeleteMessage}))...)
	// Threads that are not there.
	ghost := as("member of a deleted thread", bob.Token, func(c *authzCaller) { c.thread, c.read, c.own, c.remove = gone, goneMsg, goneMsg, alice.ID })
	matrix = append(matrix, rows(ghost, with(every(notFound("ThreadDeleted"), authzThreadOps), map[string]authzWant{
		opDeleteThread: succeeds(204, nil), // deleting a deleted thread succeeds (docs/api.md)
	}))...)
	nowhere := chat.NewThreadID(time.Now())
	unknown := as("unknown thread", alice.Token, func(c *authzCaller) {
		c.thread, c.read, c.own = nowhere, chat.MessageID(nowhere, 3), chat.MessageID(nowhere, 3)
	})
	matrix = append(matrix, rows(unknown, every(notFound("ThreadNotFound"), authzThreadOps))...)
	runRows(t, s, "chat API", matrix)

	// The WebSocket handshake refuses every token the chat API refuses: 401
	// for a token that does not authenticate, 403 for one that cannot chat.
	type handshake struct {
		name, token string
		status      int
	}
	var handshakes []handshake
	for _, tc := range tokenCallers {
		handshakes = append(handshakes, handshake{tc.c.name, tc.c.token, http.StatusUnauthorized})
	}
	handshakes = append(handshakes, handshake{"voip token", voipTok, http.StatusForbidden}, handshake{"voip.join token", voipJoinTok, http.StatusForbidden})
	t.Run("WebSocket handshake", func(t *testing.T) {
		for _, h := range handshakes {
			t.Run(h.name, func(t *testing.T) {
				t.Parallel()
				w, err := s.dial(t, h.token, "")
				if err == nil {
					w.c.CloseNow()
					t.Errorf("WebSocket connect × %s: accepted, want a %d handshake", h.name, h.status)
				} else if !strings.Contains(err.Error(), fmt.Sprintf("handshake %d", h.status)) {
					t.Errorf("WebSocket connect × %s: %v, want a %d handshake", h.name, err, h.status)
				}
			})
		}
	})

	// Cursors are positions in the caller's own feed: someone else's cursor
	// replays the caller's events, never theirs.
	bobFrames := bws.snapshot()
	bobFirst := ""
	for _, f := range bobFrames {
		if f.Cursor != "" {
			bobFirst = f.Cursor
			break
		}
	}
	if bobFirst == "" {
		t.Fatal("bob has no cursor")
	}
	mws.send(t, `{"action":"resume","cursor":"`+bobFirst+`"}`)
	mws.waitFor(t, "mallory's resume from bob's cursor", func(fs []frame) bool { return has(fs, "resumed", nil) })
	fresh := s.mustDial(t, mallory.Token, bobFirst)
	fresh.waitFor(t, "mallory's connect with bob's cursor", func(fs []frame) bool { return has(fs, "resumed", nil) })
	if got, _, r := s.poll(t, mallory.Token, bobFirst, 0); r.Status != http.StatusOK || len(got) != 0 {
		t.Errorf("long poll × non-member with a member's cursor: %s", r)
	}
	cws.send(t, `{"action":"resume","cursor":"`+bobFirst+`"}`)
	cws.waitFor(t, "carol's resume from bob's cursor", func(fs []frame) bool { return has(fs, "resumed", nil) })
	for cursor, polls := bobFirst, 0; ; polls++ {
		got, next, r := s.poll(t, carol.Token, cursor, 0)
		if r.Status != http.StatusOK || polls > 10 {
			t.Fatalf("carol's long poll from bob's cursor: %s", r)
		}
		for _, f := range got {
			if _, ok := carolFeed[f.ID]; !ok {
				t.Errorf("long poll × removed member with a member's cursor: an event from after the removal: %s", f.raw)
			}
		}
		if len(got) == 0 {
			break
		}
		cursor = next
	}

	// Nothing was changed by any refusal.
	if after := state(); fmt.Sprint(after) != fmt.Sprint(before) {
		for i := range before {
			if before[i] != after[i] {
				t.Errorf("a refused request changed state:\nbefore %s\nafter  %s", before[i], after[i])
			}
		}
	}

	// Real-time isolation, after everything above has been dispatched.
	if err := s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // typing indicators are pushed without the stream
	mpoll.finish(t, "the non-member")
	if feed := s.feedIDs(t, mallory.ID); len(feed) != 0 {
		for _, e := range feed {
			t.Errorf("the non-member's feed holds %s about %s", e.Type, e.ThreadID)
		}
	}
	for _, w := range []*wsClient{mws, fresh} {
		for _, f := range w.snapshot() {
			if f.Type != "resumed" {
				t.Errorf("the non-member's WebSocket received %s", f.raw)
			}
		}
	}
	if !has(bws.snapshot(), "typingIndicatorReceived", nil) {
		t.Error("the control (bob) received no typing indicator: the isolation checks prove nothing")
	}
	after := s.feedIDs(t, carol.ID)
	if !has(cws.snapshot()[:carolSeen], "participantsRemoved", nil) {
		t.Error("the removed member was not told of its own removal")
	}
	for id, e := range after {
		if _, ok := carolFeed[id]; !ok {
			t.Errorf("the removed member's feed gained %s after the removal", e.Type)
		}
	}
	resumed := 0
	for _, f := range cws.snapshot()[carolSeen:] {
		_, replayed := carolFeed[f.ID]
		switch {
		case f.Type == "resumed":
			resumed++
		case f.Cursor != "" && replayed:
			// a replay of what it had before its removal
		default:
			t.Errorf("the removed member's WebSocket received after its removal: %s", f.raw)
		}
	}
	if resumed != 1 {
		t.Errorf("the removed member's resume answered %d resumed frames", resumed)
	}
}

// historyUpTo checks a removed member's message list ends at its removal and
// still holds its own message.
func historyUpTo(removedSeq int64, own string) func(*testing.T, string, acsclient.Response) {
	return func(t *testing.T, label string, r acsclient.Response) {
		t.Helper()
		var page struct {
			Value []wireMessage `json:"value"`
		}
		if err := r.JSON(&page); err != nil {
			t.Errorf("%s: %v", label, err)
			return
		}
		top, mine := int64(0), false
		for _, m := range page.Value {
			top = max(top, m.seq(t))
			mine = mine || m.ID == own
		}
		if top != removedSeq || !mine {
			t.Errorf("%s: history up to sequenceId %d (own message listed: %v), want up to its removal at %d", label, top, mine, removedSeq)
		}
	}
}

func TestAuthzIdentityAPI(t *testing.T) {
	t.Parallel()
	// No authorizer cache: the victim's token is checked after the refused
	// calls, so a revocation or deletion that slipped through must show at once.
	s := startStack(t, withAuthorizerTTL(0))
	ctx := context.Background()
	victim, other, app := s.user(t), s.user(t), s.user(t)
	at := func(d time.Duration) *acsclient.Identity {
		return &acsclient.Identity{Endpoint: s.ids.Endpoint, Key: s.ids.Key, HTTP: s.ids.HTTP, Now: func() time.Time { return time.Now().Add(d) }}
	}
	wrongKey := &acsclient.Identity{Endpoint: s.ids.Endpoint, Key: []byte("0123456789abcdef0123456789abcdef"), HTTP: s.ids.HTTP}

	type op struct {
		name, method, path string
		body               []byte
		decoy              string // another request's path and query, signed in place of this one
	}
	ops := []op{
		{"create identity", http.MethodPost, "/identities?api-version=2023-10-01", []byte(`{"createTokenWithScopes":["chat"]}`), "/identities?api-version=2022-10-01"},
		{"delete identity", http.MethodDelete, acsclient.IdentityPath(victim.ID, ""), nil, acsclient.IdentityPath(other.ID, "")},
		{"issue token", http.MethodPost, acsclient.IdentityPath(victim.ID, ":issueAccessToken"), []byte(`{"scopes":["chat"]}`), acsclient.IdentityPath(other.ID, ":issueAccessToken")},
		{"revoke tokens", http.MethodPost, acsclient.IdentityPath(victim.ID, ":revokeAccessTokens"), nil, acsclient.IdentityPath(other.ID, ":revokeAccessTokens")},
	}
	setBody := func(r *http.Request, b []byte) {
		r.Body = http.NoBody
		if len(b) > 0 {
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Type", "application/json")
	}
	tampered := []byte(`{"scopes":["chat"],"createTokenWithScopes":["chat"],"expiresInMinutes":1440}`)
	callers := []struct {
		name   string
		client *acsclient.Identity
		mutate func(op) func(*http.Request)
		decoy  bool // sign the op's decoy request, send the op
		inner  string
	}{
		{"replayed 6 minutes after signing", at(-6 * time.Minute), nil, false, "StaleDate"},
		{"replayed a day after signing", at(-24 * time.Hour), nil, false, "StaleDate"},
		{"signed 6 minutes in the future", at(6 * time.Minute), nil, false, "StaleDate"},
		{"wrong access key", wrongKey, nil, false, "InvalidSignature"},
		{"tampered body", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) { setBody(r, tampered) }
		}, false, "ContentHashMismatch"},
		{"tampered body, content hash recomputed", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) {
				setBody(r, tampered)
				sum := sha256.Sum256(tampered)
				r.Header.Set("x-ms-content-sha256", base64.StdEncoding.EncodeToString(sum[:]))
			}
		}, false, "InvalidSignature"},
		{"signature of another request", s.ids, func(o op) func(*http.Request) {
			return func(r *http.Request) {
				u, err := url.Parse(s.ids.Endpoint + o.path)
				if err != nil {
					panic(err)
				}
				r.URL = u
			}
		}, true, "InvalidSignature"},
		{"missing signature", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) { r.Header.Del("Authorization") }
		}, false, "MissingAuthorization"},
		{"missing x-ms-date", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) { r.Header.Del("x-ms-date") }
		}, false, "MissingDate"},
		{"malformed x-ms-date", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) { r.Header.Set("x-ms-date", "yesterday") }
		}, false, "InvalidDate"},
		{"a user's bearer token", s.ids, func(op) func(*http.Request) {
			return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+app.Token) }
		}, false, "InvalidAuthorizationHeader"},
	}
	t.Run("HMAC", func(t *testing.T) {
		for _, c := range callers {
			for _, o := range ops {
				label := o.name + " × " + c.name
				t.Run(label, func(t *testing.T) {
					t.Parallel()
					req := acsclient.Signed{Method: o.method, Path: o.path, Body: o.body}
					if c.mutate != nil {
						req.Mutate = c.mutate(o)
					}
					if c.decoy {
						req.Path = o.decoy
					}
					r, err := c.client.Do(ctx, req)
					if err != nil {
						t.Fatal(err)
					}
					acsError(t, label, r, http.StatusUnauthorized, "Unauthorized", c.inner)
				})
			}
		}
	})

	// None of it did anything: the victim and its token are untouched.
	list := acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}
	s.mustStatus(t, "the victim's token after the refused calls", victim.Token, list, http.StatusOK)
	// Controls: the same requests, correctly signed, succeed; so every
	// refusal above was about the signature and nothing else.
	for _, o := range []struct {
		op     op
		status int
	}{{ops[0], http.StatusCreated}, {ops[2], http.StatusOK}, {ops[3], http.StatusNoContent}} {
		if r, err := s.ids.Do(ctx, acsclient.Signed{Method: o.op.method, Path: o.op.path, Body: o.op.body}); err != nil || r.Status != o.status {
			t.Errorf("%s, correctly signed: %v %s, want %d", o.op.name, err, r, o.status)
		}
	}
	acsError(t, "the victim's token after a correctly signed revocation", s.do(t, victim.Token, list), 401, "Unauthorized", "TokenRevoked")
	if r, err := s.ids.Do(ctx, acsclient.Signed{Method: ops[1].method, Path: ops[1].path}); err != nil || r.Status != http.StatusNoContent {
		t.Errorf("delete identity, correctly signed: %v %s", err, r)
	}
}
