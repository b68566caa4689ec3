package wsgateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi/types"
	"github.com/coder/websocket"
)

// ---------------------------------------------------------------- fakes

type call struct {
	fn      string
	payload []byte
}

// fakeInvoker records every invocation and answers from per-function handlers
// (default: {"statusCode":200}).
type fakeInvoker struct {
	mu       sync.Mutex
	calls    []call
	handlers map[string]func([]byte) ([]byte, error)
	changed  chan struct{} // closed and replaced on every call
}

func newFake() *fakeInvoker {
	return &fakeInvoker{handlers: map[string]func([]byte) ([]byte, error){
		"auth": allow("user-1", map[string]any{"userId": "u-1", "n": 7, "admin": true}),
	}, changed: make(chan struct{})}
}

func (f *fakeInvoker) handle(fn string, h func([]byte) ([]byte, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[fn] = h
}

func (f *fakeInvoker) Invoke(_ context.Context, fn string, payload []byte) ([]byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, call{fn, append([]byte(nil), payload...)})
	h := f.handlers[fn]
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	if h == nil {
		return []byte(`{"statusCode":200}`), nil
	}
	return h(payload)
}

func (f *fakeInvoker) of(fn string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.fn == fn {
			out = append(out, c)
		}
	}
	return out
}

// wait returns the first n calls of fn, failing after 5 s.
func (f *fakeInvoker) wait(t *testing.T, fn string, n int) []call {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		f.mu.Lock()
		ch := f.changed
		f.mu.Unlock()
		if got := f.of(fn); len(got) >= n {
			return got[:n]
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %d %s calls; have %d", n, fn, len(f.of(fn)))
		}
	}
}

func allow(principal string, ctx map[string]any) func([]byte) ([]byte, error) {
	return func([]byte) ([]byte, error) {
		return json.Marshal(events.APIGatewayCustomAuthorizerResponse{
			PrincipalID: principal,
			PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{Version: "2012-10-17", Statement: []events.IAMPolicyStatement{
				{Action: []string{"execute-api:Invoke"}, Effect: "Allow", Resource: []string{"arn:aws:execute-api:local:000000000000:local/*"}},
			}},
			Context: ctx,
		})
	}
}

func canned(out string, err error) func([]byte) ([]byte, error) {
	return func([]byte) ([]byte, error) { return []byte(out), err }
}

// ---------------------------------------------------------------- harness

type env struct {
	t   *testing.T
	g   *Gateway
	inv *fakeInvoker
	srv *httptest.Server
}

func newEnv(t *testing.T, inv *fakeInvoker, mod func(*Gateway)) *env {
	t.Helper()
	g := &Gateway{
		Invoker: inv, Authorizer: "auth", IdentityQuery: "access_token",
		Connect: "connect", Disconnect: "disconnect", Default: "default",
	}
	if mod != nil {
		mod(g)
	}
	srv := httptest.NewUnstartedServer(g)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS noise from clients cut off at shutdown
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(g.Close) // runs first: closes the WebSockets before the server
	return &env{t: t, g: g, inv: inv, srv: srv}
}

type client struct {
	ws        *websocket.Conn
	msgs      chan received
	done      chan error   // the read side's final error
	bigFrames atomic.Int32 // server frames over 32 KB, seen on the wire
}

type received struct {
	typ  websocket.MessageType
	data []byte
}

func (e *env) dial(query string) (*client, *http.Response, error) {
	u := "wss" + strings.TrimPrefix(e.srv.URL, "https") + "/?" + query
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &client{msgs: make(chan received, 64), done: make(chan error, 1)}
	// The client's reads pass through a frameWatch too, to see the frames
	// the gateway sends (the library only hands over whole messages).
	tr := e.srv.Client().Transport.(*http.Transport).Clone()
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := tr.TLSClientConfig.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		fw := &frameWatch{maxFrame: 32 * 1024, maxMessage: 1 << 40, onData: func() {}}
		fw.onTooBig = func() { c.bigFrames.Add(1); fw.tooBig.Store(0) } // count every one
		return &clientWatch{Conn: tc, fw: fw}, nil
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr},
		HTTPHeader: http.Header{"User-Agent": {"wsgateway-test/1.0"}, "Origin": {"https://app.example.com"}},
	})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(1 << 20)
	c.ws = ws
	// Always reading, as a browser is, so close handshakes complete at once.
	go func() {
		for {
			typ, data, err := ws.Read(context.Background())
			if err != nil {
				c.done <- err
				return
			}
			c.msgs <- received{typ, data}
		}
	}()
	e.t.Cleanup(func() { _ = ws.CloseNow() })
	return c, resp, nil
}

