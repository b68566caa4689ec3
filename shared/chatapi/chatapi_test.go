package chatapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/ratelimit"
)

// memStore is an in-memory chatapi.Storage.
type memStore struct {
	// The message, roster and receipt stores are not faked here (the thread
	// handlers do not use them); the end-to-end tests cover them.
	chat.MessageStore
	chat.ParticipantStore
	chat.ReceiptStore

	mu      sync.Mutex
	threads map[string]chat.Thread
	parts   map[string]map[string]chat.Participant
	users   map[string]bool
	reqs    map[string]chat.RequestRecord
	creates int
	changes int
}

func newMemStore(users ...string) *memStore {
	m := &memStore{threads: map[string]chat.Thread{}, parts: map[string]map[string]chat.Participant{}, users: map[string]bool{}, reqs: map[string]chat.RequestRecord{}}
	for _, u := range users {
		m.users[u] = true
	}
	return m
}

func (m *memStore) CreateThread(_ context.Context, d chat.ThreadDraft) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.creates++
	m.parts[d.Thread.ID] = map[string]chat.Participant{}
	for _, p := range d.Participants {
		m.parts[d.Thread.ID][p.UserID] = p
	}
	m.threads[d.Thread.ID] = d.Thread
	return nil
}

func (m *memStore) ThreadView(_ context.Context, threadID, userID string) (chat.View, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var v chat.View
	if t, ok := m.threads[threadID]; ok {
		t.Metadata = maps.Clone(t.Metadata)
		v.Thread = &t
	}
	if p, ok := m.parts[threadID][userID]; ok {
		v.Participant = &p
	}
	return v, nil
}

func (m *memStore) UpdateThread(_ context.Context, c chat.ThreadChange) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changes++
	t, ok := m.threads[c.ThreadID]
	if !ok || t.Rev != c.ExpectRev || (c.Message != nil && t.Seq != c.ExpectSeq) {
		return chat.ErrRaced
	}
	t.Topic, t.Metadata, t.Retention = c.Topic, maps.Clone(c.Metadata), c.Retention
	t.Rev++
	if c.Message != nil {
		t.Seq, t.LastMessageAt = c.Message.Seq, c.At
	}
	m.threads[c.ThreadID] = t
	return nil
}

func (m *memStore) MarkThreadDeleted(_ context.Context, threadID string, at time.Time, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.threads[threadID]; ok && t.DeletedOn.IsZero() {
		t.DeletedOn = at
		m.threads[threadID] = t
	}
	return nil
}

func (m *memStore) Memberships(_ context.Context, userID string) ([]chat.Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []chat.Membership
	for _, id := range slices.Sorted(maps.Keys(m.parts)) {
		if p, ok := m.parts[id][userID]; ok {
			out = append(out, chat.Membership{ThreadID: id, RemovedOn: p.RemovedOn})
		}
	}
	return out, nil
}

func (m *memStore) Threads(_ context.Context, ids []string) (map[string]chat.Thread, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]chat.Thread{}
	for _, id := range ids {
		if t, ok := m.threads[id]; ok {
			out[id] = t
		}
	}
	return out, nil
}

func (m *memStore) ExistingUsers(_ context.Context, ids []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, id := range ids {
		if m.users[id] {
			out[id] = true
		}
	}
	return out, nil
}

func (m *memStore) Claim(_ context.Context, key string, rec chat.RequestRecord) (*chat.RequestRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.reqs[key]; ok {
		return &old, nil
	}
	m.reqs[key] = rec
	return nil, nil
}

func (m *memStore) Complete(_ context.Context, key string, result []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.reqs[key]
	r.Done, r.Result = true, slices.Clone(result)
	m.reqs[key] = r
	return nil
}

func (m *memStore) thread(id string) chat.Thread {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.threads[id]
}

func uid(n int) string {
	return fmt.Sprintf("8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-%012d", n)
}

