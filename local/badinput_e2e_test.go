package local

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/token"
)

// acsError asserts an ACS-shaped error body: {"error":{"code","message"}}.
func acsError(t *testing.T, name string, r acsclient.Response, status int, code, inner string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d: %s", name, r.Status, status, r.Body)
		return
	}
	var body struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || body.Error.Message == "" {
		t.Errorf("%s: not an ACS error body (code and message): %s", name, r.Body)
		return
	}
	if body.Error.Code != code {
		t.Errorf("%s: code %q, want %q: %s", name, body.Error.Code, code, r.Body)
	}
	gotInner := ""
	if body.Error.InnerError != nil {
		gotInner = body.Error.InnerError.Code
	}
	if gotInner != inner {
		t.Errorf("%s: inner code %q, want %q: %s", name, gotInner, inner, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
}

func TestChatBadInput(t *testing.T) {
	s := startStack(t)
	alice, bob, joiner := s.user(t), s.user(t), s.user(t, "chat.join")
	thread := s.createThread(t, alice.Token, "bad input", bob).ChatThread.ID
	ctx := context.Background()

	signer, err := token.NewSigner([]byte(s.Secrets.SigningSecret))
	if err != nil {
		t.Fatal(err)
	}
	expired, _, _ := signer.Issue(alice.ID, s.Secrets.ResourceID, []string{"chat"}, 0, time.Now().Add(-3*time.Hour), time.Hour)
	forger, _ := token.NewSigner([]byte("not the deployment's signing secret"))
	forged, _, _ := forger.Issue(alice.ID, s.Secrets.ResourceID, []string{"chat"}, 0, time.Now(), time.Hour)
	deleted := s.user(t)
	if r, err := s.ids.Do(ctx, acsclient.Signed{Method: http.MethodDelete, Path: acsclient.IdentityPath(deleted.ID, "")}); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("delete identity: %v %s", err, r)
	}

	many := []any{}
	for i := 0; i < 201; i++ {
		many = append(many, acsclient.Participant(fmt.Sprintf("8:acs:%s_%036d", s.Secrets.ResourceID, i), ""))
	}
	create := func(body any) acsclient.Request {
		return acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15", Body: body}
	}
	cases := []struct {
		name        string
		token       string
		req         acsclient.Request
		status      int
		code, inner string
	}{
		{"missing api-version", alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads"}, 400, "MissingApiVersion", ""},
		{"unsupported api-version", alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2020-01-01"}, 400, "UnsupportedApiVersion", ""},
		{"malformed JSON", alice.Token, create([]byte(`{"topic":`)), 400, "InvalidRequestBody", ""},
		{"topic of the wrong type", alice.Token, create([]byte(`{"topic":42}`)), 400, "InvalidRequestBody", ""},
		{"no topic", alice.Token, create(map[string]any{}), 400, "InvalidTopic", ""},
		{"empty topic", alice.Token, create(map[string]any{"topic": "  "}), 400, "InvalidTopic", ""},
		{"topic over 250 characters", alice.Token, create(map[string]any{"topic": strings.Repeat("é", 251)}), 400, "InvalidTopic", ""},
		{"201 participants", alice.Token, create(map[string]any{"topic": "big", "participants": many}), 400, "TooManyParticipants", ""},
		{"metadata over 1 KB", alice.Token, create(map[string]any{"topic": "m", "metadata": map[string]string{"k": strings.Repeat("v", 1100)}}), 400, "MetadataTooLarge", ""},
		{"retention of 7 days", alice.Token, create(map[string]any{"topic": "r", "retentionPolicy": map[string]any{"kind": "threadCreationDate", "deleteThreadAfterDays": 7}}), 400, "InvalidRetentionPolicy", ""},
		{"page size 500", alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?maxPageSize=500&api-version=2025-03-15"}, 400, "InvalidPageSize", ""},
		{"forged continuation token", alice.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?syncState=abc&api-version=2025-03-15"}, 400, "InvalidContinuationToken", ""},
		{"expired token", expired, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}, 401, "Unauthorized", "TokenExpired"},
		{"forged token", forged, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}, 401, "Unauthorized", "TokenSignatureInvalid"},
		{"garbage token", "not.a.jwt", acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}, 401, "Unauthorized", "TokenMalformed"},
		{"deleted user's token", deleted.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}, 401, "Unauthorized", "IdentityDeleted"},
		{"chat.join creates a thread", joiner.Token, create(map[string]any{"topic": "no"}), 403, "Forbidden", "InsufficientScope"},
		{"chat.join updates a thread", joiner.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, ""), Body: map[string]any{"topic": "x"}}, 403, "Forbidden", "InsufficientScope"},
		{"non-participant reads", joiner.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath(thread, "")}, 403, "Forbidden", "NotAParticipant"},
		{"non-participant deletes", s.user(t).Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "")}, 403, "Forbidden", "NotAParticipant"},
		{"unknown thread", alice.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath("19:aaaaaaaaaaaaaaaaaaaaaaaaaa@thread.v2", "")}, 404, "NotFound", "ThreadNotFound"},
		{"malformed thread id", alice.Token, acsclient.Request{Method: http.MethodGet, Path: acsclient.ThreadPath("no-such-thread", "")}, 404, "NotFound", "ThreadNotFound"},
		{"topic null in a merge-patch", alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, ""), Body: []byte(`{"topic":null}`)}, 400, "InvalidTopic", ""},
	}
	for _, c := range cases {
		acsError(t, c.name, s.do(t, c.token, c.req), c.status, c.code, c.inner)
	}

	// Nothing was half-written by the refused creates.
	if items := listThreads(t, s, alice.Token, 0); len(items) != 1 {
		t.Errorf("refused requests left threads behind: %+v", items)
	}

	// No token at all: API Gateway itself refuses before any function runs,
	// with its own body (docs/api.md lists this difference).
	r := s.do(t, "", acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"})
	if r.Status != http.StatusUnauthorized || string(r.Body) != `{"message":"Unauthorized"}` {
		t.Errorf("no token: %s", r)
	}
}

func TestRevokedTokenIsRefusedAfterTheAuthorizerCache(t *testing.T) {
	s := startStack(t, withAuthorizerTTL(5*time.Minute))
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	s.Gateway.Now = func() time.Time { return time.Unix(0, now.Load()) }

	alice := s.user(t)
	list := acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}
	if r := s.do(t, alice.Token, list); r.Status != http.StatusOK {
		t.Fatalf("before revocation: %s", r)
	}
	if r, err := s.ids.Do(context.Background(), acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(alice.ID, ":revokeAccessTokens")}); err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("revoke: %v %s", err, r)
	}
	// Within the cache TTL API Gateway still answers from its cache (as in AWS).
	if r := s.do(t, alice.Token, list); r.Status != http.StatusOK {
		t.Errorf("within the authorizer cache TTL: %s", r)
	}
	now.Add(int64(5*time.Minute + time.Second))
	acsError(t, "revoked token", s.do(t, alice.Token, list), 401, "Unauthorized", "TokenRevoked")

	// A token issued after the revocation works at once.
	fresh, err := s.ids.IssueToken(context.Background(), alice.ID, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.do(t, fresh, list); r.Status != http.StatusOK {
		t.Errorf("token issued after revocation: %s", r)
	}
}