// clientWatch feeds the server-to-client stream, after the 101 response's
// headers, to a frameWatch.
type clientWatch struct {
	net.Conn
	fw      *frameWatch
	head    []byte
	started bool
}

func (w *clientWatch) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	b := p[:n]
	if !w.started {
		w.head = append(w.head, b...)
		i := bytes.Index(w.head, []byte("\r\n\r\n"))
		if i < 0 {
			return n, err
		}
		w.started, b = true, w.head[i+4:]
	}
	w.fw.scan(b)
	return n, err
}

func (e *env) mustDial() *client {
	e.t.Helper()
	c, _, err := e.dial("access_token=tok")
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return c
}

func (c *client) send(t *testing.T, typ websocket.MessageType, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// closed waits for the server to close the connection and returns its status.
func (c *client) closed(t *testing.T) (websocket.StatusCode, string) {
	t.Helper()
	select {
	case err := <-c.done:
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	case <-time.After(5 * time.Second):
		t.Fatal("connection not closed within 5 s")
		return 0, ""
	}
}

func (c *client) next(t *testing.T) received {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case err := <-c.done:
		t.Fatalf("connection ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5 s")
	}
	return received{}
}

func (e *env) mgmt(base string) *apigatewaymanagementapi.Client {
	return apigatewaymanagementapi.New(apigatewaymanagementapi.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "secret", ""),
		HTTPClient:       e.srv.Client(),
		BaseEndpoint:     aws.String(e.srv.URL + base),
		RetryMaxAttempts: 1,
	})
}

// connID is the id of the n-th (1-based) connection, from its $connect event.
func (e *env) connID(n int) string {
	ev := decodeWS(e.t, e.inv.wait(e.t, "connect", n)[n-1].payload)
	return ev.RequestContext.ConnectionID
}

func decodeWS(t *testing.T, payload []byte) events.APIGatewayWebsocketProxyRequest {
	t.Helper()
	var ev events.APIGatewayWebsocketProxyRequest
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("event is not an APIGatewayWebsocketProxyRequest: %v\n%s", err, payload)
	}
	return ev
}

func post(t *testing.T, api *apigatewaymanagementapi.Client, id string, data []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := api.PostToConnection(ctx, &apigatewaymanagementapi.PostToConnectionInput{ConnectionId: aws.String(id), Data: data})
	return err
}

var idShape = regexp.MustCompile(`^[A-Za-z0-9+/]{15}=$`)

// ---------------------------------------------------------------- handshake

