// Package fault is the vocabulary of refusals shared by the domain packages:
// an error that says what kind of failure it is, with an ACS error code, a
// message that tells the caller what to fix, and the offending field. The
// mapping from a Kind to an HTTP status lives in exactly one place, the API
// adapter (shared/apigw).
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a failure; each kind has one HTTP status.
type Kind int

// The kinds, with the HTTP status the adapter gives each.
const (
	Internal        Kind = iota // 500: a bug or an unexpected dependency failure
	BadRequest                  // 400
	Unauthorized                // 401
	Forbidden                   // 403
	NotFound                    // 404
	Conflict                    // 409
	Gone                        // 410: something that existed is no longer kept
	TooLarge                    // 413
	TooManyRequests             // 429, with RetryAfter
	Unavailable                 // 503, with RetryAfter
)

// ACS's own codes for the statuses the Chat API declares. SDK users match on
// these, so refusals of those kinds keep them as the top-level code and carry
// the specific reason as the inner error.
const (
	CodeUnauthorized    = "Unauthorized"
	CodeForbidden       = "Forbidden"
	CodeNotFound        = "NotFound"
	CodeTooManyRequests = "TooManyRequests"
	CodeUnavailable     = "ServiceUnavailable"
	CodeInternal        = "InternalServerError"
)

// Error is a refusal with everything needed to render an ACS error body.
type Error struct {
	Kind       Kind
	Code       string // the specific reason, e.g. "InvalidTopic" or "TokenExpired"
	Message    string // what is wrong and how to fix it
	Target     string // the offending field or parameter, if any
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Target, e.Message)
	}
	return e.Code + ": " + e.Message
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var fe *Error
	ok := errors.As(err, &fe)
	return fe, ok
}

// Is reports whether err is a refusal of kind k.
func Is(err error, k Kind) bool {
	fe, ok := As(err)
	return ok && fe.Kind == k
}

func newf(k Kind, code, target, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Target: target, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 for a request that cannot be accepted as sent.
func Invalid(code, target, format string, args ...any) *Error {
	return newf(BadRequest, code, target, format, args...)
}

// Unauthenticated is a 401: no valid credential.
func Unauthenticated(code, format string, args ...any) *Error {
	return newf(Unauthorized, code, "", format, args...)
}

// Denied is a 403: a valid caller who may not do this.
func Denied(code, format string, args ...any) *Error {
	return newf(Forbidden, code, "", format, args...)
}

// Missing is a 404.
func Missing(code, target, format string, args ...any) *Error {
	return newf(NotFound, code, target, format, args...)
}

// Expired is a 410.
func Expired(code, target, format string, args ...any) *Error {
	return newf(Gone, code, target, format, args...)
}

// Conflicting is a 409.
func Conflicting(code, target, format string, args ...any) *Error {
	return newf(Conflict, code, target, format, args...)
}

// Oversized is a 413.
func Oversized(code, target, format string, args ...any) *Error {
	return newf(TooLarge, code, target, format, args...)
}

// Throttled is a 429 that tells the client when to come back.
func Throttled(retryAfter time.Duration, format string, args ...any) *Error {
	e := newf(TooManyRequests, CodeTooManyRequests, "", format, args...)
	e.RetryAfter = retryAfter
	return e
}

// Busy is a 503 for a transient dependency failure (a throttled table).
func Busy(retryAfter time.Duration, format string, args ...any) *Error {
	e := newf(Unavailable, CodeUnavailable, "", format, args...)
	e.RetryAfter = retryAfter
	return e
}
