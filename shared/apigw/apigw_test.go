package apigw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/fault"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func event() events.APIGatewayV2HTTPRequest {
	return events.APIGatewayV2HTTPRequest{
		RouteKey:       "GET /x",
		RawPath:        "/x",
		RawQueryString: "api-version=2025-03-15",
		Headers:        map[string]string{"host": "chat.example.test"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID:  "req-abc",
			DomainName: "abc.execute-api.eu-west-1.amazonaws.com",
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: "/x"},
		},
	}
}

func decodeError(t *testing.T, body string) acs.ErrorResponse {
	t.Helper()
	var e acs.ErrorResponse
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func TestHTTPRendersJSONWithoutHTMLEscaping(t *testing.T) {
	h := apigw.HTTP("op", discard(), func(_ context.Context, r *apigw.Request) (apigw.Response, error) {
		out := apigw.JSON(http.StatusOK, map[string]string{"content": "<b>bold</b> & \"q\"", "v": r.Query.Get("api-version")})
		out.Headers = map[string]string{"X-Test": "1"}
		return out, nil
	})
	resp, err := h(context.Background(), event())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if want := `{"content":"<b>bold</b> & \"q\"","v":"2025-03-15"}`; resp.Body != want {
		t.Errorf("body = %s; want %s", resp.Body, want)
	}
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	if resp.Headers["X-Test"] != "1" {
		t.Errorf("handler headers lost: %v", resp.Headers)
	}
}

func TestHTTPNoContent(t *testing.T) {
	h := apigw.HTTP("op", discard(), func(context.Context, *apigw.Request) (apigw.Response, error) {
		return apigw.NoContent(http.StatusNoContent), nil
	})
	resp, err := h(context.Background(), event())
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNoContent || resp.Body != "" {
		t.Errorf("resp = %d %q; want 204 with no body", resp.StatusCode, resp.Body)
	}
	if _, ok := resp.Headers["Content-Type"]; ok {
		t.Errorf("a 204 has Content-Type %q", resp.Headers["Content-Type"])
	}
}

func TestHTTPPanicBecomes500(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := apigw.HTTP("op", log, func(context.Context, *apigw.Request) (apigw.Response, error) {
		var m map[string]int
		m["boom"] = 1 // nil map write
		return apigw.Response{}, nil
	})
	resp, err := h(context.Background(), event())
	if err != nil {
		t.Fatalf("the wrapper returned an error: %v", err)
	}
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %d; want 500", resp.StatusCode)
	}
	e := decodeError(t, resp.Body)
	if e.Error.Code != "InternalServerError" || !strings.Contains(e.Error.Message, "req-abc") {
		t.Errorf("error = %+v", e.Error)
	}
	if !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Errorf("Content-Type = %q", resp.Headers["Content-Type"])
	}
	if !strings.Contains(logs.String(), "panic") || !strings.Contains(logs.String(), `"status":500`) {
		t.Errorf("logs = %s; want the panic and a 500 request line", logs.String())
	}
	if !strings.Contains(logs.String(), `"ServerErrors":1`) {
		t.Errorf("logs = %s; the panic must count as a server error", logs.String())
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		inner      string
		retryAfter string
		wwwAuth    bool
	}{
		{"throttled", fault.Throttled(2*time.Second, "slow"), 429, "TooManyRequests", "", "2", false},
		{"busy rounds up to 1s", fault.Busy(200*time.Millisecond, "busy"), 503, "ServiceUnavailable", "", "1", false},
		{"busy 1.5s rounds up", fault.Busy(1500*time.Millisecond, "busy"), 503, "ServiceUnavailable", "", "2", false},
		{"unauthorized", fault.Unauthenticated("TokenExpired", "old"), 401, "Unauthorized", "TokenExpired", "", true},
		{"bad request", fault.Invalid("InvalidTopic", "topic", "bad"), 400, "InvalidTopic", "", "", false},
		{"not found", fault.Missing("ThreadNotFound", "chatThreadId", "no"), 404, "NotFound", "ThreadNotFound", "", false},
		{"plain error", errors.New("boom"), 500, "InternalServerError", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := apigw.HTTP("op", discard(), func(context.Context, *apigw.Request) (apigw.Response, error) {
				return apigw.Response{}, tt.err
			})
			resp, err := h(context.Background(), event())
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d; want %d", resp.StatusCode, tt.status)
			}
			e := decodeError(t, resp.Body)
			if e.Error.Code != tt.code || e.Error.Message == "" {
				t.Errorf("error = %+v; want code %q", e.Error, tt.code)
			}
			if tt.inner != "" && (e.Error.InnerError == nil || e.Error.InnerError.Code != tt.inner) {
				t.Errorf("innererror = %+v; want %q", e.Error.InnerError, tt.inner)
			}
			if !strings.Contains(resp.Body, `"innererror"`) && tt.inner != "" {
				t.Errorf("body %s does not spell innererror as ACS does", resp.Body)
			}
			if got := resp.Headers["Retry-After"]; got != tt.retryAfter {
				t.Errorf("Retry-After = %q; want %q", got, tt.retryAfter)
			}
			if _, ok := resp.Headers["WWW-Authenticate"]; ok != tt.wwwAuth {
				t.Errorf("WWW-Authenticate present = %v; want %v", ok, tt.wwwAuth)
			}
		})
	}
}