func TestHandshakeAllowed(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, func(g *Gateway) { g.Stage = "prod" })
	e.mustDial()

	// The authorizer gets a REQUEST event with the WebSocket request context.
	var authEv events.APIGatewayCustomAuthorizerRequestTypeRequest
	var authRaw struct {
		RequestContext events.APIGatewayWebsocketProxyRequestContext `json:"requestContext"`
	}
	raw := inv.wait(t, "auth", 1)[0].payload
	if err := json.Unmarshal(raw, &authEv); err != nil {
		t.Fatalf("authorizer event: %v", err)
	}
	_ = json.Unmarshal(raw, &authRaw)
	if authEv.Type != "REQUEST" || authEv.MethodArn != "arn:aws:execute-api:local:000000000000:local/prod/$connect" {
		t.Errorf("type %q methodArn %q", authEv.Type, authEv.MethodArn)
	}
	if authEv.QueryStringParameters["access_token"] != "tok" || authEv.MultiValueQueryStringParameters["access_token"][0] != "tok" {
		t.Errorf("query %v %v", authEv.QueryStringParameters, authEv.MultiValueQueryStringParameters)
	}
	if authEv.Headers["Sec-WebSocket-Key"] == "" || authEv.Headers["Origin"] != "https://app.example.com" || authEv.MultiValueHeaders["Host"] == nil {
		t.Errorf("headers %v", authEv.Headers)
	}
	arc := authRaw.RequestContext
	if arc.RouteKey != "$connect" || arc.EventType != "CONNECT" || arc.APIID != "local" || arc.Stage != "prod" ||
		arc.RequestID == "" || arc.DomainName == "" || !idShape.MatchString(arc.ConnectionID) {
		t.Errorf("authorizer requestContext %+v", arc)
	}

	// $connect gets the authorizer's context plus principalId.
	ev := decodeWS(t, inv.wait(t, "connect", 1)[0].payload)
	rc := ev.RequestContext
	if rc.RouteKey != "$connect" || rc.EventType != "CONNECT" || rc.MessageDirection != "IN" || rc.APIID != "local" || rc.Stage != "prod" {
		t.Errorf("requestContext %+v", rc)
	}
	if rc.ConnectionID != arc.ConnectionID || rc.ConnectedAt == 0 || rc.RequestTimeEpoch == 0 || rc.RequestID == "" || rc.ExtendedRequestID == "" {
		t.Errorf("ids/times %+v", rc)
	}
	if rc.Identity.SourceIP != "127.0.0.1" || rc.Identity.UserAgent != "wsgateway-test/1.0" {
		t.Errorf("identity %+v", rc.Identity)
	}
	want := map[string]any{"principalId": "user-1", "userId": "u-1", "n": float64(7), "admin": true}
	if got, _ := rc.Authorizer.(map[string]any); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("authorizer = %v, want %v", rc.Authorizer, want)
	}
	if ev.QueryStringParameters["access_token"] != "tok" || ev.Headers["X-Forwarded-For"] != "127.0.0.1" || ev.Headers["X-Forwarded-Proto"] != "https" || ev.IsBase64Encoded {
		t.Errorf("event %+v", ev)
	}
	if e.g.Connections() != 1 {
		t.Errorf("Connections() = %d", e.g.Connections())
	}
}

