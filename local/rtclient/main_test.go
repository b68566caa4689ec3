package rtclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/ddblocal"
	"github.com/threadline/threadline/local/rtclient"
)

// One DynamoDB Local serves every test; each stack gets its own tables.
var sharedDDB *ddblocal.Server

func TestMain(m *testing.M) {
	os.Exit(ddblocal.RunTests(m, "rtclient", func(s *ddblocal.Server) { sharedDDB = s }))
}

var stackSeq atomic.Int64

type env struct {
	s   *local.Stack
	ids *acsclient.Identity
	hc  *http.Client
}

func startStack(t *testing.T) *env {
	t.Helper()
	s, err := local.Start(context.Background(), local.Config{
		StateDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", EventsAddr: "127.0.0.1:0",
		DynamoEndpoint: sharedDDB.Endpoint,
		TablePrefix:    fmt.Sprintf("rt%d_%d_", os.Getpid(), stackSeq.Add(1)),
		FunctionLog:    io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	hc, err := acsclient.HTTPClient(s.Info.CACert)
	if err != nil {
		t.Fatal(err)
	}
	endpoint, key, err := acsclient.ParseConnectionString(s.Info.ConnectionString)
	if err != nil {
		t.Fatal(err)
	}
	return &env{s: s, ids: &acsclient.Identity{Endpoint: endpoint, Key: key, HTTP: hc}, hc: hc}
}

func (e *env) user(t *testing.T) acsclient.User {
	t.Helper()
	u, err := e.ids.CreateUser(context.Background(), "chat")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) do(t *testing.T, token string, r acsclient.Request) acsclient.Response {
	t.Helper()
	c := &acsclient.Chat{Endpoint: e.s.Info.HTTPAPI, Token: token, HTTP: e.hc}
	resp, err := c.Do(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// thread creates a thread as creator with the others in it.
func (e *env) thread(t *testing.T, creator acsclient.User, others ...acsclient.User) string {
	t.Helper()
	ps := []any{}
	for _, o := range others {
		ps = append(ps, acsclient.Participant(o.ID, "other"))
	}
	resp := e.do(t, creator.Token, acsclient.Request{Method: http.MethodPost, Path: "/chat/threads?api-version=2025-03-15",
		Body: map[string]any{"topic": "rt", "participants": ps}})
	var out struct{ ChatThread struct{ ID string } }
	if resp.Status != http.StatusCreated || resp.JSON(&out) != nil {
		t.Fatalf("create thread: %s", resp)
	}
	return out.ChatThread.ID
}

// send posts a message and returns its id.
func (e *env) send(t *testing.T, token, thread, text string) string {
	t.Helper()
	resp := e.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": text}})
	var out struct{ ID string }
	if resp.Status != http.StatusCreated || resp.JSON(&out) != nil {
		t.Fatalf("send: %s", resp)
	}
	return out.ID
}

// waitStreams returns once every write so far went through the dispatcher.
func (e *env) waitStreams(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}
}

func fixedBackoff(int) time.Duration { return 20 * time.Millisecond }

// start runs a client for token until the test ends; the channel gets Run's
// result. mod adjusts the config (the defaults point at the stack).
func (e *env) start(t *testing.T, token string, mod func(*rtclient.Config)) (*rtclient.Client, <-chan error) {
	t.Helper()
	cfg := rtclient.Config{
		WebSocketURL: e.s.Info.WebSocket, HTTPAPI: e.s.Info.HTTPAPI, HTTPClient: e.hc,
		Token:   func(context.Context) (string, error) { return token, nil },
		Backoff: fixedBackoff, PollTimeout: 2 * time.Second,
		Log: testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	return runClient(t, cfg)
}

func runClient(t *testing.T, cfg rtclient.Config) (*rtclient.Client, <-chan error) {
	c := rtclient.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- c.Run(ctx)
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return c, done
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitState(t *testing.T, c *rtclient.Client, state string, timeout time.Duration) {
	t.Helper()
	waitFor(t, "state "+state, timeout, func() bool { return c.State() == state })
}

// msg is a chatMessageReceived as the tests look at it.
type msg struct {
	id, text, via string
}

// nextMessage returns the next chatMessageReceived, skipping other events.
func nextMessage(t *testing.T, c *rtclient.Client, timeout time.Duration) (msg, rtclient.Event) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("Events closed")
			}
			if ev.Type == "chatMessageReceived" {
				return messageOf(t, ev), ev
			}
		case <-deadline:
			t.Fatalf("no chatMessageReceived within %v", timeout)
		}
	}
}

// messagesFor collects every chatMessageReceived arriving within d.
func messagesFor(c *rtclient.Client, d time.Duration) []rtclient.Event {
	var out []rtclient.Event
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				return out
			}
			if ev.Type == "chatMessageReceived" {
				out = append(out, ev)
			}
		case <-deadline:
			return out
		}
	}
}

func messageOf(t *testing.T, ev rtclient.Event) msg {
	t.Helper()
	var d struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatalf("data of %s: %v", ev.Raw, err)
	}
	return msg{id: d.ID, text: d.Message, via: ev.Via}
}

// closedURL is a wss:// URL nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "wss://" + addr
}

// testLogger sends the client's log to t.Log (shown on failure) until the
// test ends; its cleanup runs after the client's, being registered first.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// proxy is a TCP proxy in front of the WebSocket API that the test controls:
// it can cut every open connection and refuse new ones, which the stack's
// own gateway cannot do without closing for good.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	refuse bool
	conns  map[net.Conn]struct{}
	opened atomic.Int64 // connections passed through
}

func newProxy(t *testing.T, targetURL string, refuse bool) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(targetURL, "wss://"), refuse: refuse, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	return p
}

func (p *proxy) URL() string { return "wss://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close() // the TLS handshake fails: a failed connect
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.opened.Add(1)
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// cut closes every open connection and sets whether new ones are refused.
func (p *proxy) cut(refuse bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = refuse
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) allow() {
	p.mu.Lock()
	p.refuse = false
	p.mu.Unlock()
}
