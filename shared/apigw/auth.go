package apigw

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/hmacauth"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/obs"
)

// Keys of the authorizer context API Gateway hands to every operation.
const (
	ctxUserID      = "userId"
	ctxScopes      = "scopes"
	ctxExpires     = "expires"
	ctxAuthError   = "authError"
	ctxAuthMessage = "authMessage"
)

// Authorizer is the HTTP API Lambda authorizer (payload 2.0, simple
// responses). A bad token is not denied at the gateway: HTTP APIs answer a
// denial with 403 {"message":"Forbidden"}, which the ACS SDKs cannot read.
// Instead the verdict travels in the context and the operation answers an
// ACS-shaped 401 (see Principal). The result is cached per token by API
// Gateway, so the expiry is passed along and checked again per request.
func Authorizer(auth *identity.Authenticator, log *slog.Logger) func(context.Context, events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2CustomAuthorizerV2Request) (_ events.APIGatewayV2CustomAuthorizerSimpleResponse, err error) {
		ctx, rec := obs.WithRecorder(ctx)
		start := time.Now()
		defer func() {
			rec.Add(obs.Requests, 1)
			rec.Add(obs.ServerErrors, b2f(err != nil))
			rec.Milliseconds(obs.Latency, time.Since(start))
			rec.Flush(ctx, log, "ChatAuthorizer")
		}()
		header := ev.Headers["authorization"]
		if header == "" && len(ev.IdentitySource) > 0 {
			header = ev.IdentitySource[0]
		}
		p, err := auth.Authenticate(ctx, header)
		if err != nil {
			fe, ok := fault.As(err)
			if !ok || dependencyFailure(fe) {
				// A dependency failed: let API Gateway answer 500 rather
				// than cache a wrong verdict for this token.
				log.ErrorContext(ctx, "authorizer failed", "error", err.Error())
				return events.APIGatewayV2CustomAuthorizerSimpleResponse{}, err
			}
			log.InfoContext(ctx, "token refused", "code", fe.Code)
			rec.Add(obs.ClientErrors, 1)
			return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
				ctxAuthError: fe.Code, ctxAuthMessage: fe.Message,
			}}, nil
		}
		return events.APIGatewayV2CustomAuthorizerSimpleResponse{IsAuthorized: true, Context: map[string]any{
			ctxUserID: p.UserID, ctxScopes: strings.Join(p.Scopes, ","), ctxExpires: strconv.FormatInt(p.Expires.Unix(), 10),
		}}, nil
	}
}

// dependencyFailure reports a refusal that says nothing about the token: the
// store was throttled or failed (fault.Busy and the like). An authorizer
// must fail on it, not hand it over as the token's verdict, which API
// Gateway caches for the token: a transient throttle would lock the caller
// out for the cache's TTL.
func dependencyFailure(fe *fault.Error) bool {
	return fe.Kind == fault.Unavailable || fe.Kind == fault.Internal || fe.Kind == fault.TooManyRequests
}

// Principal returns the authenticated caller of a chat request, or the 401
// the authorizer decided on.
func (r *Request) Principal(now time.Time) (identity.Principal, error) {
	var lam map[string]any
	if a := r.Event.RequestContext.Authorizer; a != nil {
		lam = a.Lambda
	}
	str := func(k string) string { s, _ := lam[k].(string); return s }
	if code := str(ctxAuthError); code != "" {
		return identity.Principal{}, fault.Unauthenticated(code, "%s", str(ctxAuthMessage))
	}
	user := str(ctxUserID)
	if user == "" {
		return identity.Principal{}, fault.Unauthenticated("MissingToken", "The request carries no access token; send Authorization: Bearer <access token>.")
	}
	exp, err := strconv.ParseInt(str(ctxExpires), 10, 64)
	if err != nil || !now.Before(time.Unix(exp, 0)) {
		return identity.Principal{}, fault.Unauthenticated("TokenExpired", "The access token expired; get a new one from your identity service.")
	}
	var scopes []string
	if s := str(ctxScopes); s != "" {
		scopes = strings.Split(s, ",")
	}
	return identity.Principal{UserID: user, Scopes: scopes, Expires: time.Unix(exp, 0)}, nil
}

// VerifyHMAC checks the access-key signature of an Identity API request.
// HTTP APIs pass functions a decoded path, so both the path as received and
// the path as the SDKs encode it are offered as what the client signed.
func (r *Request) VerifyHMAC(keys [][]byte, now time.Time) error {
	path := r.Event.RawPath
	if path == "" {
		path = r.Event.RequestContext.HTTP.Path
	}
	paths := []string{path}
	if enc := hmacauth.EncodePath(path); enc != path {
		paths = append(paths, enc)
	}
	date := r.Header("x-ms-date")
	if date == "" {
		date = r.Header("date")
	}
	return hmacauth.Verify(keys, hmacauth.Request{
		Method:   r.Event.RequestContext.HTTP.Method,
		Paths:    paths,
		RawQuery: r.Event.RawQueryString,
		Host:     r.Host(),
		Date:     date,
		Hash:     r.Header("x-ms-content-sha256"),
		Auth:     r.Header("authorization"),
		Body:     r.Body,
	}, now)
}