func TestHandshakeRejected(t *testing.T) {
	tests := []struct {
		name       string
		query      string
		auth       func([]byte) ([]byte, error)
		connect    func([]byte) ([]byte, error)
		wantStatus int
		wantCalls  []string // functions invoked, in order
	}{
		{name: "missing token", query: "", wantStatus: 401},
		{name: "empty token", query: "access_token=", wantStatus: 401},
		{name: "deny", query: "access_token=x", wantStatus: 403, wantCalls: []string{"auth"},
			auth: canned(`{"principalId":"u","policyDocument":{"Version":"2012-10-17","Statement":[{"Action":"execute-api:Invoke","Effect":"Deny","Resource":"*"}]}}`, nil)},
		{name: "explicit deny wins over allow", query: "access_token=x", wantStatus: 403, wantCalls: []string{"auth"},
			auth: canned(`{"principalId":"u","policyDocument":{"Statement":[{"Action":"execute-api:*","Effect":"Allow","Resource":"*"},{"Action":["execute-api:Invoke"],"Effect":"Deny","Resource":["arn:aws:execute-api:local:000000000000:local/$default/$connect"]}]}}`, nil)},
		{name: "allow for another resource", query: "access_token=x", wantStatus: 403, wantCalls: []string{"auth"},
			auth: canned(`{"principalId":"u","policyDocument":{"Statement":[{"Action":"execute-api:Invoke","Effect":"Allow","Resource":"arn:aws:execute-api:local:000000000000:other/*"}]}}`, nil)},
		{name: "authorizer Unauthorized error", query: "access_token=x", wantStatus: 401, wantCalls: []string{"auth"},
			auth: canned("", fmt.Errorf("function auth: %w", errors.New("Unauthorized")))},
		{name: "authorizer other error", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth"},
			auth: canned("", errors.New("boom"))},
		{name: "authorizer bad JSON", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth"},
			auth: canned(`not json`, nil)},
		{name: "authorizer nested context", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth"},
			auth: allow("u", map[string]any{"roles": []string{"a"}})},
		{name: "connect 403", query: "access_token=x", wantStatus: 403, wantCalls: []string{"auth", "connect"},
			connect: canned(`{"statusCode":403}`, nil)},
		{name: "connect 500", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth", "connect"},
			connect: canned(`{"statusCode":500,"body":"nope"}`, nil)},
		{name: "connect error", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth", "connect"},
			connect: canned("", errors.New("crash"))},
		{name: "connect without statusCode", query: "access_token=x", wantStatus: 500, wantCalls: []string{"auth", "connect"},
			connect: canned(`null`, nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := newFake()
			if tc.auth != nil {
				inv.handle("auth", tc.auth)
			}
			if tc.connect != nil {
				inv.handle("connect", tc.connect)
			}
			e := newEnv(t, inv, nil)
			c, resp, err := e.dial(tc.query)
			if err == nil {
				_ = c.ws.CloseNow()
				t.Fatal("handshake succeeded")
			}
			if resp == nil || resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %v, want %d (err %v)", resp, tc.wantStatus, err)
			}
			e.g.Close() // waits for everything, so no late call can slip past the check
			var got []string
			inv.mu.Lock()
			for _, c := range inv.calls {
				got = append(got, c.fn)
			}
			inv.mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(tc.wantCalls) {
				t.Errorf("calls = %v, want %v", got, tc.wantCalls)
			}
			if e.g.Connections() != 0 {
				t.Errorf("Connections() = %d", e.g.Connections())
			}
		})
	}
}

func TestNoAuthorizerAndUniqueIDs(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, func(g *Gateway) { g.Authorizer, g.IdentityQuery = "", "" })
	seen := map[string]bool{}
	for i := 1; i <= 5; i++ {
		if _, _, err := e.dial(""); err != nil {
			t.Fatal(err)
		}
		id := e.connID(i)
		if !idShape.MatchString(id) || seen[id] {
			t.Errorf("connection id %q: bad shape or reused", id)
		}
		seen[id] = true
	}
	if ev := decodeWS(t, inv.of("connect")[0].payload); ev.RequestContext.Authorizer != nil || ev.RequestContext.Stage != "$default" {
		t.Errorf("authorizer %v stage %q", ev.RequestContext.Authorizer, ev.RequestContext.Stage)
	}
	if len(inv.of("auth")) != 0 {
		t.Error("authorizer invoked")
	}
	// A plain HTTP request is not a handshake and calls nothing.
	resp, err := e.srv.Client().Get(e.srv.URL + "/")
	if err != nil || resp.StatusCode != http.StatusUpgradeRequired {
		t.Errorf("plain GET: %v %v", resp, err)
	}
}

// ---------------------------------------------------------------- messages