var (
	me    = uid(1)
	alice = uid(2)
	bob   = uid(3)
	ghost = uid(99)
	t0    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

const host = "chat.example.test"

type harness struct {
	api *chatapi.API
	st  *memStore
	now time.Time
}

func newHarness() *harness {
	h := &harness{st: newMemStore(me, alice, bob), now: t0}
	clock := func() time.Time { return h.now }
	h.api = &chatapi.API{Chat: &chat.Service{Threads: h.st, Users: h.st, Requests: h.st, Now: clock}, Now: clock}
	return h
}

type req struct {
	method  string
	path    string
	params  map[string]string
	query   string
	body    string
	headers map[string]string
	auth    map[string]any // nil: a valid chat-scoped caller; empty: none
}

func (h *harness) validAuth() map[string]any {
	return map[string]any{"userId": me, "scopes": "chat", "expires": strconv.FormatInt(h.now.Add(time.Hour).Unix(), 10)}
}

func (h *harness) call(t *testing.T, handler apigw.Handler, r req) events.APIGatewayV2HTTPResponse {
	t.Helper()
	headers := map[string]string{"host": host}
	maps.Copy(headers, r.headers)
	auth := r.auth
	if auth == nil {
		auth = h.validAuth()
	}
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey:       r.method + " " + r.path,
		RawPath:        r.path,
		RawQueryString: r.query,
		Headers:        headers,
		PathParameters: r.params,
		Body:           r.body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID:  "req-1",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: r.method, Path: r.path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: auth},
		},
	}
	resp, err := apigw.HTTP("test", slog.New(slog.NewTextHandler(io.Discard, nil)), handler)(context.Background(), ev)
	if err != nil {
		t.Fatalf("handler returned an error: %v", err)
	}
	return resp
}

type errBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		Target     string `json:"target"`
		InnerError *struct {
			Code string `json:"code"`
		} `json:"innererror"`
	} `json:"error"`
}

// wantError checks status and the specific code (inner when present).
func wantError(t *testing.T, resp events.APIGatewayV2HTTPResponse, status int, code string) errBody {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d (%s); want %d", resp.StatusCode, resp.Body, status)
	}
	var e errBody
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	got := e.Error.Code
	if e.Error.InnerError != nil {
		got = e.Error.InnerError.Code
	}
	if got != code || e.Error.Message == "" {
		t.Fatalf("error = %s; want code %s with a message", resp.Body, code)
	}
	return e
}

const v = "api-version=2025-03-15"

