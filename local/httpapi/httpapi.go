// Package httpapi emulates an API Gateway HTTP API on one machine: it matches
// the routes of template.yaml, runs the Lambda authorizer the way API Gateway
// does (identity source, simple responses, result cache), builds payload 2.0
// events exactly as API Gateway does (decoded rawPath, lower-cased headers,
// comma-joined repeats) and turns function results back into HTTP responses.
package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"
)

// Invoker runs a function by logical id with a JSON event, like Lambda.
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Route is one route key and the function behind it.
type Route struct {
	Method     string
	Path       string // with {param} segments
	Function   string
	Authorizer string // name of the authorizer; "" for none
}

// Authorizer is a Lambda authorizer (payload 2.0, simple responses).
type Authorizer struct {
	Function       string
	IdentityHeader string
	CacheTTL       time.Duration
}

// Gateway serves routes over HTTP like API Gateway's $default stage.
type Gateway struct {
	Routes      []Route
	Authorizers map[string]Authorizer
	Invoker     Invoker
	Log         *slog.Logger // one line per request
	Now         func() time.Time

	mu    sync.Mutex
	cache map[string]authResult
}

type authResult struct {
	resp    events.APIGatewayV2CustomAuthorizerSimpleResponse
	expires time.Time
}

// maxPayload is the HTTP API payload limit.
const maxPayload = 10 << 20

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// ServeHTTP handles one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	status, fn := g.serve(w, r)
	if g.Log != nil {
		g.Log.Info(fmt.Sprintf("%s %s %d", r.Method, r.URL.RequestURI(), status),
			"function", fn, "ms", time.Since(start).Milliseconds())
	}
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) (int, string) {
	if origin := r.Header.Get("Origin"); origin != "" {
		// The local stack allows any origin (the template's CorsConfiguration
		// narrows this in AWS).
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "location, retry-after, x-ms-client-request-id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "authorization, content-type, repeatability-request-id, x-ms-client-request-id, x-ms-useragent")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return http.StatusNoContent, ""
		}
	}
	// HTTP APIs route on, and hand functions, the decoded path.
	path, err := url.PathUnescape(r.URL.EscapedPath())
	if err != nil {
		return message(w, http.StatusBadRequest, "Bad Request"), ""
	}
	route, params := g.match(r.Method, path)
	if route == nil {
		return message(w, http.StatusNotFound, "Not Found"), ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		return message(w, http.StatusBadRequest, "Bad Request"), route.Function
	}
	if len(body) > maxPayload {
		return message(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large"), route.Function
	}
	ev := g.event(r, route, path, params, body)
	if route.Authorizer != "" {
		ctx, status := g.authorize(r.Context(), route, &ev)
		if status != 0 {
			return message(w, status, http.StatusText(status)), route.Function
		}
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: ctx}
	}
	payload, _ := json.Marshal(ev)
	out, err := g.Invoker.Invoke(r.Context(), route.Function, payload)
	if err != nil {
		if g.Log != nil {
			g.Log.Error("function failed", "function", route.Function, "error", err.Error())
		}
		return message(w, http.StatusInternalServerError, "Internal Server Error"), route.Function
	}
	return writeResult(w, out), route.Function
}

// match finds the route for a decoded path; literal segments win over
// parameters, as in API Gateway.
func (g *Gateway) match(method, path string) (*Route, map[string]string) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var best *Route
	var bestParams map[string]string
	bestLiterals := -1
	for i := range g.Routes {
		rt := &g.Routes[i]
		if rt.Method != method && rt.Method != "ANY" {
			continue
		}
		rsegs := strings.Split(strings.TrimPrefix(rt.Path, "/"), "/")
		if len(rsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		literals := 0
		ok := true
		for j, rs := range rsegs {
			switch {
			case strings.HasPrefix(rs, "{") && strings.HasSuffix(rs, "}"):
				if segs[j] == "" {
					ok = false
				}
				params[rs[1:len(rs)-1]] = segs[j]
			case rs == segs[j]:
				literals++
			default:
				ok = false
			}
		}
		if ok && literals > bestLiterals {
			best, bestParams, bestLiterals = rt, params, literals
		}
	}
	return best, bestParams
}

