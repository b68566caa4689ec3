package local

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/local/lambdahost"
)

// TestSampleEvents runs every events/<function>.json through its real
// handler, JSON in and out as Lambda does, so the samples stay valid
// `sam local invoke -e` payloads. They come from a stack that no longer
// exists, so they meet a fresh, empty one: the statuses below are what that
// must give (a signed Identity request is stale by now, a thread unknown).
func TestSampleEvents(t *testing.T) {
	s := startStack(t)
	host, ok := s.Gateway.Invoker.(*lambdahost.Host)
	if !ok {
		t.Fatal("the gateway does not invoke through lambdahost")
	}
	mapping, _ := makefileFunctions(t)
	cases := []struct {
		function string
		status   int    // HTTP (and WebSocket route) status; 0 HTTP authorizer, -1 WebSocket authorizer, -2 stream
		code     string // the ACS error code, or the authorizer's authError
	}{
		{"CreateIdentityFunction", 401, "Unauthorized"},
		{"DeleteIdentityFunction", 401, "Unauthorized"},
		{"IssueTokenFunction", 401, "Unauthorized"},
		{"RevokeTokensFunction", 401, "Unauthorized"},
		{"ChatAuthorizerFunction", 0, "TokenSignatureInvalid"},
		{"CreateThreadFunction", 201, ""},
		{"GetThreadFunction", 404, "NotFound"},
		{"ListThreadsFunction", 200, ""},
		{"UpdateThreadFunction", 404, "NotFound"},
		{"DeleteThreadFunction", 404, "NotFound"},
		{"SendMessageFunction", 404, "NotFound"},
		{"ListMessagesFunction", 404, "NotFound"},
		{"GetMessageFunction", 404, "NotFound"},
		{"UpdateMessageFunction", 404, "NotFound"},
		{"DeleteMessageFunction", 404, "NotFound"},
		{"ListParticipantsFunction", 404, "NotFound"},
		{"AddParticipantsFunction", 404, "NotFound"},
		{"RemoveParticipantFunction", 404, "NotFound"},
		{"SendReadReceiptFunction", 404, "NotFound"},
		{"ListReadReceiptsFunction", 404, "NotFound"},
		{"SendTypingFunction", 404, "NotFound"},
		{"PollEventsFunction", 200, ""},
		{"WsAuthorizerFunction", -1, "Unauthorized"}, // a token of another deployment fails the handshake
		{"WsConnectFunction", 200, ""},
		{"WsDisconnectFunction", 200, ""},
		{"WsDefaultFunction", 200, ""}, // the ping's connection is gone: nothing to answer
		{"DispatchFunction", -2, ""},   // a batch holding the creation's own system message: no event, no failure
	}
	if len(cases) != len(mapping) {
		t.Fatalf("%d cases for %d functions: add the new function's sample here", len(cases), len(mapping))
	}
	for _, c := range cases {
		t.Run(c.function, func(t *testing.T) {
			payload, err := os.ReadFile(repoFile(t, "events", mapping[c.function]+".json"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := host.Invoke(context.Background(), c.function, payload)
			if c.status == -1 {
				if err == nil || !strings.Contains(err.Error(), c.code) {
					t.Errorf("authorizer answered %s, %v; want the error %q", out, err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.status == -2 {
				var resp events.DynamoDBEventResponse
				if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
					t.Errorf("dispatch answered %s, %v", out, err)
				}
				return
			}
			if c.status == 0 {
				var resp events.APIGatewayV2CustomAuthorizerSimpleResponse
				if err := json.Unmarshal(out, &resp); err != nil {
					t.Fatal(err)
				}
				if !resp.IsAuthorized || resp.Context["authError"] != c.code {
					t.Errorf("authorizer answered %s", out)
				}
				return
			}
			var resp events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, c.status, resp.Body)
			}
			if c.code != "" {
				var e struct{ Error struct{ Code string } }
				if json.Unmarshal([]byte(resp.Body), &e) != nil || e.Error.Code != c.code {
					t.Errorf("body %s, want code %s", resp.Body, c.code)
				}
			}
		})
	}
}