func (h *harness) create(t *testing.T, body string) string {
	t.Helper()
	resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: body})
	if resp.StatusCode != 201 {
		t.Fatalf("create = %d %s", resp.StatusCode, resp.Body)
	}
	var out struct {
		ChatThread struct {
			ID string `json:"id"`
		} `json:"chatThread"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	return out.ChatThread.ID
}

// threadParams is the path parameter as the SDK encodes it
// (encodeURIComponent), in case the gateway hands it on still encoded.
func threadParams(id string) map[string]string {
	return map[string]string{"chatThreadId": strings.NewReplacer(":", "%3A", "@", "%40").Replace(id)}
}

func TestAPIVersion(t *testing.T) {
	h := newHarness()
	id := h.create(t, `{"topic":"t"}`)
	handlers := map[string]struct {
		h      apigw.Handler
		method string
		body   string
		params map[string]string
	}{
		"create": {h.api.CreateThread, "POST", `{"topic":"t"}`, nil},
		"get":    {h.api.GetThread, "GET", "", threadParams(id)},
		"list":   {h.api.ListThreads, "GET", "", nil},
		"update": {h.api.UpdateThread, "PATCH", `{"topic":"u"}`, threadParams(id)},
		"delete": {h.api.DeleteThread, "DELETE", "", threadParams(id)},
	}
	for name, op := range handlers {
		t.Run(name, func(t *testing.T) {
			for _, q := range []string{"", "maxPageSize=5"} {
				resp := h.call(t, op.h, req{method: op.method, path: "/chat/threads", params: op.params, query: q, body: op.body})
				e := wantError(t, resp, 400, "MissingApiVersion")
				if e.Error.Target != "api-version" {
					t.Errorf("target = %q", e.Error.Target)
				}
			}
			for _, bad := range []string{"api-version=2020-01-01", "api-version=2023-10-01", "api-version=latest"} {
				resp := h.call(t, op.h, req{method: op.method, path: "/chat/threads", params: op.params, query: bad, body: op.body})
				wantError(t, resp, 400, "UnsupportedApiVersion")
			}
		})
	}
	for _, ver := range []string{"2025-03-15", "2024-03-07", "2023-11-07", "2021-09-07"} {
		resp := h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: "api-version=" + ver})
		if resp.StatusCode != 200 {
			t.Errorf("api-version %s: status %d", ver, resp.StatusCode)
		}
	}
}

func TestUnauthenticated(t *testing.T) {
	h := newHarness()
	tests := []struct {
		name string
		auth map[string]any
		code string
	}{
		{"no authorizer verdict", map[string]any{}, "MissingToken"},
		{"authorizer refused", map[string]any{"authError": "TokenRevoked", "authMessage": "revoked"}, "TokenRevoked"},
		{"expired since cached", map[string]any{"userId": me, "scopes": "chat", "expires": strconv.FormatInt(t0.Add(-time.Second).Unix(), 10)}, "TokenExpired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: `{"topic":"t"}`, auth: tt.auth})
			e := wantError(t, resp, 401, tt.code)
			if e.Error.Code != "Unauthorized" {
				t.Errorf("top code = %q; want Unauthorized", e.Error.Code)
			}
			if resp.Headers["WWW-Authenticate"] == "" {
				t.Error("no WWW-Authenticate header on a 401")
			}
		})
	}
	if h.st.creates != 0 {
		t.Errorf("unauthenticated requests created %d threads", h.st.creates)
	}
}

var (
	threadIDRe  = regexp.MustCompile(`^19:[a-z2-7]{26}@thread\.v2$`)
	sevenDigits = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$`)
)

