// Package wsgateway emulates an API Gateway WebSocket API (one stage) and its
// @connections management API on one machine. It runs the $connect REQUEST
// authorizer and the $connect, $default and $disconnect routes through an
// Invoker with the events API Gateway sends, enforces API Gateway's frame,
// message, idle and lifetime limits with the close codes AWS uses, and serves
// PostToConnection, GetConnection and DeleteConnection in the restjson shape
// the real apigatewaymanagementapi client expects.
package wsgateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/coder/websocket"
)

// Invoker runs a function by logical id with a JSON event, like Lambda (the
// same shape as httpapi.Invoker, so one lambdahost.Host serves both).
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// Limits are API Gateway's WebSocket quotas; zero fields take AWS's values.
// Tests shrink the durations to milliseconds.
type Limits struct {
	Idle        time.Duration // no data frame either way for this long -> close 1001 (AWS: 10 min)
	MaxLifetime time.Duration // connection age -> close 1001 (AWS: 2 h)
	MaxFrame    int           // client->server frame payload bytes, and push fragment size (AWS: 32 KB)
	MaxMessage  int           // client->server message and PostToConnection payload bytes (AWS: 128 KB)
}

// Defaults are API Gateway's (not adjustable in AWS either).
const (
	DefaultIdle        = 10 * time.Minute
	DefaultMaxLifetime = 2 * time.Hour
	DefaultMaxFrame    = 32 * 1024
	DefaultMaxMessage  = 128 * 1024
)

// maxAuthorizerResult is API Gateway's Lambda authorizer result size quota.
const maxAuthorizerResult = 8 * 1024

// Gateway serves one WebSocket API stage and its @connections API.
type Gateway struct {
	Invoker Invoker
	// Authorizer is the function id of the $connect REQUEST authorizer; "" = none.
	Authorizer string
	// IdentityQuery is the query-string parameter that is the authorizer's
	// identity source (route.request.querystring.<name>); "" = no identity source.
	IdentityQuery string
	// Function ids of the routes; "" = no route.
	Connect, Disconnect, Default string
	// Stage is the stage name in events and the authorizer's methodArn; "" = "$default".
	Stage  string
	Limits Limits
	Log    *slog.Logger // one line per connection event; nil = silent
	Now    func() time.Time
	// PostFault, when set, is asked about every PostToConnection to an open
	// connection: a non-zero status fails that post with it (410
	// GoneException, 429 LimitExceededException, anything else
	// InternalServerErrorException) and the data is not sent. Fault
	// injection for tests; nil in normal use.
	PostFault func(connectionID string, data []byte) int

	mu     sync.Mutex
	conns  map[string]*conn    // open connections (not closing) by id
	used   map[string]struct{} // every id handed out, so none is reused
	closed bool
	wg     sync.WaitGroup // every goroutine and handshake the gateway owns
}

func (g *Gateway) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Gateway) stage() string {
	if g.Stage != "" {
		return g.Stage
	}
	return "$default"
}

func (g *Gateway) limits() Limits {
	l := g.Limits
	if l.Idle <= 0 {
		l.Idle = DefaultIdle
	}
	if l.MaxLifetime <= 0 {
		l.MaxLifetime = DefaultMaxLifetime
	}
	if l.MaxFrame <= 0 {
		l.MaxFrame = DefaultMaxFrame
	}
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	return l
}

// Connections reports how many connections are open (closing ones excluded).
func (g *Gateway) Connections() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Close closes every connection with 1001 (each gets its $disconnect), refuses
// new ones, and returns once every goroutine of the gateway has ended.
func (g *Gateway) Close() {
	g.mu.Lock()
	g.closed = true
	open := make([]*conn, 0, len(g.conns))
	for _, c := range g.conns {
		open = append(open, c)
	}
	g.mu.Unlock()
	for _, c := range open {
		c.requestClose(websocket.StatusGoingAway, "Going away")
	}
	g.wg.Wait()
}

// ServeHTTP answers the management API on [/<stage>]/@connections/{id} and
// treats every other request as a WebSocket handshake.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if id, ok := managementID(r.URL.EscapedPath()); ok {
		g.manage(w, r, id)
		return
	}
	g.handshake(w, r)
}

// ---------------------------------------------------------------- handshake

