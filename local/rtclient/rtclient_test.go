package rtclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/local/rtclient"
)

func TestReceivesMessagesAndTyping(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	alice, bob := e.user(t), e.user(t)
	thread := e.thread(t, alice, bob)
	p := newProxy(t, e.s.Info.WebSocket, false) // only to count connections
	c, _ := e.start(t, bob.Token, func(cfg *rtclient.Config) {
		cfg.WebSocketURL = p.URL()
		cfg.PingEvery = 100 * time.Millisecond
	})
	waitState(t, c, rtclient.StateWebSocket, 10*time.Second)
	// The client drops a connection that leaves a ping unanswered for a
	// whole period: one connection after many pings means pongs came.
	time.Sleep(time.Second)
	if n := p.opened.Load(); n != 1 || c.State() != rtclient.StateWebSocket {
		t.Fatalf("%d connections (state %s) after 10 pings; want the first one still open", n, c.State())
	}

	id := e.send(t, alice.Token, thread, "hello")
	m, ev := nextMessage(t, c, 10*time.Second)
	if m.id != id || m.text != "hello" || m.via != rtclient.ViaWebSocket {
		t.Fatalf("got %+v, want message %s \"hello\" by websocket", m, id)
	}
	if ev.ID == "" || ev.Cursor == "" || ev.ThreadID != thread || ev.OccurredOn.IsZero() || !json.Valid(ev.Raw) {
		t.Fatalf("incomplete event %+v", ev)
	}
	var data struct {
		Sender struct{ RawID string } `json:"sender"`
	}
	if json.Unmarshal(ev.Data, &data) != nil || data.Sender.RawID != alice.ID {
		t.Errorf("sender %q, want alice %q", data.Sender.RawID, alice.ID)
	}
	waitFor(t, "the cursor to follow the event", 2*time.Second, func() bool { return c.Cursor() == ev.Cursor })

	// Typing indicators have no cursor and must not move it.
	before := c.Cursor()
	resp := e.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "typing"), Body: map[string]any{"senderDisplayName": "Alice"}})
	if resp.Status != http.StatusOK {
		t.Fatalf("typing: %s", resp)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-c.Events():
			if ev.Type != "typingIndicatorReceived" {
				continue
			}
			if ev.Cursor != "" || ev.Via != rtclient.ViaWebSocket || ev.ThreadID != thread {
				t.Errorf("typing event %+v", ev)
			}
			if c.Cursor() != before {
				t.Errorf("a typing indicator moved the cursor")
			}
			return
		case <-deadline:
			t.Fatal("no typingIndicatorReceived")
		}
	}
}

// TestReconnectResumesExactlyOnce cuts the connection under the client and
// sends while it is away: after reconnecting with its cursor it gets what it
// missed, in order, once, although the server re-sends events on purpose.
func TestReconnectResumesExactlyOnce(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	alice, bob := e.user(t), e.user(t)
	thread := e.thread(t, alice, bob)
	p := newProxy(t, e.s.Info.WebSocket, false)
	c, _ := e.start(t, bob.Token, func(cfg *rtclient.Config) {
		cfg.WebSocketURL = p.URL()
		cfg.FallbackAfter = -1 // stay on the WebSocket however long the proxy refuses
	})
	waitState(t, c, rtclient.StateWebSocket, 10*time.Second)
	first := e.send(t, alice.Token, thread, "m1")
	if m, _ := nextMessage(t, c, 10*time.Second); m.id != first {
		t.Fatalf("got %+v, want m1", m)
	}
	waitFor(t, "a cursor", 2*time.Second, func() bool { return c.Cursor() != "" })

	p.cut(true)
	waitState(t, c, rtclient.StateConnecting, 5*time.Second)
	var want []string
	for _, text := range []string{"m2", "m3", "m4"} {
		want = append(want, e.send(t, alice.Token, thread, text))
	}
	e.waitStreams(t) // dispatched (and pushed nowhere) while the client is away
	time.Sleep(200 * time.Millisecond)
	p.allow()

	got := messagesFor(c, 4*time.Second)
	var ids []string
	for _, ev := range got {
		m := messageOf(t, ev)
		ids = append(ids, m.id)
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("after reconnecting got messages %v, want %v exactly once in order", ids, want)
	}
	if c.State() != rtclient.StateWebSocket || p.opened.Load() < 2 {
		t.Errorf("state %s after %d connections; want a second websocket connection", c.State(), p.opened.Load())
	}
	// The resume starts a little before the cursor (docs/realtime.md), so m1
	// came again: the client must have dropped it.
	if c.Duplicates() == 0 {
		t.Error("no duplicate was received; the exactly-once check above proved nothing about dedupe")
	}
	t.Logf("duplicates dropped: %d", c.Duplicates())
}