func TestHTTPRequestDecoding(t *testing.T) {
	var got *apigw.Request
	h := apigw.HTTP("op", discard(), func(_ context.Context, r *apigw.Request) (apigw.Response, error) {
		got = r
		return apigw.NoContent(204), nil
	})

	ev := event()
	ev.Body = base64.StdEncoding.EncodeToString([]byte(`{"a":"<é>"}`))
	ev.IsBase64Encoded = true
	ev.RawQueryString = "api-version=2025-03-15&startTime=2025-01-01T00%3A00%3A00.000Z&q=a+b"
	if _, err := h(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"a":"<é>"}` {
		t.Errorf("body = %q", got.Body)
	}
	if got.Query.Get("startTime") != "2025-01-01T00:00:00.000Z" || got.Query.Get("q") != "a b" {
		t.Errorf("query = %v", got.Query)
	}

	bad := event()
	bad.Body = "not base64!!"
	bad.IsBase64Encoded = true
	resp, err := h(context.Background(), bad)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || decodeError(t, resp.Body).Error.Code != "InvalidRequestBody" {
		t.Errorf("bad base64 = %d %s; want 400 InvalidRequestBody", resp.StatusCode, resp.Body)
	}

	badQ := event()
	badQ.RawQueryString = "api-version=%zz"
	resp, err = h(context.Background(), badQ)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 400 || decodeError(t, resp.Body).Error.Code != "InvalidQuery" {
		t.Errorf("bad query = %d %s; want 400 InvalidQuery", resp.StatusCode, resp.Body)
	}
}

func TestRequestHelpers(t *testing.T) {
	ev := event()
	ev.Headers = map[string]string{"host": "localhost:9447", "x-ms-date": "d", "repeatability-request-id": "r1"}
	ev.PathParameters = map[string]string{
		"plain":   "19:abc@thread.v2",
		"encoded": "19%3Aabc%40thread.v2",
		"twice":   "19%253Aabc",
		"broken":  "100%",
	}
	r := &apigw.Request{Event: &ev}
	if r.Header("X-MS-Date") != "d" || r.Header("Repeatability-Request-Id") != "r1" || r.Header("missing") != "" {
		t.Errorf("Header() does not look up lower-case names")
	}
	for name, want := range map[string]string{"plain": "19:abc@thread.v2", "encoded": "19:abc@thread.v2", "twice": "19%3Aabc", "broken": "100%", "absent": ""} {
		if got := r.PathParam(name); got != want {
			t.Errorf("PathParam(%s) = %q; want %q", name, got, want)
		}
	}
	if r.Host() != "localhost:9447" || r.BaseURL() != "https://localhost:9447" {
		t.Errorf("Host/BaseURL = %q %q", r.Host(), r.BaseURL())
	}
	if loc := apigw.Location(r, "/chat/threads/x"); loc["Location"] != "https://localhost:9447/chat/threads/x" {
		t.Errorf("Location = %v", loc)
	}
	ev.Headers = map[string]string{}
	if r.Host() != "abc.execute-api.eu-west-1.amazonaws.com" {
		t.Errorf("Host() without a header = %q; want the domain name", r.Host())
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		emptyOK  bool
		code     string
		target   string
		contains []string
	}{
		{"ok", `{"topic":"t","participants":[]}`, false, "", "", nil},
		{"empty not allowed", ``, false, "MissingRequestBody", "body", nil},
		{"whitespace not allowed", " \n\t", false, "MissingRequestBody", "body", nil},
		{"empty allowed", ``, true, "", "", nil},
		{"whitespace allowed", "  \r\n", true, "", "", nil},
		{"malformed", `{"topic":`, false, "InvalidRequestBody", "body", nil},
		{"syntax error", `{"topic" "x"}`, false, "InvalidRequestBody", "body", []string{"not valid JSON"}},
		{"trailing data", `{"topic":"t"} {}`, false, "InvalidRequestBody", "body", []string{"after"}},
		{"topic of the wrong type", `{"topic":5}`, false, "InvalidRequestBody", "topic", []string{`"topic"`, "string", "number"}},
		{"participants not an array", `{"topic":"t","participants":{}}`, false, "InvalidRequestBody", "participants", []string{`"participants"`, "array", "object"}},
		{"metadata value not a string", `{"topic":"t","metadata":{"a":1}}`, false, "InvalidRequestBody", "metadata", []string{`"metadata"`, "string", "number"}},
		{"metadata not an object", `{"topic":"t","metadata":"x"}`, false, "InvalidRequestBody", "metadata", []string{`"metadata"`, "object", "string"}},
		{"nested rawId", `{"topic":"t","participants":[{"communicationIdentifier":{"rawId":5}}]}`, false, "InvalidRequestBody", "participants.communicationIdentifier.rawId", []string{"participants.communicationIdentifier.rawId", "string"}},
		{"retention days as string", `{"topic":"t","retentionPolicy":{"kind":"none","deleteThreadAfterDays":"30"}}`, false, "InvalidRequestBody", "retentionPolicy.deleteThreadAfterDays", []string{"retentionPolicy.deleteThreadAfterDays", "integer"}},
		{"shareHistoryTime without zone", `{"topic":"t","participants":[{"communicationIdentifier":{"rawId":"x"},"shareHistoryTime":"2025-01-01T00:00:00"}]}`, false, "InvalidRequestBody", "body", []string{"RFC 3339"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v acs.CreateChatThreadRequest
			err := apigw.DecodeJSON(&apigw.Request{Body: []byte(tt.body)}, &v, tt.emptyOK)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("DecodeJSON() = %v", err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.BadRequest || fe.Code != tt.code {
				t.Fatalf("DecodeJSON() = %v; want 400 %s", err, tt.code)
			}
			if fe.Target != tt.target {
				t.Errorf("target = %q; want %q", fe.Target, tt.target)
			}
			for _, s := range tt.contains {
				if !strings.Contains(fe.Message, s) {
					t.Errorf("message %q does not mention %q", fe.Message, s)
				}
			}
		})
	}

	// Type errors that are not about a named field must still read sensibly.
	messageTests := []struct {
		name    string
		body    string
		v       any
		mustNot string
	}{
		{"top-level array", `[]`, &acs.CreateChatThreadRequest{}, `field ""`},
		{"top-level string", `"x"`, &acs.CreateIdentityRequest{}, `field ""`},
		{"fraction for an integer", `{"expiresInMinutes":60.5}`, &acs.CreateIdentityRequest{}, "must be a JSON number, not number"},
		{"integer overflow", `{"expiresInMinutes":1e30}`, &acs.CreateIdentityRequest{}, "must be a JSON number, not number"},
	}
	for _, tt := range messageTests {
		t.Run("message: "+tt.name, func(t *testing.T) {
			err := apigw.DecodeJSON(&apigw.Request{Body: []byte(tt.body)}, tt.v, false)
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.BadRequest || fe.Code != "InvalidRequestBody" {
				t.Fatalf("DecodeJSON() = %v; want 400 InvalidRequestBody", err)
			}
			if strings.Contains(fe.Message, tt.mustNot) {
				t.Errorf("message %q contains %q", fe.Message, tt.mustNot)
			}
		})
	}

	var ir acs.CreateIdentityRequest
	err := apigw.DecodeJSON(&apigw.Request{Body: []byte(`{"createTokenWithScopes":"chat"}`)}, &ir, true)
	if fe, ok := fault.As(err); !ok || fe.Target != "createTokenWithScopes" || !strings.Contains(fe.Message, "array") {
		t.Errorf("scopes as a string = %v; want a 400 naming createTokenWithScopes as an array", err)
	}
	err = apigw.DecodeJSON(&apigw.Request{Body: []byte(`{"expiresInMinutes":"60"}`)}, &ir, true)
	if fe, ok := fault.As(err); !ok || fe.Target != "expiresInMinutes" || !strings.Contains(fe.Message, "integer") {
		t.Errorf("expiresInMinutes as a string = %v; want a 400 naming expiresInMinutes as an integer", err)
	}
}