func (g *Gateway) handshake(w http.ResponseWriter, r *http.Request) {
	if !isUpgrade(r) {
		message(w, http.StatusUpgradeRequired, "Upgrade Required")
		return
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		message(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	g.wg.Add(1) // under mu, so Close's Wait sees every handshake that got past the check
	id := g.newIDLocked()
	g.mu.Unlock()
	defer g.wg.Done()

	c, status, subprotocol := g.admit(r, id)
	if status != 0 {
		g.logf("$connect %s %d", id, status)
		message(w, status, http.StatusText(status))
		return
	}
	ww := &watchWriter{ResponseWriter: w, watch: &frameWatch{maxFrame: int64(c.limits.MaxFrame), maxMessage: int64(c.limits.MaxMessage)}}
	c.fw = ww.watch
	// The frame watcher reports oversized frames the moment their header
	// arrives; the read loop drops that message and the supervisor closes.
	ww.watch.onTooBig = func() { c.requestClose(websocket.StatusMessageTooBig, "Message too big") }
	ww.watch.onData = c.touch
	// Register before the 101 leaves: once the client sees the connection
	// open, a push to it (say, from a REST call it makes next) must not be 410.
	ww.onHijack = func() { g.register(c) }
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true} // API Gateway accepts any Origin
	if subprotocol != "" {
		opts.Subprotocols = []string{subprotocol}
	}
	ws, err := websocket.Accept(ww, r, opts)
	if err != nil {
		// $connect succeeded, so the function still hears about the end.
		g.logf("$connect %s upgrade failed: %v", id, err)
		c.finish(websocket.StatusAbnormalClosure, "", false)
		close(c.ready)
		g.invokeDisconnect(c)
		return
	}
	// API Gateway's message quota; coder/websocket closes with 1009 past it
	// (the frame watcher usually gets there first, with the same code).
	ws.SetReadLimit(int64(c.limits.MaxMessage))
	c.ws = ws
	close(c.ready)
	g.logf("$connect %s 101", id)
	g.wg.Go(c.supervise)
	g.wg.Go(c.dispatch)
	c.readLoop() // on the handler goroutine, which wg already counts
}

// register makes c visible to the management API, or closes it at once if
// the gateway closed during the handshake.
func (g *Gateway) register(c *conn) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		c.requestClose(websocket.StatusGoingAway, "Going away")
		return
	}
	g.conns[c.id] = c
	g.mu.Unlock()
}

// admit runs the authorizer and the $connect route. It returns the
// connection, or the HTTP status that rejects the handshake.
func (g *Gateway) admit(r *http.Request, id string) (*conn, int, string) {
	now := g.now()
	srcIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		srcIP = r.RemoteAddr
	}
	c := &conn{
		g: g, id: id, limits: g.limits(),
		sourceIP: srcIP, userAgent: r.UserAgent(), domain: r.Host,
		connectedAt: now, start: time.Now(),
		closeReq: make(chan struct{}), readDone: make(chan struct{}), ready: make(chan struct{}),
	}
	c.qcond = sync.NewCond(&c.qmu)
	headers, multiHeaders := eventHeaders(r)
	query, multiQuery := eventQuery(r)
	ctx := context.WithoutCancel(r.Context())

	if g.Authorizer != "" {
		if g.IdentityQuery != "" && r.URL.Query().Get(g.IdentityQuery) == "" {
			// API Gateway refuses a missing identity source without running the authorizer.
			return nil, http.StatusUnauthorized, ""
		}
		rc := c.requestContext("$connect", "CONNECT", now)
		ev := authorizerRequest{
			Type:                            "REQUEST",
			MethodArn:                       fmt.Sprintf("arn:aws:execute-api:local:000000000000:local/%s/$connect", g.stage()),
			Headers:                         headers,
			MultiValueHeaders:               multiHeaders,
			QueryStringParameters:           query,
			MultiValueQueryStringParameters: multiQuery,
			StageVariables:                  map[string]string{},
			RequestContext:                  rc,
		}
		authz, status := g.authorize(ctx, ev)
		if status != 0 {
			return nil, status, ""
		}
		c.authorizer = authz
	}

	if g.Connect == "" {
		return c, 0, ""
	}
	ev := events.APIGatewayWebsocketProxyRequest{
		Headers: headers, MultiValueHeaders: multiHeaders,
		QueryStringParameters: query, MultiValueQueryStringParameters: multiQuery,
		RequestContext: c.requestContext("$connect", "CONNECT", now),
	}
	payload, _ := json.Marshal(ev)
	out, err := g.Invoker.Invoke(ctx, g.Connect, payload)
	if err != nil {
		g.logError("function failed", g.Connect, err)
		return nil, http.StatusInternalServerError, ""
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		// A result without a usable statusCode is an integration error.
		return nil, http.StatusInternalServerError, ""
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, ""
	}
	sub := ""
	for k, v := range resp.Headers {
		if strings.EqualFold(k, "Sec-WebSocket-Protocol") {
			sub = v
		}
	}
	return c, 0, sub
}

