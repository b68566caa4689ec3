package rtclient_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/local/rtclient"
)

// scripted is a WebSocket server a test drives frame by frame, for what the
// real server only does on its own schedule: byte-identical duplicates,
// pong and error frames, a late "resumed", resyncRequired mid-stream.
type scripted struct {
	srv   *httptest.Server
	conns chan scriptedConn
}

type scriptedConn struct {
	ws    *websocket.Conn
	query url.Values
	from  chan string // the client's frames
}

func newScripted(t *testing.T) *scripted {
	s := &scripted{conns: make(chan scriptedConn, 4)}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c := scriptedConn{ws: ws, query: r.URL.Query(), from: make(chan string, 64)}
		s.conns <- c
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				close(c.from)
				return
			}
			if string(b) == `{"action":"ping"}` { // as the real server does
				_ = ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"pong"}`))
			}
			c.from <- string(b)
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) URL() string { return "wss://" + strings.TrimPrefix(s.srv.URL, "https://") }

func (s *scripted) next(t *testing.T) scriptedConn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not connect")
		return scriptedConn{}
	}
}

func (c scriptedConn) send(t *testing.T, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(f)); err != nil {
			t.Fatal(err)
		}
	}
}

// expect waits for a client frame equal to want (ignoring others).
func (c scriptedConn) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case got := <-c.from:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("the client never sent %s", want)
		}
	}
}

func event(id, cursor, typ string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "cursor": cursor, "type": typ, "threadId": "19:t@thread.v2",
		"occurredOn": "2026-11-26T02:25:49.0610000Z", "data": map[string]string{"message": id}})
	return string(b)
}

func TestFrameHandling(t *testing.T) {
	s := newScripted(t)
	c, _ := runClient(t, rtclient.Config{
		WebSocketURL: s.URL(), HTTPClient: s.srv.Client(),
		Token:  func(context.Context) (string, error) { return "tok", nil },
		Cursor: "c0", PingEvery: 100 * time.Millisecond, ResumeWait: 200 * time.Millisecond,
		Backoff: fixedBackoff, Log: testLogger(t),
	})
	conn := s.next(t)
	if conn.query.Get("access_token") != "tok" || conn.query.Get("cursor") != "c0" {
		t.Fatalf("connected with %v, want access_token=tok&cursor=c0", conn.query)
	}
	conn.expect(t, `{"action":"ping"}`)
	conn.expect(t, `{"action":"resume","cursor":"c0"}`) // no "resumed" came in time

	e1 := event("e1", "c1", "chatMessageReceived")
	typing := `{"id":"t1","type":"typingIndicatorReceived","threadId":"19:t@thread.v2","occurredOn":"2026-11-26T02:25:50Z","data":{}}`
	conn.send(t, e1, e1, typing, typing, `{"type":"pong"}`, `{"type":"error","error":{"code":"UnknownAction","message":"x"}}`, `not json`)
	want := func(id string) rtclient.Event {
		t.Helper()
		select {
		case ev := <-c.Events():
			if ev.ID != id {
				t.Fatalf("got event %s (%s), want %s", ev.ID, ev.Raw, id)
			}
			return ev
		case <-time.After(3 * time.Second):
			t.Fatalf("no event %s", id)
			return rtclient.Event{}
		}
	}
	ev := want("e1")
	if ev.Cursor != "c1" || ev.Via != rtclient.ViaWebSocket || string(ev.Raw) != e1 || ev.OccurredOn.IsZero() {
		t.Errorf("e1 decoded as %+v", ev)
	}
	want("t1")
	// A live event before "resumed" must not move the cursor past the
	// unfinished replay.
	if got := c.Cursor(); got != "c0" {
		t.Errorf("cursor %q while the resume is pending, want c0", got)
	}
	conn.send(t, `{"type":"resumed","cursor":"cr"}`, event("e2", "c2", "chatMessageEdited"))
	want("e2")
	waitFor(t, "cursor c2", time.Second, func() bool { return c.Cursor() == "c2" })
	conn.send(t, `{"type":"resyncRequired"}`)
	waitFor(t, "a resync", time.Second, func() bool { return c.Resyncs() == 1 })
	if got := c.Cursor(); got != "" {
		t.Errorf("cursor %q after resyncRequired, want none", got)
	}
	conn.send(t, e1, event("e3", "c3", "chatMessageReceived"))
	want("e3") // e1 again: dropped, whatever the cursor did meanwhile
	if n := c.Duplicates(); n != 3 {
		t.Errorf("%d duplicates, want 3 (e1 twice, t1 once)", n)
	}

	// A drop reconnects with the last cursor.
	conn.ws.Close(websocket.StatusGoingAway, "bye")
	again := s.next(t)
	if again.query.Get("cursor") != "c3" {
		t.Errorf("reconnected with cursor %q, want c3", again.query.Get("cursor"))
	}
}

// TestUnansweredResumeReconnects: when neither the connect's replay nor the
// client's own resume frame gets an answer (the frame was lost, say), the
// client reconnects with the same cursor instead of waiting forever; a
// replay that is arriving, frame by frame, is given more time.
func TestUnansweredResumeReconnects(t *testing.T) {
	tests := []struct {
		name          string
		replaying     bool // the server keeps sending replay frames, without "resumed"
		wantReconnect bool
	}{
		{"silence after asking", false, true},
		{"a replay still arriving", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScripted(t)
			const wait = 150 * time.Millisecond
			runClient(t, rtclient.Config{
				WebSocketURL: s.URL(), HTTPClient: s.srv.Client(),
				Token:  func(context.Context) (string, error) { return "tok", nil },
				Cursor: "c0", PingEvery: time.Hour, ResumeWait: wait,
				Backoff: fixedBackoff, Log: testLogger(t),
			})
			conn := s.next(t)
			conn.expect(t, `{"action":"resume","cursor":"c0"}`)
			stop := make(chan struct{})
			if tc.replaying {
				go func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-time.After(wait / 3):
							_ = conn.ws.Write(context.Background(), websocket.MessageText,
								[]byte(event("r"+strconv.Itoa(i), "c"+strconv.Itoa(i+1), "chatMessageReceived")))
						}
					}
				}()
			}
			defer close(stop)
			select {
			case again := <-s.conns:
				if !tc.wantReconnect {
					t.Fatal("the client reconnected while a replay was arriving")
				}
				if again.query.Get("cursor") != "c0" {
					t.Errorf("reconnected with cursor %q, want c0", again.query.Get("cursor"))
				}
			case <-time.After(6 * wait):
				if tc.wantReconnect {
					t.Fatal("the client kept waiting for an unanswered resume")
				}
			}
		})
	}
}