func (g *Gateway) event(r *http.Request, rt *Route, path string, params map[string]string, body []byte) events.APIGatewayV2HTTPRequest {
	now := g.now().UTC()
	headers := map[string]string{}
	var cookies []string
	for k, vs := range r.Header {
		lk := strings.ToLower(k)
		if lk == "cookie" {
			for _, v := range vs {
				for _, c := range strings.Split(v, ";") {
					cookies = append(cookies, strings.TrimSpace(c))
				}
			}
			continue
		}
		headers[lk] = strings.Join(vs, ",")
	}
	headers["host"] = r.Host
	host, port, _ := net.SplitHostPort(r.Host)
	srcIP, _, _ := net.SplitHostPort(r.RemoteAddr)
	headers["x-forwarded-for"] = srcIP
	headers["x-forwarded-port"] = port
	headers["x-forwarded-proto"] = "https"
	var query map[string]string
	if qs, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(qs) > 0 {
		query = map[string]string{}
		for k, vs := range qs {
			query[k] = strings.Join(vs, ",")
		}
	}
	if len(params) == 0 {
		params = nil
	}
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: rt.Method + " " + rt.Path, RawPath: path, RawQueryString: r.URL.RawQuery,
		Cookies: cookies, Headers: headers, QueryStringParameters: query, PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey: rt.Method + " " + rt.Path, AccountID: "000000000000", Stage: "$default",
			RequestID: strings.ReplaceAll(uuid.NewString(), "-", "")[:16], APIID: "local",
			DomainName: host, DomainPrefix: strings.Split(host, ".")[0],
			Time: now.Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: path, Protocol: r.Proto, SourceIP: srcIP, UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) && utf8.Valid(body) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	return ev
}

func textual(ct string) bool {
	ct = strings.ToLower(ct)
	for _, t := range []string{"text/", "json", "xml", "javascript", "x-www-form-urlencoded"} {
		if strings.Contains(ct, t) {
			return true
		}
	}
	return ct == ""
}

// authorize runs the route's authorizer, or answers from its cache. A
// missing identity source is refused with 401 before the authorizer runs,
// and a denial is 403, exactly as API Gateway does it.
func (g *Gateway) authorize(ctx context.Context, rt *Route, ev *events.APIGatewayV2HTTPRequest) (map[string]any, int) {
	a, ok := g.Authorizers[rt.Authorizer]
	if !ok {
		return nil, http.StatusInternalServerError
	}
	identity := ev.Headers[strings.ToLower(a.IdentityHeader)]
	if identity == "" {
		return nil, http.StatusUnauthorized
	}
	cacheKey := rt.Authorizer + "\x00" + identity
	g.mu.Lock()
	hit, found := g.cache[cacheKey]
	g.mu.Unlock()
	if found && g.now().Before(hit.expires) {
		return verdict(hit.resp)
	}
	req := events.APIGatewayV2CustomAuthorizerV2Request{
		Version: "2.0", Type: "REQUEST",
		RouteArn:       fmt.Sprintf("arn:aws:execute-api:local:000000000000:local/$default/%s%s", ev.RequestContext.HTTP.Method, ev.RawPath),
		IdentitySource: []string{identity}, RouteKey: ev.RouteKey, RawPath: ev.RawPath, RawQueryString: ev.RawQueryString,
		Cookies: ev.Cookies, Headers: ev.Headers, QueryStringParameters: ev.QueryStringParameters,
		RequestContext: ev.RequestContext, PathParameters: ev.PathParameters,
	}
	payload, _ := json.Marshal(req)
	out, err := g.Invoker.Invoke(ctx, a.Function, payload)
	if err != nil {
		if g.Log != nil {
			g.Log.Error("authorizer failed", "function", a.Function, "error", err.Error())
		}
		return nil, http.StatusInternalServerError
	}
	var resp events.APIGatewayV2CustomAuthorizerSimpleResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, http.StatusInternalServerError
	}
	if a.CacheTTL > 0 {
		g.mu.Lock()
		if g.cache == nil {
			g.cache = map[string]authResult{}
		}
		g.cache[cacheKey] = authResult{resp: resp, expires: g.now().Add(a.CacheTTL)}
		g.mu.Unlock()
	}
	return verdict(resp)
}

func verdict(r events.APIGatewayV2CustomAuthorizerSimpleResponse) (map[string]any, int) {
	if !r.IsAuthorized {
		return nil, http.StatusForbidden
	}
	return r.Context, 0
}

// FlushAuthorizerCache forgets every cached verdict (tests use it to see a
// revocation at once instead of after the cache TTL).
func (g *Gateway) FlushAuthorizerCache() {
	g.mu.Lock()
	g.cache = nil
	g.mu.Unlock()
}

// writeResult interprets a payload 2.0 function result.
func writeResult(w http.ResponseWriter, out []byte) int {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(out, &probe); err != nil || probe["statusCode"] == nil {
		// API Gateway treats a result without statusCode as a 200 JSON body.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
		return http.StatusOK
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		return message(w, http.StatusInternalServerError, "Internal Server Error")
	}
	keys := make([]string, 0, len(resp.Headers))
	for k := range resp.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.Header().Set(k, resp.Headers[k])
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return message(w, http.StatusInternalServerError, "Internal Server Error")
		}
		body = b
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, bytes.NewReader(body))
	return resp.StatusCode
}

// message answers the way API Gateway itself does: {"message": "..."}.
func message(w http.ResponseWriter, status int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"message":%q}`, msg)
	return status
}