// authorizerRequest is the REQUEST authorizer event of a WebSocket API: the
// fields of events.APIGatewayCustomAuthorizerRequestTypeRequest that API
// Gateway fills for $connect, with the WebSocket request context (routeKey,
// eventType, connectionId...) that type lacks. It decodes into that type.
type authorizerRequest struct {
	Type                            string                                        `json:"type"`
	MethodArn                       string                                        `json:"methodArn"`
	Headers                         map[string]string                             `json:"headers"`
	MultiValueHeaders               map[string][]string                           `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string                             `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string                           `json:"multiValueQueryStringParameters"`
	StageVariables                  map[string]string                             `json:"stageVariables"`
	RequestContext                  events.APIGatewayWebsocketProxyRequestContext `json:"requestContext"`
}

// authorize runs the REQUEST authorizer (never cached: WebSocket authorizers
// run on every connect) and returns the requestContext.authorizer map.
func (g *Gateway) authorize(ctx context.Context, ev authorizerRequest) (map[string]any, int) {
	payload, _ := json.Marshal(ev)
	out, err := g.Invoker.Invoke(ctx, g.Authorizer, payload)
	if err != nil {
		if isUnauthorized(err) {
			return nil, http.StatusUnauthorized
		}
		g.logError("authorizer failed", g.Authorizer, err)
		return nil, http.StatusInternalServerError
	}
	if len(out) > maxAuthorizerResult {
		g.logError("authorizer result over 8 KB", g.Authorizer, nil)
		return nil, http.StatusInternalServerError
	}
	var resp struct {
		PrincipalID    string         `json:"principalId"`
		PolicyDocument policyDocument `json:"policyDocument"`
		Context        map[string]any `json:"context"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		g.logError("authorizer result is not a policy", g.Authorizer, err)
		return nil, http.StatusInternalServerError
	}
	for k, v := range resp.Context {
		switch v.(type) {
		case map[string]any, []any:
			// API Gateway only passes string, number and boolean values.
			g.logError("authorizer context value "+k+" is an object or array", g.Authorizer, nil)
			return nil, http.StatusInternalServerError
		}
	}
	if !resp.PolicyDocument.allows(ev.MethodArn) {
		return nil, http.StatusForbidden
	}
	authz := make(map[string]any, len(resp.Context)+1)
	for k, v := range resp.Context {
		authz[k] = v
	}
	authz["principalId"] = resp.PrincipalID
	return authz, 0
}

// isUnauthorized reports the one authorizer error API Gateway turns into a
// 401: a function error whose message is exactly "Unauthorized".
func isUnauthorized(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "Unauthorized" {
			return true
		}
	}
	return false
}

// policyDocument is an IAM policy as authorizers write it: Action and
// Resource may be a string or a list (events.IAMPolicyStatement only takes lists).
type policyDocument struct {
	Version   string
	Statement []struct {
		Effect   string
		Action   stringOrList
		Resource stringOrList
	}
}

type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// allows evaluates the policy for execute-api:Invoke on arn the IAM way: an
// explicit Deny wins, otherwise an Allow is needed.
func (p policyDocument) allows(arn string) bool {
	allowed := false
	for _, st := range p.Statement {
		if !matchAny(st.Action, "execute-api:Invoke", true) || !matchAny(st.Resource, arn, false) {
			continue
		}
		switch {
		case strings.EqualFold(st.Effect, "Deny"):
			return false
		case strings.EqualFold(st.Effect, "Allow"):
			allowed = true
		}
	}
	return allowed
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// globMatch is IAM's wildcard match: * is any run (including "/"), ? one character.
func globMatch(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if globMatch(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && globMatch(p[1:], s[1:])
	default:
		return s != "" && s[0] == p[0] && globMatch(p[1:], s[1:])
	}
}

func isUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// eventHeaders builds headers the way WebSocket APIs pass them (REST v1
// style: original spelling, last value wins, every value in the multi map),
// with the X-Forwarded-* headers API Gateway adds.
func eventHeaders(r *http.Request) (map[string]string, map[string][]string) {
	single := map[string]string{}
	multi := map[string][]string{}
	set := func(k string, vs ...string) {
		if len(vs) == 0 {
			return
		}
		single[k] = vs[len(vs)-1]
		multi[k] = append([]string(nil), vs...)
	}
	for k, vs := range r.Header {
		// Go canonicalizes Sec-WebSocket-* to Sec-Websocket-*; restore AWS's spelling.
		if rest, ok := strings.CutPrefix(k, "Sec-Websocket-"); ok {
			k = "Sec-WebSocket-" + rest
		}
		set(k, vs...)
	}
	set("Host", r.Host)
	srcIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		srcIP = r.RemoteAddr
	}
	_, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		port = "443"
	}
	set("X-Forwarded-For", srcIP)
	set("X-Forwarded-Port", port)
	set("X-Forwarded-Proto", "https")
	return single, multi
}

func eventQuery(r *http.Request) (map[string]string, map[string][]string) {
	qs, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || len(qs) == 0 {
		return nil, nil
	}
	single := make(map[string]string, len(qs))
	for k, vs := range qs {
		single[k] = vs[len(vs)-1]
	}
	return single, qs
}

// newIDLocked returns a fresh id in API Gateway's shape: 15 base64
// characters and "=" (11 random bytes), e.g. "L0SM9cOFvHcCIhw=".
func (g *Gateway) newIDLocked() string {
	if g.used == nil {
		g.used = map[string]struct{}{}
		g.conns = map[string]*conn{}
	}
	for {
		id := newID()
		if _, dup := g.used[id]; !dup {
			g.used[id] = struct{}{}
			return id
		}
	}
}

func newID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

// ---------------------------------------------------------------- connection

type conn struct {
	g           *Gateway
	id          string
	limits      Limits
	sourceIP    string
	userAgent   string
	domain      string
	authorizer  map[string]any
	connectedAt time.Time // Gateway.Now at connect, for events and GetConnection
	start       time.Time // monotonic, for the limits
	active      atomic.Int64
	ws          *websocket.Conn // set before ready is closed; nil if the upgrade failed
	ready       chan struct{}
	fw          *frameWatch
	msgCount    int64 // data messages read so far (read loop only)

	wmu sync.Mutex // one push at a time, so fragmented pushes never interleave

	mu       sync.Mutex
	closing  bool
	code     websocket.StatusCode
	reason   string
	closeReq chan struct{} // closed when the server decides to close
	readDone chan struct{} // closed when the read loop has ended

	qmu     sync.Mutex
	qcond   *sync.Cond
	queue   []inbound
	qclosed bool
}

type inbound struct {
	typ  websocket.MessageType
	data []byte
}

// touch records data traffic for the idle limit and lastActiveAt.
func (c *conn) touch() { c.active.Store(int64(time.Since(c.start))) }

func (c *conn) lastActive() time.Time {
	return c.connectedAt.Add(time.Duration(c.active.Load()))
}

// finish records why the connection ends, once: the first reason wins, so a
// close the server started keeps its status when the client echoes it.
func (c *conn) finish(code websocket.StatusCode, reason string, signal bool) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.closing, c.code, c.reason = true, code, reason
	c.mu.Unlock()
	c.g.mu.Lock()
	if c.g.conns[c.id] == c {
		delete(c.g.conns, c.id) // from now on the management API answers 410
	}
	c.g.mu.Unlock()
	if signal {
		close(c.closeReq)
	}
	return true
}

// requestClose starts a server-side close; the supervisor performs it so the
// caller (a management request, a timer, Close) never waits on the client.
func (c *conn) requestClose(code websocket.StatusCode, reason string) bool {
	return c.finish(code, reason, true)
}

func (c *conn) status() (websocket.StatusCode, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason, c.closing
}

// supervise enforces the idle and lifetime limits and performs server-side closes.
func (c *conn) supervise() {
	timer := time.NewTimer(c.untilDeadline())
	defer timer.Stop()
	for {
		select {
		case <-c.readDone:
			// The client closed or the connection broke: release it.
			_ = c.ws.CloseNow()
			return
		case <-c.closeReq:
			code, reason, _ := c.status()
			// Close handshake: waits (5 s at most each way) for the client's echo.
			_ = c.ws.Close(code, reason)
			return
		case <-timer.C:
			if d := c.untilDeadline(); d > 0 {
				timer.Reset(d)
				continue
			}
			c.requestClose(websocket.StatusGoingAway, "Going away")
		}
	}
}

// untilDeadline is the time left before the idle or lifetime limit.
func (c *conn) untilDeadline() time.Duration {
	elapsed := time.Since(c.start)
	idle := time.Duration(c.active.Load()) + c.limits.Idle - elapsed
	life := c.limits.MaxLifetime - elapsed
	return min(idle, life)
}

func (c *conn) readLoop() {
	defer func() {
		close(c.readDone)
		c.qmu.Lock()
		c.qclosed = true
		c.qcond.Signal()
		c.qmu.Unlock()
	}()
	for {
		// No deadline on the context: coder/websocket would tear the
		// connection down without a close frame when it expires.
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			code, reason := clientStatus(err)
			c.finish(code, reason, false)
			return
		}
		c.msgCount++
		if bad := c.fw.tooBig.Load(); bad != 0 && c.msgCount >= bad {
			continue // the oversized message is dropped; the connection is closing with 1009
		}
		if _, _, closing := c.status(); closing {
			continue // API Gateway routes nothing once it has begun to close
		}
		c.qmu.Lock()
		c.queue = append(c.queue, inbound{typ, data})
		c.qcond.Signal()
		c.qmu.Unlock()
	}
}

// clientStatus is the disconnect status of a connection whose read side ended
// without the server having chosen one: the client's close frame, or 1006.
func clientStatus(err error) (websocket.StatusCode, string) {
	var ce websocket.CloseError
	switch {
	case errors.As(err, &ce):
		return ce.Code, ce.Reason
	case errors.Is(err, websocket.ErrMessageTooBig):
		return websocket.StatusMessageTooBig, "Message too big"
	default:
		return websocket.StatusAbnormalClosure, ""
	}
}

// dispatch invokes $default for each message, one at a time and in order
// (API Gateway invokes asynchronously; the local stack keeps per-connection
// order), then $disconnect once the connection is gone.
func (c *conn) dispatch() {
	for {
		c.qmu.Lock()
		for len(c.queue) == 0 && !c.qclosed {
			c.qcond.Wait()
		}
		if len(c.queue) == 0 {
			c.qmu.Unlock()
			break
		}
		m := c.queue[0]
		c.queue[0] = inbound{}
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		c.g.invokeMessage(c, m)
	}
	c.g.invokeDisconnect(c)
}

func (g *Gateway) invokeMessage(c *conn, m inbound) {
	if g.Default == "" {
		return
	}
	now := g.now()
	rc := c.requestContext("$default", "MESSAGE", now)
	rc.MessageID = newID()
	ev := events.APIGatewayWebsocketProxyRequest{RequestContext: rc}
	if m.typ == websocket.MessageBinary {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(m.data), true
	} else {
		ev.Body = string(m.data)
	}
	payload, _ := json.Marshal(ev)
	// Route responses are not configured, so the result is ignored.
	if _, err := g.Invoker.Invoke(context.Background(), g.Default, payload); err != nil {
		g.logError("function failed", g.Default, err)
	}
}

func (g *Gateway) invokeDisconnect(c *conn) {
	code, reason, _ := c.status()
	g.logf("$disconnect %s %d %s", c.id, code, reason)
	if g.Disconnect == "" {
		return
	}
	rc := c.requestContext("$disconnect", "DISCONNECT", g.now())
	rc.DisconnectStatusCode = int64(code)
	rc.DisconnectReason = &reason
	// API Gateway sends these four headers, and nothing else, to $disconnect.
	h := map[string]string{"Host": c.domain, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
	mh := map[string][]string{}
	for k, v := range h {
		mh[k] = []string{v}
	}
	ev := events.APIGatewayWebsocketProxyRequest{Headers: h, MultiValueHeaders: mh, RequestContext: rc}
	payload, _ := json.Marshal(ev)
	if _, err := g.Invoker.Invoke(context.Background(), g.Disconnect, payload); err != nil {
		g.logError("function failed", g.Disconnect, err)
	}
}

func (c *conn) requestContext(routeKey, eventType string, now time.Time) events.APIGatewayWebsocketProxyRequestContext {
	now = now.UTC()
	rid := newID()
	rc := events.APIGatewayWebsocketProxyRequestContext{
		RouteKey: routeKey, EventType: eventType, ConnectionID: c.id,
		ConnectedAt: c.connectedAt.UnixMilli(), RequestTime: now.Format("02/Jan/2006:15:04:05 -0700"),
		RequestTimeEpoch: now.UnixMilli(), RequestID: rid, ExtendedRequestID: rid,
		APIID: "local", Stage: c.g.stage(), DomainName: c.domain, MessageDirection: "IN",
		Identity: events.APIGatewayRequestIdentity{SourceIP: c.sourceIP, UserAgent: c.userAgent},
	}
	if c.authorizer != nil {
		rc.Authorizer = c.authorizer
	}
	return rc
}

// send pushes one message, fragmented into MaxFrame frames as API Gateway does.
func (c *conn) send(data []byte) error {
	<-c.ready // registered a moment before the upgrade completes
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, _, closing := c.status(); closing || c.ws == nil {
		return net.ErrClosed
	}
	typ := websocket.MessageText
	if !utf8.Valid(data) {
		typ = websocket.MessageBinary
	}
	// Not the request's context: coder/websocket kills the connection when a
	// write's context ends, and a caller giving up must not do that.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.touch()
	if len(data) <= c.limits.MaxFrame {
		return c.ws.Write(ctx, typ, data)
	}
	w, err := c.ws.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), c.limits.MaxFrame)
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return w.Close()
}

// ---------------------------------------------------------------- frame watch

// watchWriter hands coder/websocket a hijacked connection whose reads pass
// through a frameWatch: the library only exposes whole messages, and API
// Gateway's 32 KB limit is per frame.
type watchWriter struct {
	http.ResponseWriter
	watch    *frameWatch
	onHijack func() // just before the buffered 101 is flushed
}

func (w *watchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.onHijack()
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// brw.Reader may hold bytes the client sent right after the handshake.
	w.watch.Conn, w.watch.r = nc, brw.Reader
	return w.watch, bufio.NewReadWriter(bufio.NewReader(w.watch), brw.Writer), nil
}

// frameWatch parses the client-to-server stream just enough to see each
// frame header, passing every byte through unchanged.
type frameWatch struct {
	net.Conn
	r          io.Reader
	maxFrame   int64
	maxMessage int64
	onTooBig   func() // first oversized frame or message
	onData     func() // any data frame: traffic for the idle limit

	hdr       [14]byte
	hn        int
	remaining int64 // payload bytes left in the current frame
	msgs      int64 // data messages begun
	msgBytes  int64 // payload bytes of the current message so far
	tooBig    atomic.Int64
}

func (f *frameWatch) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.scan(p[:n])
	return n, err
}

func (f *frameWatch) scan(b []byte) {
	for len(b) > 0 {
		if f.remaining > 0 {
			k := min(int64(len(b)), f.remaining)
			b, f.remaining = b[k:], f.remaining-k
			continue
		}
		f.hdr[f.hn] = b[0]
		f.hn++
		b = b[1:]
		if f.hn < 2 {
			continue
		}
		need := 2
		switch f.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if f.hdr[1]&0x80 != 0 {
			need += 4 // masking key
		}
		if f.hn < need {
			continue
		}
		var length int64
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			length = int64(f.hdr[2])<<8 | int64(f.hdr[3])
		case 127:
			for _, x := range f.hdr[2:10] {
				length = length<<8 | int64(x)
			}
			if length < 0 {
				length = 1<<63 - 1
			}
		default:
			length = int64(l)
		}
		f.hn, f.remaining = 0, length
		f.frame(f.hdr[0]&0x0f, length)
	}
}

func (f *frameWatch) frame(opcode byte, length int64) {
	switch opcode {
	case 1, 2: // text, binary: a new message
		f.msgs++
		f.msgBytes = 0
	case 0: // continuation
	default: // control frames neither count as traffic nor carry data
		return
	}
	f.onData()
	f.msgBytes += length
	if (length > f.maxFrame || f.msgBytes > f.maxMessage) && f.tooBig.Load() == 0 {
		f.tooBig.Store(f.msgs)
		f.onTooBig()
	}
}

// ---------------------------------------------------------------- @connections

// managementID extracts the connection id from [/<stage>]/@connections/{id}.
func managementID(escaped string) (string, bool) {
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	if len(segs) == 3 {
		segs = segs[1:] // stage prefix
	}
	if len(segs) != 2 {
		return "", false
	}
	first, err := url.PathUnescape(segs[0])
	if err != nil || first != "@connections" {
		return "", false
	}
	id, err := url.PathUnescape(segs[1])
	if err != nil || id == "" {
		return "", false
	}
	return id, true
}

func (g *Gateway) lookup(id string) *conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[id]
}

func (g *Gateway) manage(w http.ResponseWriter, r *http.Request, id string) {
	w.Header().Set("x-amzn-RequestId", newID())
	switch r.Method {
	case http.MethodPost:
		max := g.limits().MaxMessage
		body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
		if err != nil {
			apiError(w, http.StatusBadRequest, "BadRequestException", "Could not read the request body")
			return
		}
		if len(body) > max {
			apiError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException", fmt.Sprintf("Message too long: %d bytes is over the %d-byte limit", len(body), max))
			return
		}
		c := g.lookup(id)
		if c != nil && g.PostFault != nil {
			if status := g.PostFault(id, body); status != 0 {
				injectedFailure(w, status)
				return
			}
		}
		if c == nil || c.send(body) != nil {
			gone(w)
			return
		}
		w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		c := g.lookup(id)
		if c == nil {
			gone(w)
			return
		}
		const iso = "2006-01-02T15:04:05.000Z07:00"
		out := struct {
			ConnectedAt  string `json:"connectedAt"`
			Identity     any    `json:"identity"`
			LastActiveAt string `json:"lastActiveAt"`
		}{
			ConnectedAt: c.connectedAt.UTC().Format(iso),
			Identity: struct {
				SourceIP  string `json:"sourceIp"`
				UserAgent string `json:"userAgent"`
			}{c.sourceIP, c.userAgent},
			LastActiveAt: c.lastActive().UTC().Format(iso),
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_ = json.NewEncoder(w).Encode(out)
	case http.MethodDelete:
		c := g.lookup(id)
		if c == nil || !c.requestClose(websocket.StatusNormalClosure, "Connection Closed Normally") {
			gone(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		apiError(w, http.StatusForbidden, "ForbiddenException", "Forbidden")
	}
	if g.Log != nil {
		g.Log.Debug(r.Method + " " + path.Join("/@connections", id))
	}
}

func gone(w http.ResponseWriter) {
	apiError(w, http.StatusGone, "GoneException", "Connection is gone")
}

// injectedFailure answers a post that PostFault fails, in the shape API
// Gateway gives that status.
func injectedFailure(w http.ResponseWriter, status int) {
	switch status {
	case http.StatusGone:
		gone(w)
	case http.StatusTooManyRequests:
		apiError(w, status, "LimitExceededException", "Rate exceeded")
	default:
		apiError(w, status, "InternalServerErrorException", "Internal server error")
	}
}

// apiError answers in restjson's error shape: the SDK reads the type from
// X-Amzn-ErrorType and the message from the body.
func apiError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("X-Amzn-ErrorType", typ)
	message(w, status, msg)
}

// message answers the way API Gateway itself does: {"message": "..."}.
func message(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"message":%q}`, msg)
}

func (g *Gateway) logf(format string, args ...any) {
	if g.Log != nil {
		g.Log.Info(fmt.Sprintf(format, args...))
	}
}

func (g *Gateway) logError(msg, function string, err error) {
	if g.Log == nil {
		return
	}
	attrs := []any{"function", function}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	g.Log.Error(msg, attrs...)
}