func TestCreateThread(t *testing.T) {
	h := newHarness()
	body := `{
		"topic": "Launch <plan>",
		"participants": [
			{"communicationIdentifier": {"communicationUser": {"id": "` + alice + `"}}, "displayName": "Alice"},
			{"communicationIdentifier": {"rawId": "` + bob + `"}},
			{"communicationIdentifier": {"rawId": "` + ghost + `", "communicationUser": {"id": "` + ghost + `"}}},
			{"communicationIdentifier": {"rawId": "4:+14255550123", "phoneNumber": {"value": "+14255550123"}}}
		],
		"metadata": {"k": "v"},
		"retentionPolicy": {"kind": "threadCreationDate", "deleteThreadAfterDays": 40}
	}`
	resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: body,
		headers: map[string]string{"content-type": "application/json", "repeatability-request-id": "6dbab363-5d36-44e7-9ebd-76d5af10dcc2"}})
	if resp.StatusCode != 201 {
		t.Fatalf("status = %d %s; want 201", resp.StatusCode, resp.Body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	th, _ := out["chatThread"].(map[string]any)
	if th == nil {
		t.Fatalf("no chatThread in %s", resp.Body)
	}
	id, _ := th["id"].(string)
	if !threadIDRe.MatchString(id) {
		t.Errorf("id = %q", id)
	}
	if th["topic"] != "Launch <plan>" {
		t.Errorf("topic = %v", th["topic"])
	}
	if !strings.Contains(resp.Body, "Launch <plan>") {
		t.Errorf("the topic was HTML-escaped in %s", resp.Body)
	}
	if s, _ := th["createdOn"].(string); !sevenDigits.MatchString(s) || s != "2025-06-01T12:00:00.0000000Z" {
		t.Errorf("createdOn = %v", th["createdOn"])
	}
	createdBy, _ := th["createdByCommunicationIdentifier"].(map[string]any)
	if createdBy["kind"] != "communicationUser" || createdBy["rawId"] != me || createdBy["communicationUser"].(map[string]any)["id"] != me {
		t.Errorf("createdBy = %v", createdBy)
	}
	if _, ok := th["deletedOn"]; ok {
		t.Errorf("a live thread has deletedOn: %v", th)
	}
	if md, _ := th["metadata"].(map[string]any); md["k"] != "v" {
		t.Errorf("metadata = %v", th["metadata"])
	}
	if rp, _ := th["retentionPolicy"].(map[string]any); rp["kind"] != "threadCreationDate" || rp["deleteThreadAfterDays"] != float64(40) {
		t.Errorf("retentionPolicy = %v", th["retentionPolicy"])
	}

	inv, _ := out["invalidParticipants"].([]any)
	if len(inv) != 2 {
		t.Fatalf("invalidParticipants = %v; want 2", out["invalidParticipants"])
	}
	codes := map[string]string{}
	for _, x := range inv {
		e := x.(map[string]any)
		codes[fmt.Sprint(e["target"])] = fmt.Sprint(e["code"])
		if e["message"] == "" || e["message"] == nil {
			t.Errorf("invalid participant without a message: %v", e)
		}
	}
	if codes[ghost] != "404" || codes["4:+14255550123"] != "403" {
		t.Errorf("invalid codes = %v; want ghost 404 and the phone number 403", codes)
	}

	loc := resp.Headers["Location"]
	const prefix = "https://" + host + "/chat/threads/"
	if !strings.HasPrefix(loc, prefix) {
		t.Fatalf("Location = %q", loc)
	}
	if seg, err := url.PathUnescape(strings.TrimPrefix(loc, prefix)); err != nil || seg != id {
		t.Errorf("Location names %q; want %q", seg, id)
	}
	if !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
	}

	// The store got the members.
	parts := h.st.parts[id]
	if len(parts) != 3 || parts[alice].DisplayName != "Alice" {
		t.Errorf("stored participants = %v", parts)
	}
	for _, u := range []string{me, alice, bob} {
		if _, ok := parts[u]; !ok {
			t.Errorf("%s is not a participant", u)
		}
	}

	// The same repeatability-request-id and body: the same thread, no new write.
	again := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: body,
		headers: map[string]string{"repeatability-request-id": "6dbab363-5d36-44e7-9ebd-76d5af10dcc2"}})
	if again.StatusCode != 201 || !strings.Contains(again.Body, id) || h.st.creates != 1 {
		t.Errorf("repeat = %d %s (%d creates); want the same thread", again.StatusCode, again.Body, h.st.creates)
	}
	if again.Headers["Location"] != loc {
		t.Errorf("repeat Location = %q; want %q", again.Headers["Location"], loc)
	}
	// Another body with that id: 409.
	conflict := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: `{"topic":"other"}`,
		headers: map[string]string{"repeatability-request-id": "6dbab363-5d36-44e7-9ebd-76d5af10dcc2"}})
	wantError(t, conflict, 409, "RepeatabilityConflict")
}

