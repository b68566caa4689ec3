// Package apigwtest holds checks that tests of several API packages share
// (chatapi, identityapi): what every refusal must look like on the wire.
package apigwtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// RequireACSError checks that resp is an ACS CommunicationErrorResponse:
// JSON, an error with a code and a message (and an inner error, if any,
// with both), and a 401 that says how to authenticate.
func RequireACSError(t testing.TB, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%d: Content-Type = %q; want application/json", resp.StatusCode, ct)
	}
	var e struct {
		Error *struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil || e.Error == nil {
		t.Fatalf("%d body is not an ACS error: %q (%v)", resp.StatusCode, resp.Body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("%d error without code or message: %s", resp.StatusCode, resp.Body)
	}
	if ie := e.Error.InnerError; ie != nil && (ie.Code == "" || ie.Message == "") {
		t.Errorf("%d innererror without code or message: %s", resp.StatusCode, resp.Body)
	}
	if resp.StatusCode == http.StatusUnauthorized && resp.Headers["WWW-Authenticate"] == "" {
		t.Errorf("401 without WWW-Authenticate")
	}
}