func TestMessagesInOrder(t *testing.T) {
	inv := newFake()
	var inFlight, maxInFlight atomic.Int32
	inv.handle("default", func([]byte) ([]byte, error) {
		n := inFlight.Add(1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		time.Sleep(2 * time.Millisecond) // give a second invocation the chance to overlap
		inFlight.Add(-1)
		return []byte(`{"statusCode":500}`), nil // ignored: no route responses
	})
	e := newEnv(t, inv, nil)
	c := e.mustDial()
	id := e.connID(1)
	const n = 30
	for i := range n {
		c.send(t, websocket.MessageText, fmt.Appendf(nil, `{"action":"ping","i":%d}`, i))
	}
	calls := inv.wait(t, "default", n)
	connectAuthz := decodeWS(t, inv.of("connect")[0].payload).RequestContext.Authorizer
	msgIDs := map[any]bool{}
	for i, cl := range calls {
		ev := decodeWS(t, cl.payload)
		rc := ev.RequestContext
		if want := fmt.Sprintf(`{"action":"ping","i":%d}`, i); ev.Body != want || ev.IsBase64Encoded {
			t.Fatalf("message %d: body %q base64 %v, want %q", i, ev.Body, ev.IsBase64Encoded, want)
		}
		if rc.RouteKey != "$default" || rc.EventType != "MESSAGE" || rc.ConnectionID != id || rc.MessageDirection != "IN" || rc.Stage != "$default" {
			t.Fatalf("requestContext %+v", rc)
		}
		if rc.MessageID == nil || msgIDs[rc.MessageID] || rc.ConnectedAt == 0 || rc.RequestTimeEpoch < rc.ConnectedAt {
			t.Fatalf("messageId %v / times %d %d", rc.MessageID, rc.ConnectedAt, rc.RequestTimeEpoch)
		}
		msgIDs[rc.MessageID] = true
		if fmt.Sprint(rc.Authorizer) != fmt.Sprint(connectAuthz) {
			t.Fatalf("authorizer %v, want %v", rc.Authorizer, connectAuthz)
		}
	}
	if m := maxInFlight.Load(); m != 1 {
		t.Errorf("%d $default invocations overlapped on one connection", m)
	}
	// No route response reaches the client.
	select {
	case m := <-c.msgs:
		t.Errorf("unexpected message to the client: %q", m.data)
	default:
	}
}

func TestBinaryAndFragmentedMessages(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	c := e.mustDial()

	bin := []byte{0, 1, 2, 0xff, 0xfe}
	c.send(t, websocket.MessageBinary, bin)
	// Exactly 128 KB in four frames of exactly 32 KB: both limits are inclusive.
	big := bytes.Repeat([]byte("abcdefgh"), 16*1024)
	w, err := c.ws.Writer(context.Background(), websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for p := big; len(p) > 0; p = p[32*1024:] {
		if _, err := w.Write(p[:32*1024]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	calls := inv.wait(t, "default", 2)
	ev := decodeWS(t, calls[0].payload)
	if !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString(bin) {
		t.Errorf("binary frame: body %q base64 %v", ev.Body, ev.IsBase64Encoded)
	}
	ev = decodeWS(t, calls[1].payload)
	if ev.IsBase64Encoded || ev.Body != string(big) {
		t.Errorf("fragmented message: %d bytes, base64 %v", len(ev.Body), ev.IsBase64Encoded)
	}
	if e.g.Connections() != 1 {
		t.Error("connection closed")
	}
}

// ---------------------------------------------------------------- limits

func TestTooBig(t *testing.T) {
	tests := []struct {
		name  string
		write func(*websocket.Conn) // errors ignored: the server may close mid-write
	}{
		{"33 KB frame", func(ws *websocket.Conn) {
			_ = ws.Write(context.Background(), websocket.MessageText, bytes.Repeat([]byte("x"), 33*1024))
		}},
		{"129 KB message in 32 KB frames", func(ws *websocket.Conn) {
			w, err := ws.Writer(context.Background(), websocket.MessageBinary)
			if err != nil {
				return
			}
			for range 4 {
				_, _ = w.Write(make([]byte, 32*1024))
			}
			_, _ = w.Write(make([]byte, 1024))
			_ = w.Close()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := newFake()
			e := newEnv(t, inv, nil)
			c := e.mustDial()
			c.send(t, websocket.MessageText, []byte("before")) // a good message first still gets through
			tc.write(c.ws)
			if code, _ := c.closed(t); code != websocket.StatusMessageTooBig {
				t.Errorf("close code = %d, want 1009", code)
			}
			ev := decodeWS(t, inv.wait(t, "disconnect", 1)[0].payload)
			if ev.RequestContext.DisconnectStatusCode != 1009 || ev.RequestContext.EventType != "DISCONNECT" || ev.RequestContext.RouteKey != "$disconnect" {
				t.Errorf("$disconnect %+v", ev.RequestContext)
			}
			e.g.Close()
			if d := inv.of("default"); len(d) != 1 || decodeWS(t, d[0].payload).Body != "before" {
				t.Errorf("$default calls = %d, want only the good message", len(d))
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	const idle = 500 * time.Millisecond
	inv := newFake()
	e := newEnv(t, inv, func(g *Gateway) { g.Limits.Idle = idle })
	c := e.mustDial()
	id := e.connID(1)
	api := e.mgmt("")

	// Client messages every 100 ms keep it open for twice the idle limit...
	for range 10 {
		c.send(t, websocket.MessageText, []byte("hi"))
		time.Sleep(100 * time.Millisecond)
	}
	// ...and so do server pushes.
	var last time.Time
	for range 10 {
		last = time.Now() // the server counts the push a moment later
		if err := post(t, api, id, []byte("push")); err != nil {
			t.Fatalf("push: %v", err)
		}
		c.next(t)
		time.Sleep(100 * time.Millisecond)
	}
	if e.g.Connections() != 1 {
		t.Fatal("closed while active")
	}
	code, reason := c.closed(t)
	if code != websocket.StatusGoingAway || reason != "Going away" {
		t.Errorf("close = %d %q, want 1001 Going away", code, reason)
	}
	if el := time.Since(last); el < idle {
		t.Errorf("closed %v after the last traffic, before the idle limit", el)
	}
	ev := decodeWS(t, inv.wait(t, "disconnect", 1)[0].payload)
	if ev.RequestContext.DisconnectStatusCode != 1001 {
		t.Errorf("disconnectStatusCode %d", ev.RequestContext.DisconnectStatusCode)
	}
}

func TestMaxLifetime(t *testing.T) {
	const life = 800 * time.Millisecond
	inv := newFake()
	e := newEnv(t, inv, func(g *Gateway) { g.Limits.MaxLifetime = life })
	start := time.Now()
	c := e.mustDial()
	stop := make(chan struct{})
	go func() { // traffic all along: only the lifetime can close it
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				_ = c.ws.Write(context.Background(), websocket.MessageText, []byte("hi"))
			}
		}
	}()
	code, _ := c.closed(t)
	close(stop)
	if code != websocket.StatusGoingAway {
		t.Errorf("close code = %d, want 1001", code)
	}
	if el := time.Since(start); el < life {
		t.Errorf("closed after %v, before MaxLifetime", el)
	}
	ev := decodeWS(t, inv.wait(t, "disconnect", 1)[0].payload)
	if ev.RequestContext.DisconnectStatusCode != 1001 || *ev.RequestContext.DisconnectReason != "Going away" {
		t.Errorf("$disconnect %d %v", ev.RequestContext.DisconnectStatusCode, ev.RequestContext.DisconnectReason)
	}
}

// ---------------------------------------------------------------- @connections

func TestPostToConnection(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	c := e.mustDial()
	id := e.connID(1)
	tests := []struct {
		name    string
		base    string
		data    []byte
		wantTyp websocket.MessageType
	}{
		{"text", "", []byte(`{"type":"pong"}`), websocket.MessageText},
		{"not UTF-8 is binary", "", []byte{0xff, 0x00, 0xfe}, websocket.MessageBinary},
		{"stage prefix", "/prod", []byte("staged"), websocket.MessageText},
		{"100 KB is one message", "", bytes.Repeat([]byte("é"), 50*1024), websocket.MessageText},
		{"exactly 128 KB", "", bytes.Repeat([]byte("z"), 128*1024), websocket.MessageText},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := post(t, e.mgmt(tc.base), id, tc.data); err != nil {
				t.Fatalf("PostToConnection: %v", err)
			}
			m := c.next(t)
			if m.typ != tc.wantTyp || !bytes.Equal(m.data, tc.data) {
				t.Errorf("got %v %d bytes, want %v %d bytes", m.typ, len(m.data), tc.wantTyp, len(tc.data))
			}
			if n := c.bigFrames.Load(); n != 0 {
				t.Errorf("%d frames over 32 KB on the wire: big pushes must be fragmented", n)
			}
		})
	}
}

func TestConcurrentPostsDoNotInterleave(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	c := e.mustDial()
	id := e.connID(1)
	api := e.mgmt("")
	const n = 12
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// 70 KB: three frames each, so interleaving would mix letters.
			if err := post(t, api, id, bytes.Repeat([]byte{byte('a' + i)}, 70*1024)); err != nil {
				t.Errorf("post %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	seen := map[byte]bool{}
	for range n {
		m := c.next(t)
		if len(m.data) != 70*1024 || bytes.Count(m.data, m.data[:1]) != len(m.data) || seen[m.data[0]] {
			t.Fatalf("message of %d bytes is mixed or repeated", len(m.data))
		}
		seen[m.data[0]] = true
	}
}

func TestGetConnection(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	before := time.Now().Add(-time.Second)
	c := e.mustDial()
	id := e.connID(1)
	c.send(t, websocket.MessageText, []byte("activity"))
	inv.wait(t, "default", 1)

	out, err := e.mgmt("").GetConnection(context.Background(), &apigatewaymanagementapi.GetConnectionInput{ConnectionId: aws.String(id)})
	if err != nil {
		t.Fatalf("GetConnection: %v", err)
	}
	if out.ConnectedAt == nil || out.ConnectedAt.Before(before) || out.LastActiveAt == nil || out.LastActiveAt.Before(*out.ConnectedAt) {
		t.Errorf("connectedAt %v lastActiveAt %v", out.ConnectedAt, out.LastActiveAt)
	}
	if out.Identity == nil || aws.ToString(out.Identity.SourceIp) != "127.0.0.1" || aws.ToString(out.Identity.UserAgent) != "wsgateway-test/1.0" {
		t.Errorf("identity %+v", out.Identity)
	}

	// The raw JSON has exactly API Gateway's keys, times in RFC 3339.
	resp, err := e.srv.Client().Get(e.srv.URL + "/@connections/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(id))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || resp.StatusCode != 200 || len(raw) != 3 {
		t.Fatalf("GET %d %s", resp.StatusCode, body)
	}
	for _, k := range []string{"connectedAt", "lastActiveAt"} {
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(raw[k])); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	if ident, _ := raw["identity"].(map[string]any); ident["sourceIp"] != "127.0.0.1" || ident["userAgent"] != "wsgateway-test/1.0" {
		t.Errorf("identity %v", raw["identity"])
	}
}

func TestDeleteConnection(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	c := e.mustDial()
	id := e.connID(1)
	api := e.mgmt("")
	if _, err := api.DeleteConnection(context.Background(), &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); err != nil {
		t.Fatalf("DeleteConnection: %v", err)
	}
	// Closing (maybe still in its handshake) already means gone.
	var gone *types.GoneException
	if err := post(t, api, id, []byte("late")); !errors.As(err, &gone) {
		t.Errorf("post after delete: %v, want GoneException", err)
	}
	if code, _ := c.closed(t); code != websocket.StatusNormalClosure {
		t.Errorf("close code = %d, want 1000", code)
	}
	ev := decodeWS(t, inv.wait(t, "disconnect", 1)[0].payload)
	rc := ev.RequestContext
	if rc.DisconnectStatusCode != 1000 || rc.ConnectionID != id || rc.EventType != "DISCONNECT" {
		t.Errorf("$disconnect %+v", rc)
	}
	if fmt.Sprint(rc.Authorizer) != fmt.Sprint(decodeWS(t, inv.of("connect")[0].payload).RequestContext.Authorizer) {
		t.Errorf("$disconnect authorizer %v", rc.Authorizer)
	}
	if _, err := api.DeleteConnection(context.Background(), &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: aws.String(id)}); !errors.As(err, &gone) {
		t.Errorf("second delete: %v, want GoneException", err)
	}
}

func TestManagementErrors(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	e.mustDial()
	id := e.connID(1)
	api := e.mgmt("")
	ctx := context.Background()
	unknown := aws.String("AAAAAAAAAAAAAAA=")
	tests := []struct {
		name string
		call func() error
		want any
	}{
		{"post unknown", func() error { return post(t, api, *unknown, []byte("x")) }, new(*types.GoneException)},
		{"get unknown", func() error {
			_, err := api.GetConnection(ctx, &apigatewaymanagementapi.GetConnectionInput{ConnectionId: unknown})
			return err
		}, new(*types.GoneException)},
		{"delete unknown", func() error {
			_, err := api.DeleteConnection(ctx, &apigatewaymanagementapi.DeleteConnectionInput{ConnectionId: unknown})
			return err
		}, new(*types.GoneException)},
		{"post 129 KB", func() error { return post(t, api, id, make([]byte, 129*1024)) }, new(*types.PayloadTooLargeException)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil || !errors.As(err, tc.want) {
				t.Errorf("err = %v, want %T", err, tc.want)
			}
		})
	}
	if e.g.Connections() != 1 {
		t.Error("an error closed the connection")
	}
}

// ---------------------------------------------------------------- closing

func TestClientClose(t *testing.T) {
	inv := newFake()
	var logs bytes.Buffer // written before each function runs, read after
	e := newEnv(t, inv, func(g *Gateway) { g.Log = slog.New(slog.NewTextHandler(&logs, nil)) })
	c := e.mustDial()
	id := e.connID(1)
	if err := c.ws.Close(4000, "bye"); err != nil {
		t.Fatalf("close: %v", err)
	}
	ev := decodeWS(t, inv.wait(t, "disconnect", 1)[0].payload)
	if ev.RequestContext.DisconnectStatusCode != 4000 || *ev.RequestContext.DisconnectReason != "bye" {
		t.Errorf("$disconnect %d %v", ev.RequestContext.DisconnectStatusCode, ev.RequestContext.DisconnectReason)
	}
	if e.g.Connections() != 0 {
		t.Errorf("Connections() = %d", e.g.Connections())
	}
	for _, want := range []string{"$connect " + id + " 101", "$disconnect " + id + " 4000 bye"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestCloseDisconnectsEveryone(t *testing.T) {
	inv := newFake()
	e := newEnv(t, inv, nil)
	var clients []*client
	for range 3 {
		clients = append(clients, e.mustDial())
	}
	clients[0].send(t, websocket.MessageText, []byte("queued"))
	inv.wait(t, "default", 1)
	e.g.Close()
	for _, c := range clients {
		if code, _ := c.closed(t); code != websocket.StatusGoingAway {
			t.Errorf("close code = %d, want 1001", code)
		}
	}
	// Close waited for every $disconnect: no polling needed.
	if d := inv.of("disconnect"); len(d) != 3 {
		t.Fatalf("%d $disconnect calls, want 3", len(d))
	}
	if e.g.Connections() != 0 {
		t.Errorf("Connections() = %d", e.g.Connections())
	}
	if _, resp, err := e.dial("access_token=tok"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial after Close: %v %v", resp, err)
	}
	// No goroutine of the gateway is left (the handler's frames may take a
	// moment to unwind after its last Done).
	deadline := time.Now().Add(2 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "local/wsgateway.(*conn)") && !strings.Contains(stacks, "local/wsgateway.(*Gateway)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A subprotocol is agreed only if $connect answers with it, as in API Gateway.
func TestSubprotocolFromConnect(t *testing.T) {
	for _, answer := range []string{"graphql-ws", ""} {
		inv := newFake()
		inv.handle("connect", canned(fmt.Sprintf(`{"statusCode":200,"headers":{"Sec-WebSocket-Protocol":%q}}`, answer), nil))
		e := newEnv(t, inv, nil)
		u := "wss" + strings.TrimPrefix(e.srv.URL, "https") + "/?access_token=tok"
		ws, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPClient: e.srv.Client(), Subprotocols: []string{"graphql-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		if ws.Subprotocol() != answer {
			t.Errorf("subprotocol %q, want %q", ws.Subprotocol(), answer)
		}
		_ = ws.CloseNow()
	}
}