func TestCreateThreadMinimalBody(t *testing.T) {
	h := newHarness()
	resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: `{"topic":"t"}`})
	if resp.StatusCode != 201 {
		t.Fatalf("status = %d %s", resp.StatusCode, resp.Body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	if _, ok := out["invalidParticipants"]; ok {
		t.Errorf("invalidParticipants present with none: %s", resp.Body)
	}
	th := out["chatThread"].(map[string]any)
	for _, k := range []string{"retentionPolicy", "metadata", "deletedOn"} {
		if _, ok := th[k]; ok {
			t.Errorf("%s present when not set: %s", k, resp.Body)
		}
	}
}

func TestCreateThreadBadRequests(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"malformed JSON", `{"topic":`, 400, "InvalidRequestBody"},
		{"not JSON", `topic=x`, 400, "InvalidRequestBody"},
		{"empty body", ``, 400, "MissingRequestBody"},
		{"topic missing", `{"participants":[]}`, 400, "InvalidTopic"},
		{"topic null", `{"topic":null}`, 400, "InvalidTopic"},
		{"topic blank", `{"topic":"   "}`, 400, "InvalidTopic"},
		{"topic of the wrong type", `{"topic":5}`, 400, "InvalidRequestBody"},
		{"retention without days", `{"topic":"t","retentionPolicy":{"kind":"threadCreationDate"}}`, 400, "InvalidRetentionPolicy"},
		{"retention unknown kind", `{"topic":"t","retentionPolicy":{"kind":"forever"}}`, 400, "InvalidRetentionPolicy"},
		{"retention 91 days", `{"topic":"t","retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":91}}`, 400, "InvalidRetentionPolicy"},
		{"metadata too large", `{"topic":"t","metadata":{"k":"` + strings.Repeat("x", 1100) + `"}}`, 400, "MetadataTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: tt.body})
			wantError(t, resp, tt.status, tt.code)
			if h.st.creates != 0 {
				t.Error("a refused request created a thread")
			}
		})
	}
	h := newHarness()
	auth := h.validAuth()
	auth["scopes"] = "chat.join"
	resp := h.call(t, h.api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: `{"topic":"t"}`, auth: auth})
	e := wantError(t, resp, 403, "InsufficientScope")
	if e.Error.Code != "Forbidden" {
		t.Errorf("top code = %q; want Forbidden", e.Error.Code)
	}
}

func TestGetThread(t *testing.T) {
	h := newHarness()
	id := h.create(t, `{"topic":"hello","participants":[{"communicationIdentifier":{"rawId":"`+alice+`"}}]}`)
	for name, param := range map[string]string{"encodeURIComponent": threadParams(id)["chatThreadId"], "decoded by the gateway": id} {
		resp := h.call(t, h.api.GetThread, req{method: "GET", path: "/chat/threads/" + param, params: map[string]string{"chatThreadId": param}, query: v})
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", name, resp.StatusCode, resp.Body)
		}
		var th map[string]any
		if err := json.Unmarshal([]byte(resp.Body), &th); err != nil {
			t.Fatal(err)
		}
		if th["id"] != id || th["topic"] != "hello" || th["createdOn"] != "2025-06-01T12:00:00.0000000Z" {
			t.Errorf("%s: thread = %v", name, th)
		}
	}
	resp := h.call(t, h.api.GetThread, req{method: "GET", params: map[string]string{"chatThreadId": "19%3Anope%40thread.v2"}, query: v})
	e := wantError(t, resp, 404, "ThreadNotFound")
	if e.Error.Code != "NotFound" {
		t.Errorf("top code = %q", e.Error.Code)
	}
	auth := h.validAuth()
	auth["userId"] = bob
	resp = h.call(t, h.api.GetThread, req{method: "GET", params: threadParams(id), query: v, auth: auth})
	wantError(t, resp, 403, "NotAParticipant")
}

