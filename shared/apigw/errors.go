package apigw

import (
	"errors"
	"math"
	"net/http"
	"strconv"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/fault"
)

// statusOf is the one mapping from a refusal's kind to its HTTP status.
var statusOf = map[fault.Kind]int{
	fault.BadRequest:      http.StatusBadRequest,
	fault.Unauthorized:    http.StatusUnauthorized,
	fault.Forbidden:       http.StatusForbidden,
	fault.NotFound:        http.StatusNotFound,
	fault.Conflict:        http.StatusConflict,
	fault.Gone:            http.StatusGone,
	fault.TooLarge:        http.StatusRequestEntityTooLarge,
	fault.TooManyRequests: http.StatusTooManyRequests,
	fault.Unavailable:     http.StatusServiceUnavailable,
	fault.Internal:        http.StatusInternalServerError,
}

// acsCodeOf holds ACS's own top-level codes for the statuses the Chat API
// declares; apps match on them, so the specific reason goes one level down.
var acsCodeOf = map[fault.Kind]string{
	fault.Unauthorized:    fault.CodeUnauthorized,
	fault.Forbidden:       fault.CodeForbidden,
	fault.NotFound:        fault.CodeNotFound,
	fault.TooManyRequests: fault.CodeTooManyRequests,
	fault.Unavailable:     fault.CodeUnavailable,
}

// ErrorBody renders err as an ACS CommunicationErrorResponse and its status.
// Anything that is not a refusal is a 500 that leaks nothing but the request
// id to quote.
func ErrorBody(err error, requestID string) (int, acs.ErrorResponse, *fault.Error) {
	fe, ok := fault.As(err)
	if !ok {
		fe = &fault.Error{Kind: fault.Internal, Code: fault.CodeInternal,
			Message: "An unexpected error occurred; quote request id " + requestID + " when reporting it."}
	}
	body := acs.CommunicationError{Code: fe.Code, Message: fe.Message, Target: fe.Target}
	if top, ok := acsCodeOf[fe.Kind]; ok && top != fe.Code {
		body = acs.CommunicationError{Code: top, Message: fe.Message, Target: fe.Target,
			InnerError: &acs.CommunicationError{Code: fe.Code, Message: fe.Message}}
	}
	return statusOf[fe.Kind], acs.ErrorResponse{Error: body}, fe
}

func errorResponse(err error, requestID string) events.APIGatewayV2HTTPResponse {
	status, body, fe := ErrorBody(err, requestID)
	resp := render(JSON(status, body))
	if fe.RetryAfter > 0 {
		secs := int(math.Ceil(fe.RetryAfter.Seconds())) // never tell a client to come back early
		resp.Headers["Retry-After"] = strconv.Itoa(secs)
	}
	if status == http.StatusUnauthorized {
		resp.Headers["WWW-Authenticate"] = `Bearer error="invalid_token"`
	}
	return resp
}

func asErr[T any](err error, target *T) bool { return errors.As(err, target) }