func TestFallsBackToLongPolling(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	alice, bob := e.user(t), e.user(t)
	thread := e.thread(t, alice, bob)
	var tokens atomic.Int64
	c, _ := e.start(t, bob.Token, func(cfg *rtclient.Config) {
		cfg.WebSocketURL = closedURL(t)
		cfg.FallbackAfter = 2
		cfg.Token = func(context.Context) (string, error) { tokens.Add(1); return bob.Token, nil }
	})
	waitState(t, c, rtclient.StateLongPoll, 5*time.Second)
	id := e.send(t, alice.Token, thread, "by poll")
	m, ev := nextMessage(t, c, 10*time.Second)
	if m.id != id || m.via != rtclient.ViaLongPoll || ev.Cursor == "" {
		t.Fatalf("got %+v (cursor %q), want %s by longpoll", m, ev.Cursor, id)
	}
	if tokens.Load() < 3 {
		t.Errorf("Token was called %d times; want once per connect and poll", tokens.Load())
	}
}

// TestLongPollHandsBackToWebSocket: while long polling the client keeps
// trying the WebSocket and, once it opens, goes on there without losing or
// repeating anything.
func TestLongPollHandsBackToWebSocket(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	alice, bob := e.user(t), e.user(t)
	thread := e.thread(t, alice, bob)
	p := newProxy(t, e.s.Info.WebSocket, true)
	c, _ := e.start(t, bob.Token, func(cfg *rtclient.Config) {
		cfg.WebSocketURL = p.URL()
		cfg.FallbackAfter = 2
		cfg.WebSocketRetry = 300 * time.Millisecond
	})
	waitState(t, c, rtclient.StateLongPoll, 5*time.Second)
	polled := e.send(t, alice.Token, thread, "by poll")
	if m, _ := nextMessage(t, c, 10*time.Second); m.id != polled || m.via != rtclient.ViaLongPoll {
		t.Fatalf("got %+v, want %s by longpoll", m, polled)
	}
	p.allow()
	waitState(t, c, rtclient.StateWebSocket, 5*time.Second)
	pushed := e.send(t, alice.Token, thread, "by websocket")
	got := messagesFor(c, 3*time.Second)
	if len(got) != 1 || messageOf(t, got[0]) != (msg{pushed, "by websocket", rtclient.ViaWebSocket}) {
		var ms []msg
		for _, ev := range got {
			ms = append(ms, messageOf(t, ev))
		}
		t.Fatalf("after the handover got %+v, want only %s by websocket", ms, pushed)
	}
}

func TestRefusedToken(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	for _, tc := range []struct {
		name string
		ws   string
	}{
		{"websocket", e.s.Info.WebSocket},
		{"longpoll", closedURL(t)}, // falls back, then polling is refused
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			_, done := runClient(t, rtclient.Config{
				WebSocketURL: tc.ws, HTTPAPI: e.s.Info.HTTPAPI, HTTPClient: e.hc,
				Token:         func(context.Context) (string, error) { calls.Add(1); return "not-a-token", nil },
				FallbackAfter: 2, Backoff: fixedBackoff, Log: testLogger(t),
			})
			select {
			case err := <-done:
				if !errors.Is(err, rtclient.ErrTokenRefused) {
					t.Fatalf("Run returned %v, want ErrTokenRefused", err)
				}
				t.Logf("Run: %v (token asked %d times)", err, calls.Load())
			case <-time.After(10 * time.Second):
				t.Fatal("Run kept retrying a refused token")
			}
			if calls.Load() < 2 {
				t.Errorf("Token was called %d times; a fresh token is due on every attempt", calls.Load())
			}
		})
	}
}

// TestForeignCursorResyncs: a cursor the service did not issue is a resync
// on both paths; the client then continues from now.
func TestForeignCursorResyncs(t *testing.T) {
	t.Parallel()
	e := startStack(t)
	alice, bob := e.user(t), e.user(t)
	thread := e.thread(t, alice, bob)
	const foreign = "bm90LW91cnM" // base64 of "not-ours"
	for _, tc := range []struct {
		name, ws, via string
	}{
		{"websocket", e.s.Info.WebSocket, rtclient.ViaWebSocket},
		{"longpoll", closedURL(t), rtclient.ViaLongPoll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := e.start(t, bob.Token, func(cfg *rtclient.Config) {
				cfg.WebSocketURL = tc.ws
				cfg.FallbackAfter = 1
				cfg.Cursor = foreign
			})
			waitFor(t, "a resync", 10*time.Second, func() bool { return c.Resyncs() == 1 })
			// (Empty right after; a long poll may already have a new one.)
			if c.Cursor() == foreign {
				t.Fatal("the foreign cursor survived the resync")
			}
			id := e.send(t, alice.Token, thread, "after resync "+tc.name)
			for {
				m, _ := nextMessage(t, c, 10*time.Second)
				if m.id != id {
					continue // the other subtest's message
				}
				if m.via != tc.via {
					t.Errorf("via %s, want %s", m.via, tc.via)
				}
				waitFor(t, "a new cursor", 5*time.Second, func() bool { return c.Cursor() != "" })
				break
			}
			if n := c.Resyncs(); n != 1 {
				t.Errorf("%d resyncs, want 1", n)
			}
		})
	}
}
