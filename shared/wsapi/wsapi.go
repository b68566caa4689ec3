// Package wsapi adapts API Gateway WebSocket events to the real-time
// sessions: the $connect authorizer, $connect, $disconnect and $default.
package wsapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/realtime"
)

// TokenParam is the query parameter that carries the access token (browsers
// cannot set headers on a WebSocket handshake).
const TokenParam = "access_token"

// ReplayRoute is the route key of the internal event $connect sends to the
// $default function to replay a cursor once the connection is open. Clients
// cannot send it: API Gateway sets route keys.
const ReplayRoute = "$replay"

// Authorizer is the WebSocket API's REQUEST authorizer for $connect. A bad
// token fails the handshake with 401 (the error "Unauthorized", API
// Gateway's convention); a dependency failure is a 500.
func Authorizer(auth *identity.Authenticator, log *slog.Logger) func(context.Context, events.APIGatewayCustomAuthorizerRequestTypeRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayCustomAuthorizerRequestTypeRequest) (_ events.APIGatewayCustomAuthorizerResponse, err error) {
		ctx, rec := obs.WithRecorder(ctx)
		start := time.Now()
		defer func() {
			rec.Add(obs.Requests, 1)
			rec.Add(obs.ServerErrors, b2f(err != nil && err.Error() != "Unauthorized"))
			rec.Add(obs.ClientErrors, b2f(err != nil && err.Error() == "Unauthorized"))
			rec.Milliseconds(obs.Latency, time.Since(start))
			rec.Flush(ctx, log, "WsAuthorizer")
		}()
		p, err := auth.Authenticate(ctx, "Bearer "+ev.QueryStringParameters[TokenParam])
		// A throttled or failing store is a 500 (the client retries), not a
		// 401 (which says the token is bad).
		if fe, ok := fault.As(err); ok && fe.Kind != fault.Unavailable && fe.Kind != fault.Internal && fe.Kind != fault.TooManyRequests {
			log.InfoContext(ctx, "handshake refused", "code", fe.Code)
			return events.APIGatewayCustomAuthorizerResponse{}, errors.New("Unauthorized")
		}
		if err != nil {
			log.ErrorContext(ctx, "authorizer failed", "error", err.Error())
			return events.APIGatewayCustomAuthorizerResponse{}, err
		}
		if err := (chat.Caller{UserID: p.UserID, Scopes: p.Scopes}).RequireChat(); err != nil {
			// A valid token that cannot chat (voip only): an explicit Deny,
			// which API Gateway answers with a 403 handshake.
			log.InfoContext(ctx, "handshake refused", "code", "InsufficientScope")
			rec.Add(obs.ClientErrors, 1)
			return events.APIGatewayCustomAuthorizerResponse{
				PrincipalID: p.UserID,
				PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{Version: "2012-10-17", Statement: []events.IAMPolicyStatement{
					{Action: []string{"execute-api:Invoke"}, Effect: "Deny", Resource: []string{ev.MethodArn}},
				}},
			}, nil
		}
		return events.APIGatewayCustomAuthorizerResponse{
			PrincipalID: p.UserID,
			PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{Version: "2012-10-17", Statement: []events.IAMPolicyStatement{
				{Action: []string{"execute-api:Invoke"}, Effect: "Allow", Resource: []string{ev.MethodArn}},
			}},
			Context: map[string]any{"userId": p.UserID, "scopes": strings.Join(p.Scopes, ","), "expires": strconv.FormatInt(p.Expires.Unix(), 10)},
		}, nil
	}
}

// caller reads the user the authorizer admitted; API Gateway passes its
// context to every route of the connection, $disconnect included.
func caller(ev events.APIGatewayWebsocketProxyRequest) (string, time.Time) {
	m, _ := ev.RequestContext.Authorizer.(map[string]any)
	user, _ := m["userId"].(string)
	if user == "" {
		user, _ = m["principalId"].(string)
	}
	var exp time.Time
	if s, _ := m["expires"].(string); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			exp = time.Unix(n, 0)
		}
	}
	return user, exp
}

// AsyncInvoker starts a function without waiting for it.
type AsyncInvoker interface {
	InvokeAsync(ctx context.Context, function string, payload []byte) error
}

var ok = events.APIGatewayProxyResponse{StatusCode: 200}

type route = func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error)

// instrument records a route's metrics: one EMF line per invocation.
func instrument(op string, log *slog.Logger, h route) route {
	return func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		ctx, rec := obs.WithRecorder(ctx)
		start := time.Now()
		resp, err := h(ctx, ev)
		rec.Add(obs.Requests, 1)
		rec.Add(obs.ClientErrors, b2f(resp.StatusCode >= 400 && resp.StatusCode < 500))
		rec.Add(obs.ServerErrors, b2f(err != nil || resp.StatusCode >= 500))
		rec.Milliseconds(obs.Latency, time.Since(start))
		rec.Flush(ctx, log, op)
		return resp, err
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Connect registers the connection and, when the URL has a cursor, asks the
// $default function to replay from it as soon as the connection is open.
func Connect(s *realtime.Sessions, replay AsyncInvoker, defaultFunction string, log *slog.Logger) func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return instrument("WsConnect", log, func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		user, exp := caller(ev)
		if user == "" {
			return events.APIGatewayProxyResponse{StatusCode: 401}, nil
		}
		id := ev.RequestContext.ConnectionID
		if err := s.Connect(ctx, user, id, exp); err != nil {
			log.ErrorContext(ctx, "connect failed", "error", err.Error())
			return events.APIGatewayProxyResponse{StatusCode: 500}, nil
		}
		if cursor := ev.QueryStringParameters["cursor"]; cursor != "" {
			r := ev
			r.RequestContext.RouteKey = ReplayRoute
			r.Body = string(mustJSON(realtime.ClientFrame{Action: "resume", Cursor: cursor}))
			payload, _ := json.Marshal(r)
			if err := replay.InvokeAsync(ctx, defaultFunction, payload); err != nil {
				// The connection still works; the client can send resume itself.
				log.ErrorContext(ctx, "replay not started", "error", err.Error())
			}
		}
		log.InfoContext(ctx, "connected", "connectionId", id)
		return ok, nil
	})
}

// Disconnect forgets the connection.
func Disconnect(s *realtime.Sessions, log *slog.Logger) func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return instrument("WsDisconnect", log, func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		user, _ := caller(ev)
		if err := s.Disconnect(ctx, user, ev.RequestContext.ConnectionID); err != nil {
			log.ErrorContext(ctx, "disconnect failed", "error", err.Error())
		}
		return ok, nil
	})
}

// Default answers client frames (ping, resume) and replays for $connect.
func Default(s *realtime.Sessions, log *slog.Logger) func(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return instrument("WsDefault", log, func(ctx context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		user, _ := caller(ev)
		id := ev.RequestContext.ConnectionID
		body := []byte(ev.Body)
		if ev.IsBase64Encoded {
			body, _ = base64.StdEncoding.DecodeString(ev.Body)
		}
		var err error
		if ev.RequestContext.RouteKey == ReplayRoute {
			f, _ := realtime.ParseClientFrame(body)
			err = s.Resume(ctx, user, id, f.Cursor, true)
		} else {
			err = s.Message(ctx, user, id, body)
		}
		if err != nil && !errors.Is(err, realtime.ErrGone) {
			log.ErrorContext(ctx, "frame failed", "connectionId", id, "error", err.Error())
			return events.APIGatewayProxyResponse{StatusCode: 500}, nil
		}
		return ok, nil
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