func TestUpdateThread(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		status   int
		code     string
		topic    string
		metadata map[string]string
	}{
		{"topic", `{"topic":"new"}`, 204, "", "new", map[string]string{"a": "1", "b": "2"}},
		{"topic null", `{"topic":null}`, 400, "InvalidTopic", "old", map[string]string{"a": "1", "b": "2"}},
		{"topic not a string", `{"topic":5}`, 400, "InvalidRequestBody", "old", map[string]string{"a": "1", "b": "2"}},
		{"metadata null clears", `{"metadata":null}`, 204, "", "old", nil},
		{"metadata merge", `{"metadata":{"a":null,"c":"3"}}`, 204, "", "old", map[string]string{"b": "2", "c": "3"}},
		{"metadata not an object", `{"metadata":"x"}`, 400, "InvalidRequestBody", "old", map[string]string{"a": "1", "b": "2"}},
		{"metadata value not a string", `{"metadata":{"a":1}}`, 400, "InvalidRequestBody", "old", map[string]string{"a": "1", "b": "2"}},
		{"empty patch", `{}`, 204, "", "old", map[string]string{"a": "1", "b": "2"}},
		{"retention without days", `{"retentionPolicy":{"kind":"threadCreationDate"}}`, 400, "InvalidRetentionPolicy", "old", map[string]string{"a": "1", "b": "2"}},
		{"retention not an object", `{"retentionPolicy":5}`, 400, "InvalidRetentionPolicy", "old", map[string]string{"a": "1", "b": "2"}},
		{"malformed", `{"topic":"x"`, 400, "InvalidRequestBody", "old", map[string]string{"a": "1", "b": "2"}},
		{"empty body", ``, 400, "MissingRequestBody", "old", map[string]string{"a": "1", "b": "2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness()
			id := h.create(t, `{"topic":"old","metadata":{"a":"1","b":"2"}}`)
			resp := h.call(t, h.api.UpdateThread, req{method: "PATCH", params: threadParams(id), query: v, body: tt.body,
				headers: map[string]string{"content-type": "application/merge-patch+json"}})
			if tt.code != "" {
				wantError(t, resp, tt.status, tt.code)
			} else if resp.StatusCode != tt.status || resp.Body != "" {
				t.Fatalf("status = %d %q; want %d with no body", resp.StatusCode, resp.Body, tt.status)
			}
			got := h.st.thread(id)
			if got.Topic != tt.topic || !maps.Equal(got.Metadata, tt.metadata) {
				t.Errorf("stored = %q %v; want %q %v", got.Topic, got.Metadata, tt.topic, tt.metadata)
			}
		})
	}

	t.Run("retention set and removed", func(t *testing.T) {
		h := newHarness()
		id := h.create(t, `{"topic":"old"}`)
		resp := h.call(t, h.api.UpdateThread, req{method: "PATCH", params: threadParams(id), query: v, body: `{"retentionPolicy":{"kind":"threadCreationDate","deleteThreadAfterDays":30}}`})
		if resp.StatusCode != 204 {
			t.Fatalf("status = %d %s", resp.StatusCode, resp.Body)
		}
		if r := h.st.thread(id).Retention; r.Kind != chat.RetentionThreadCreationDate || r.Days != 30 {
			t.Errorf("retention = %+v", r)
		}
		resp = h.call(t, h.api.UpdateThread, req{method: "PATCH", params: threadParams(id), query: v, body: `{"retentionPolicy":null}`})
		if resp.StatusCode != 204 || h.st.thread(id).Retention != (chat.Retention{}) {
			t.Errorf("after null: %d, %+v", resp.StatusCode, h.st.thread(id).Retention)
		}
	})
}

func TestDeleteThread(t *testing.T) {
	h := newHarness()
	id := h.create(t, `{"topic":"t"}`)
	for i := 0; i < 2; i++ {
		resp := h.call(t, h.api.DeleteThread, req{method: "DELETE", params: threadParams(id), query: v})
		if resp.StatusCode != 204 || resp.Body != "" {
			t.Fatalf("delete #%d = %d %q; want 204", i+1, resp.StatusCode, resp.Body)
		}
	}
	if h.st.thread(id).DeletedOn.IsZero() {
		t.Error("the thread is not deleted")
	}
	resp := h.call(t, h.api.GetThread, req{method: "GET", params: threadParams(id), query: v})
	wantError(t, resp, 404, "ThreadDeleted")
}

