// Package apigw adapts API Gateway HTTP API (payload 2.0) events to
// Threadline's handlers and back: it decodes requests, reads the authorizer's
// verdict, renders ACS-shaped JSON, and maps every refusal to its HTTP status
// and ACS error body in one place (errors.go).
package apigw

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/obs"
)

// Request is one HTTP API request as a handler sees it.
type Request struct {
	Event *events.APIGatewayV2HTTPRequest
	Body  []byte
	Query url.Values
}

// Header returns a request header; API Gateway lower-cases header names.
func (r *Request) Header(name string) string {
	return r.Event.Headers[strings.ToLower(name)]
}

// PathParam returns a path parameter, percent-decoded. HTTP APIs decode the
// path already; ids taken from a nextLink may arrive encoded twice over.
func (r *Request) PathParam(name string) string {
	v := r.Event.PathParameters[name]
	if strings.Contains(v, "%") {
		if d, err := url.PathUnescape(v); err == nil {
			return d
		}
	}
	return v
}

// Host is the host the client addressed, with its port.
func (r *Request) Host() string {
	if h := r.Header("host"); h != "" {
		return h
	}
	return r.Event.RequestContext.DomainName
}

// BaseURL is the absolute URL of the API root, for Location and nextLink.
func (r *Request) BaseURL() string { return "https://" + r.Host() }

// Response is what a handler answers.
type Response struct {
	Status  int
	Headers map[string]string
	Body    any // marshalled as JSON; nil for no body
}

// Handler serves one operation.
type Handler func(ctx context.Context, r *Request) (Response, error)

// JSON answers status with v as the body.
func JSON(status int, v any) Response { return Response{Status: status, Body: v} }

// NoContent answers status with no body.
func NoContent(status int) Response { return Response{Status: status} }

// DecodeJSON reads the body into v. An empty body is allowed only when
// emptyOK (some operations' bodies are optional); malformed JSON or a value
// of the wrong type is a 400 that names the problem.
func DecodeJSON(r *Request, v any, emptyOK bool) error {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		if emptyOK {
			return nil
		}
		return fault.Invalid("MissingRequestBody", "body", "The request needs a JSON body.")
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	if err := dec.Decode(v); err != nil {
		return bodyError(err)
	}
	if dec.More() {
		return fault.Invalid("InvalidRequestBody", "body", "The request body has data after its JSON value.")
	}
	return nil
}

func bodyError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case asErr(err, &te) && te.Field == "":
		return fault.Invalid("InvalidRequestBody", "body", "The request body must be a JSON %s, not %s.", jsonKind(te.Type.Kind().String()), te.Value)
	case asErr(err, &te):
		return fault.Invalid("InvalidRequestBody", te.Field, "The field %q must be a JSON %s, not %s.", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case asErr(err, &se):
		return fault.Invalid("InvalidRequestBody", "body", "The request body is not valid JSON: %v (at byte %d).", se, se.Offset)
	default:
		return fault.Invalid("InvalidRequestBody", "body", "The request body could not be read: %v.", err)
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	case "bool":
		return "boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	default:
		return "number"
	}
}

// HTTP wraps a Handler as a Lambda handler for HTTP API events, logging one
// line per request and turning errors into ACS error responses.
func HTTP(op string, log *slog.Logger, h Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, err error) {
		start := time.Now()
		reqID := ev.RequestContext.RequestID
		ctx, rec := obs.WithRecorder(ctx)
		var herr error
		defer func() {
			// Recover first, so a panic is counted as the 500 it becomes.
			if p := recover(); p != nil {
				log.ErrorContext(ctx, "panic", "operation", op, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				herr = fmt.Errorf("panic: %v", p)
				resp, err = errorResponse(herr, reqID), nil
			}
			rec.Add(obs.Requests, 1)
			rec.Add(obs.ClientErrors, b2f(resp.StatusCode >= 400 && resp.StatusCode < 500))
			rec.Add(obs.ServerErrors, b2f(resp.StatusCode >= 500))
			rec.Add(obs.Throttled, b2f(resp.StatusCode == http.StatusTooManyRequests)) // a rate limit: only they answer 429
			rec.Milliseconds(obs.Latency, time.Since(start))
			defer rec.Flush(ctx, log, op)
			attrs := []any{"operation", op, "status", resp.StatusCode, "durationMs", time.Since(start).Milliseconds(),
				"apiRequestId", reqID, "route", ev.RouteKey}
			if t := ev.PathParameters["chatThreadId"]; t != "" {
				attrs = append(attrs, "threadId", t)
			}
			switch {
			case resp.StatusCode >= 500:
				log.ErrorContext(ctx, "request", append(attrs, "error", fmt.Sprint(herr))...)
			case herr != nil:
				fe, _ := fault.As(herr)
				log.InfoContext(ctx, "request", append(attrs, "code", fe.Code)...)
			default:
				log.InfoContext(ctx, "request", attrs...)
			}
		}()
		r, derr := newRequest(&ev)
		if derr != nil {
			herr = derr
			return errorResponse(derr, reqID), nil
		}
		out, herr := h(ctx, r)
		if herr != nil {
			return errorResponse(herr, reqID), nil
		}
		return render(out), nil
	}
}

func newRequest(ev *events.APIGatewayV2HTTPRequest) (*Request, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, fault.Invalid("InvalidRequestBody", "body", "The request body could not be decoded.")
		}
		body = b
	}
	q, err := url.ParseQuery(ev.RawQueryString)
	if err != nil {
		return nil, fault.Invalid("InvalidQuery", "query", "The query string is malformed: %v.", err)
	}
	return &Request{Event: ev, Body: body, Query: q}, nil
}

func render(out Response) events.APIGatewayV2HTTPResponse {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: out.Status, Headers: map[string]string{}}
	for k, v := range out.Headers {
		resp.Headers[k] = v
	}
	if out.Body != nil {
		resp.Headers["Content-Type"] = "application/json; charset=utf-8"
		resp.Body = marshal(out.Body)
	}
	return resp
}

// marshal encodes without HTML escaping, so message text round-trips byte
// for byte (json.Marshal would turn "<" into \u003c).
func marshal(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return `{"error":{"code":"InternalServerError","message":"The response could not be encoded."}}`
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Location is the Location header for a created resource.
func Location(r *Request, path string) map[string]string {
	return map[string]string{"Location": r.BaseURL() + path}
}
