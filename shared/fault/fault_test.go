package fault_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/fault"
)

func TestConstructors(t *testing.T) {
	tests := []struct {
		name       string
		err        *fault.Error
		kind       fault.Kind
		code       string
		target     string
		message    string
		retryAfter time.Duration
	}{
		{"Invalid", fault.Invalid("InvalidTopic", "topic", "bad %d", 1), fault.BadRequest, "InvalidTopic", "topic", "bad 1", 0},
		{"Unauthenticated", fault.Unauthenticated("TokenExpired", "old %s", "token"), fault.Unauthorized, "TokenExpired", "", "old token", 0},
		{"Denied", fault.Denied("InsufficientScope", "no"), fault.Forbidden, "InsufficientScope", "", "no", 0},
		{"Missing", fault.Missing("ThreadNotFound", "chatThreadId", "gone"), fault.NotFound, "ThreadNotFound", "chatThreadId", "gone", 0},
		{"Conflicting", fault.Conflicting("RepeatabilityConflict", "repeatability-request-id", "x"), fault.Conflict, "RepeatabilityConflict", "repeatability-request-id", "x", 0},
		{"Oversized", fault.Oversized("MessageTooLarge", "content", "big"), fault.TooLarge, "MessageTooLarge", "content", "big", 0},
		{"Throttled", fault.Throttled(2*time.Second, "slow down"), fault.TooManyRequests, fault.CodeTooManyRequests, "", "slow down", 2 * time.Second},
		{"Busy", fault.Busy(time.Second, "busy"), fault.Unavailable, fault.CodeUnavailable, "", "busy", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.err
			if e.Kind != tt.kind || e.Code != tt.code || e.Target != tt.target || e.Message != tt.message || e.RetryAfter != tt.retryAfter {
				t.Errorf("got %+v; want kind %v code %q target %q message %q retryAfter %v", *e, tt.kind, tt.code, tt.target, tt.message, tt.retryAfter)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	if got, want := fault.Invalid("InvalidTopic", "topic", "too long").Error(), "InvalidTopic (topic): too long"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
	if got, want := fault.Denied("Forbidden", "no").Error(), "Forbidden: no"; got != want {
		t.Errorf("Error() = %q; want %q", got, want)
	}
}

func TestAsAndIs(t *testing.T) {
	base := fault.Missing("ThreadNotFound", "", "x")
	wrapped := fmt.Errorf("reading: %w", base)
	if fe, ok := fault.As(wrapped); !ok || fe != base {
		t.Errorf("As(wrapped) = %v, %v; want the original fault", fe, ok)
	}
	if !fault.Is(wrapped, fault.NotFound) {
		t.Error("Is(wrapped, NotFound) = false")
	}
	if fault.Is(wrapped, fault.Forbidden) {
		t.Error("Is(wrapped, Forbidden) = true")
	}
	plain := errors.New("boom")
	if _, ok := fault.As(plain); ok {
		t.Error("As(plain error) = ok")
	}
	if fault.Is(plain, fault.Internal) {
		t.Error("Is(plain, Internal) = true; a plain error is not a refusal")
	}
	if fault.Is(nil, fault.Internal) {
		t.Error("Is(nil, Internal) = true")
	}
}