func TestListThreads(t *testing.T) {
	h := newHarness()
	resp := h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: v})
	if resp.StatusCode != 200 || resp.Body != `{"value":[]}` {
		t.Fatalf("empty list = %d %s; want 200 {\"value\":[]}", resp.StatusCode, resp.Body)
	}

	var created []string
	for i := 0; i < 5; i++ {
		created = append(created, h.create(t, fmt.Sprintf(`{"topic":"t%d"}`, i)))
		h.now = h.now.Add(time.Minute)
	}
	slices.Reverse(created) // newest first

	type page struct {
		Value []struct {
			ID                    string `json:"id"`
			Topic                 string `json:"topic"`
			LastMessageReceivedOn string `json:"lastMessageReceivedOn"`
			DeletedOn             string `json:"deletedOn"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	var got []string
	query := "maxPageSize=2&" + v + "&startTime=2025-01-01T00%3A00%3A00.000Z"
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		resp := h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: query})
		if resp.StatusCode != 200 {
			t.Fatalf("status = %d %s", resp.StatusCode, resp.Body)
		}
		var p page
		if err := json.Unmarshal([]byte(resp.Body), &p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Body, `"value":[`) {
			t.Errorf("page has no value array: %s", resp.Body)
		}
		for _, x := range p.Value {
			got = append(got, x.ID)
			if !sevenDigits.MatchString(x.LastMessageReceivedOn) || x.DeletedOn != "" {
				t.Errorf("item = %+v", x)
			}
		}
		if p.NextLink == "" {
			break
		}
		// The SDK requests the nextLink verbatim and adds nothing.
		u, err := url.Parse(p.NextLink)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "https" || u.Host != host || u.Path != "/chat/threads" {
			t.Errorf("nextLink = %q", p.NextLink)
		}
		q := u.Query()
		if q.Get("api-version") != "2025-03-15" || q.Get("maxPageSize") != "2" || q.Get("syncState") == "" || q.Get("startTime") != "2025-01-01T00:00:00.0000000Z" {
			t.Errorf("nextLink query = %v", q)
		}
		query = u.RawQuery
	}
	if !slices.Equal(got, created) {
		t.Errorf("listed %v; want %v", got, created)
	}

	bad := []struct {
		query string
		code  string
	}{
		{"maxPageSize=abc&" + v, "InvalidQueryParameter"},
		{"maxPageSize=201&" + v, "InvalidPageSize"},
		{"startTime=2025-01-01T00:00:00&" + v, "InvalidQueryParameter"},
		{"startTime=yesterday&" + v, "InvalidQueryParameter"},
		{"syncState=bogus&" + v, "InvalidContinuationToken"},
	}
	for _, b := range bad {
		resp := h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: b.query})
		wantError(t, resp, 400, b.code)
	}

	// startTime=0 (the service's own "no bound") and a real bound.
	resp = h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: "startTime=0&" + v})
	if resp.StatusCode != 200 || strings.Count(resp.Body, `"id"`) != 5 {
		t.Errorf("startTime=0 = %d %s", resp.StatusCode, resp.Body)
	}
	resp = h.call(t, h.api.ListThreads, req{method: "GET", path: "/chat/threads", query: "startTime=" + url.QueryEscape("2025-06-01T14:03:00+02:00") + "&" + v})
	if resp.StatusCode != 200 || strings.Count(resp.Body, `"id"`) != 2 {
		t.Errorf("startTime 12:03Z = %d %s; want the 2 newest", resp.StatusCode, resp.Body)
	}
}

func TestNew(t *testing.T) {
	st := newMemStore(me)
	api := chatapi.New(st, chat.RateLimits{Scale: 1, Limiter: ratelimit.NewLimiter(0)})
	if api.Chat == nil || api.Chat.Threads != st || api.Chat.Users != st || api.Chat.Requests != st || api.Chat.Rates.Scale != 1 {
		t.Fatalf("New() = %+v", api.Chat)
	}
	h := &harness{api: api, st: st, now: time.Now()}
	// ACS allows 10 creates per user per 10 s; the 11th is a 429 with
	// Retry-After and ACS's error body.
	for i := 0; i < 11; i++ {
		resp := h.call(t, api.CreateThread, req{method: "POST", path: "/chat/threads", query: v, body: `{"topic":"t"}`})
		if i < 10 {
			if resp.StatusCode != 201 {
				t.Fatalf("create %d through New() = %d %s", i+1, resp.StatusCode, resp.Body)
			}
			continue
		}
		wantError(t, resp, 429, "TooManyRequests")
		if s, err := strconv.Atoi(resp.Headers["Retry-After"]); err != nil || s < 1 || s > 10 {
			t.Errorf("Retry-After %q, want 1..10 seconds", resp.Headers["Retry-After"])
		}
	}
}
