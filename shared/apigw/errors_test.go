package apigw_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/fault"
)

func TestErrorBodyEveryKind(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		status    int
		top       string
		inner     string // "" when there must be no innererror
		target    string
		retryWant time.Duration
	}{
		{"bad request keeps its code", fault.Invalid("InvalidTopic", "topic", "too long"), http.StatusBadRequest, "InvalidTopic", "", "topic", 0},
		{"unauthorized", fault.Unauthenticated("TokenExpired", "expired"), http.StatusUnauthorized, "Unauthorized", "TokenExpired", "", 0},
		{"forbidden", fault.Denied("InsufficientScope", "no"), http.StatusForbidden, "Forbidden", "InsufficientScope", "", 0},
		{"not found", fault.Missing("ThreadNotFound", "chatThreadId", "gone"), http.StatusNotFound, "NotFound", "ThreadNotFound", "chatThreadId", 0},
		{"conflict keeps its code", fault.Conflicting("RepeatabilityConflict", "repeatability-request-id", "reused"), http.StatusConflict, "RepeatabilityConflict", "", "repeatability-request-id", 0},
		{"too large keeps its code", fault.Oversized("MessageTooLarge", "content", "big"), http.StatusRequestEntityTooLarge, "MessageTooLarge", "", "content", 0},
		{"throttled", fault.Throttled(2*time.Second, "slow"), http.StatusTooManyRequests, "TooManyRequests", "", "", 2 * time.Second},
		{"throttled with a specific code", &fault.Error{Kind: fault.TooManyRequests, Code: "ThreadRateLimited", Message: "m", RetryAfter: time.Second}, http.StatusTooManyRequests, "TooManyRequests", "ThreadRateLimited", "", time.Second},
		{"busy", fault.Busy(time.Second, "busy"), http.StatusServiceUnavailable, "ServiceUnavailable", "", "", time.Second},
		{"busy with a specific code", &fault.Error{Kind: fault.Unavailable, Code: "TableThrottled", Message: "m"}, http.StatusServiceUnavailable, "ServiceUnavailable", "TableThrottled", "", 0},
		{"internal fault keeps its code", &fault.Error{Kind: fault.Internal, Code: "Corrupt", Message: "m"}, http.StatusInternalServerError, "Corrupt", "", "", 0},
		{"unauthorized already generic", fault.Unauthenticated("Unauthorized", "m"), http.StatusUnauthorized, "Unauthorized", "", "", 0},
		{"wrapped fault", fmt.Errorf("ctx: %w", fault.Denied("NotAParticipant", "no")), http.StatusForbidden, "Forbidden", "NotAParticipant", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, fe := apigw.ErrorBody(tt.err, "req-123")
			if status != tt.status {
				t.Errorf("status = %d; want %d", status, tt.status)
			}
			e := body.Error
			if e.Code != tt.top {
				t.Errorf("code = %q; want %q", e.Code, tt.top)
			}
			if e.Message == "" {
				t.Error("message is empty; the SDKs need both code and message")
			}
			if e.Target != tt.target {
				t.Errorf("target = %q; want %q", e.Target, tt.target)
			}
			switch {
			case tt.inner == "" && e.InnerError != nil:
				t.Errorf("innererror = %+v; want none", e.InnerError)
			case tt.inner != "" && (e.InnerError == nil || e.InnerError.Code != tt.inner || e.InnerError.Message == ""):
				t.Errorf("innererror = %+v; want code %q with a message", e.InnerError, tt.inner)
			}
			if fe == nil || fe.RetryAfter != tt.retryWant {
				t.Errorf("returned fault = %+v; want RetryAfter %v", fe, tt.retryWant)
			}
		})
	}
}

func TestErrorBodyPlainError(t *testing.T) {
	status, body, fe := apigw.ErrorBody(errors.New("dynamodb: secret table name leaked"), "req-42")
	if status != http.StatusInternalServerError || body.Error.Code != "InternalServerError" {
		t.Fatalf("status %d code %q; want 500 InternalServerError", status, body.Error.Code)
	}
	if !strings.Contains(body.Error.Message, "req-42") {
		t.Errorf("message %q does not quote the request id", body.Error.Message)
	}
	if strings.Contains(body.Error.Message, "dynamodb") || strings.Contains(body.Error.Message, "secret") {
		t.Errorf("message %q leaks the internal error", body.Error.Message)
	}
	if body.Error.InnerError != nil {
		t.Errorf("innererror = %+v; want none", body.Error.InnerError)
	}
	if fe == nil || fe.Kind != fault.Internal {
		t.Errorf("fault = %+v; want Internal", fe)
	}
}
