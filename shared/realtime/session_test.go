package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type sessionRig struct {
	clock  *testClock
	conns  *fakeConns
	feed   *fakeFeed
	msgs   *fakeMessages
	pusher *fakePusher
	s      *Sessions
}

func newSessionRig(now time.Time) *sessionRig {
	clock := newTestClock(now)
	reader, feed, msgs := newTestReader(clock)
	r := &sessionRig{clock: clock, conns: newFakeConns(clock), feed: feed, msgs: msgs, pusher: newFakePusher()}
	r.s = &Sessions{Connections: r.conns, Reader: reader, Pusher: r.pusher, Now: clock.Now}
	return r
}

// controlFrame decodes a frame into a generic map.
func controlFrame(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return m
}

// splitResume checks frames end with exactly one "resumed" and returns the
// event ids before it and the resumed cursor.
func splitResume(t *testing.T, frames [][]byte) ([]string, string) {
	t.Helper()
	if len(frames) == 0 {
		t.Fatal("no frames")
	}
	last := controlFrame(t, frames[len(frames)-1])
	if last["type"] != "resumed" || len(last) != 2 {
		t.Fatalf("last frame = %s, want resumed", frames[len(frames)-1])
	}
	c, _ := last["cursor"].(string)
	var ids []string
	for _, f := range frames[:len(frames)-1] {
		fr := decodeFrame(t, f)
		if fr.ID == "" || fr.Type == "resumed" {
			t.Fatalf("unexpected frame before resumed: %s", f)
		}
		ids = append(ids, fr.ID)
	}
	return ids, c
}

func TestSessionsConnect(t *testing.T) {
	now := readNow
	tests := []struct {
		name  string
		token time.Time
		want  time.Time
	}{
		{"no token expiry", time.Time{}, now.Add(2 * time.Hour)},
		{"token expires first", now.Add(30 * time.Minute), now.Add(30 * time.Minute)},
		{"token outlives the connection", now.Add(3 * time.Hour), now.Add(2 * time.Hour)},
		{"both at once", now.Add(2 * time.Hour), now.Add(2 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newSessionRig(now)
			if err := r.s.Connect(context.Background(), uBob, "c1", tc.token); err != nil {
				t.Fatal(err)
			}
			if got := r.conns.expires[uBob+"/c1"]; !got.Equal(tc.want) {
				t.Errorf("connection until %v, want %v", got, tc.want)
			}
			if !slices.Equal(r.conns.conns[uBob], []string{"c1"}) {
				t.Errorf("connections = %v", r.conns.conns)
			}
		})
	}
	r := newSessionRig(now)
	_ = r.s.Connect(context.Background(), uBob, "c1", time.Time{})
	if err := r.s.Disconnect(context.Background(), uBob, "c1"); err != nil || !slices.Equal(r.conns.removals(), []string{uBob + "/c1"}) {
		t.Errorf("Disconnect: %v, removed %v", err, r.conns.removals())
	}
}

func TestSessionsMessage(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode string // "" = pong
	}{
		{"ping", `{"action":"ping"}`, ""},
		{"ping with spaces", ` {"action" : "ping"} `, ""},
		{"not JSON", `ping`, "InvalidFrame"},
		{"empty", ``, "InvalidFrame"},
		{"an array", `[{"action":"ping"}]`, "InvalidFrame"},
		{"two objects", `{"action":"ping"}{"action":"ping"}`, "InvalidFrame"},
		{"trailing garbage", `{"action":"ping"} x`, "InvalidFrame"},
		{"action not a string", `{"action":1}`, "InvalidFrame"},
		{"no action", `{"cursor":"abc"}`, "InvalidFrame"},
		{"empty action", `{"action":""}`, "InvalidFrame"},
		{"unknown action", `{"action":"subscribe"}`, "UnknownAction"},
		{"action in the wrong case", `{"action":"PING"}`, "UnknownAction"},
		{"resume without cursor", `{"action":"resume"}`, "InvalidCursor"},
		{"resume with an empty cursor", `{"action":"resume","cursor":""}`, "InvalidCursor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newSessionRig(readNow)
			if err := r.s.Message(context.Background(), uBob, "c1", []byte(tc.body)); err != nil {
				t.Fatal(err)
			}
			frames := r.pusher.got("c1")
			if len(frames) != 1 {
				t.Fatalf("%d frames pushed, want 1", len(frames))
			}
			if tc.wantCode == "" {
				if string(frames[0]) != `{"type":"pong"}` {
					t.Errorf("answer = %s, want pong", frames[0])
				}
				return
			}
			f := controlFrame(t, frames[0])
			e, _ := f["error"].(map[string]any)
			if f["type"] != "error" || e["code"] != tc.wantCode || e["message"] == "" || e["message"] == nil || len(f) != 2 {
				t.Errorf("answer = %s, want an error %s", frames[0], tc.wantCode)
			}
		})
	}
	// The unknown action is named, JSON-quoted, in the message.
	r := newSessionRig(readNow)
	_ = r.s.Message(context.Background(), uBob, "c1", []byte(`{"action":"x\"y"}`))
	if f := r.pusher.got("c1"); len(f) != 1 || !json.Valid(f[0]) || !strings.Contains(string(f[0]), `x\\\"y`) {
		t.Errorf("answer = %s", f)
	}
}

func TestSessionsResume(t *testing.T) {
	ctx := context.Background()
	from := encodeCursor(FeedKey{Pos: ago(time.Hour).UnixMilli(), EventID: "e_0"}, false)
	fill := func(r *sessionRig) {
		r.feed.add(
			dataEntry(uBob, ago(2*time.Hour), "e_before"),
			dataEntry(uBob, ago(time.Hour), "e_0"),
			dataEntry(uBob, ago(30*time.Minute), "e_1"),
			dataEntry(uBob, ago(time.Minute), "e_2"),
			dataEntry(uBob, ago(100*time.Millisecond), "e_3"),
			dataEntry(uAlice, ago(time.Minute), "e_alice"),
		)
	}
	t.Run("events after the cursor, then resumed", func(t *testing.T) {
		for _, viaMessage := range []bool{false, true} {
			r := newSessionRig(readNow)
			fill(r)
			var err error
			if viaMessage {
				err = r.s.Message(ctx, uBob, "c1", []byte(`{"action":"resume","cursor":"`+from+`"}`))
			} else {
				err = r.s.Resume(ctx, uBob, "c1", from, false)
			}
			if err != nil {
				t.Fatal(err)
			}
			ids, c := splitResume(t, r.pusher.got("c1"))
			if !slices.Equal(ids, []string{"e_1", "e_2", "e_3"}) {
				t.Errorf("resumed %v, want e_1, e_2, e_3", ids)
			}
			if k, _ := mustDecodeCursor(t, c); k != (FeedKey{Pos: ago(100 * time.Millisecond).UnixMilli(), EventID: "e_3"}) {
				t.Errorf("resumed cursor %+v, want at e_3", k)
			}
		}
	})
	t.Run("nothing missed", func(t *testing.T) {
		r := newSessionRig(readNow)
		r.feed.add(dataEntry(uBob, ago(time.Hour), "e_0"))
		if err := r.s.Resume(ctx, uBob, "c1", from, false); err != nil {
			t.Fatal(err)
		}
		ids, c := splitResume(t, r.pusher.got("c1"))
		if len(ids) != 0 {
			t.Errorf("resumed %v", ids)
		}
		// Resuming from the cursor it returned sends nothing either.
		r2 := newSessionRig(readNow)
		r2.feed.add(dataEntry(uBob, ago(time.Hour), "e_0"))
		if err := r2.s.Resume(ctx, uBob, "c2", c, false); err != nil {
			t.Fatal(err)
		}
		if ids, _ := splitResume(t, r2.pusher.got("c2")); len(ids) != 0 {
			t.Errorf("from the resumed cursor: %v", ids)
		}
	})
	t.Run("resync", func(t *testing.T) {
		for name, c := range map[string]string{
			"expired": encodeCursor(FeedKey{Pos: readNow.Add(-25 * time.Hour).UnixMilli(), EventID: "e_x"}, false),
			"invalid": "bm90IGEgY3Vyc29y",
			"garbage": "%%%",
		} {
			r := newSessionRig(readNow)
			fill(r)
			if err := r.s.Resume(ctx, uBob, "c1", c, false); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if f := r.pusher.got("c1"); len(f) != 1 || string(f[0]) != `{"type":"resyncRequired"}` {
				t.Errorf("%s: pushed %q, want resyncRequired only", name, f)
			}
		}
	})
	t.Run("a read error is returned", func(t *testing.T) {
		r := newSessionRig(readNow)
		r.feed.readErr = errors.New("feed down")
		if err := r.s.Resume(ctx, uBob, "c1", from, false); !errors.Is(err, r.feed.readErr) {
			t.Errorf("Resume = %v", err)
		}
		if n := r.pusher.count(); n != 0 {
			t.Errorf("pushed %d frames", n)
		}
	})
	t.Run("a push error stops the resume", func(t *testing.T) {
		r := newSessionRig(readNow)
		fill(r)
		r.pusher.gone["c1"] = true
		if err := r.s.Resume(ctx, uBob, "c1", from, false); !errors.Is(err, ErrGone) {
			t.Errorf("Resume = %v, want ErrGone", err)
		}
		if r.pusher.attempts["c1"] != 1 {
			t.Errorf("%d push attempts, want 1 (no waiting without waitOpen)", r.pusher.attempts["c1"])
		}
	})
}

// resumeAll resumes from cursor with a pusher that fails after limit pushes
// (so a resume that loops fails instead of hanging) and returns the event ids
// pushed.
func resumeAll(t *testing.T, r *sessionRig, cursor string, limit int) []string {
	t.Helper()
	r.pusher.failAfter = limit
	if err := r.s.Resume(context.Background(), uBob, "c1", cursor, false); err != nil {
		t.Fatalf("Resume: %v after %d pushes", err, r.pusher.total)
	}
	ids, _ := splitResume(t, r.pusher.got("c1"))
	return ids
}

func TestSessionsResumePages(t *testing.T) {
	start := encodeCursor(FeedKey{Pos: ago(time.Hour).UnixMilli()}, false)
	var want []string
	r := newSessionRig(readNow)
	for i := range 250 {
		id := fmt.Sprintf("e_%03d", i)
		r.feed.add(dataEntry(uBob, ago(30*time.Minute-time.Duration(i)*time.Second), id))
		want = append(want, id)
	}
	if got := resumeAll(t, r, start, 1000); !slices.Equal(got, want) {
		t.Errorf("resumed %d events (%v…), want all 250 in order", len(got), got[:min(len(got), 3)])
	}
}

// TestSessionsResumeBurst: more than a page of events within the last
// Settle (a busy thread) must each be pushed once, then resumed.
func TestSessionsResumeBurst(t *testing.T) {
	r := newSessionRig(readNow)
	var want []string
	for i := range 150 {
		id := fmt.Sprintf("e_%03d", i)
		r.feed.add(dataEntry(uBob, ago(time.Second-time.Duration(i)*5*time.Millisecond), id))
		want = append(want, id)
	}
	start := encodeCursor(FeedKey{Pos: ago(time.Minute).UnixMilli()}, false)
	if got := resumeAll(t, r, start, 1000); !slices.Equal(got, want) {
		t.Errorf("resumed %d events, want the 150 in order", len(got))
	}
}

// TestSessionsResumeMissingMessage: a page holding a message event whose
// message is gone (its thread was deleted) must not end the resume early.
func TestSessionsResumeMissingMessage(t *testing.T) {
	r := newSessionRig(readNow)
	var want []string
	for i := range 150 {
		id := fmt.Sprintf("e_%03d", i)
		pos := ago(30*time.Minute - time.Duration(i)*time.Second)
		if i == 10 {
			r.feed.add(FeedEntry{UserID: uBob, Pos: pos.UnixMilli(), EventID: id, Type: TypeMessageReceived, ThreadID: occThread, At: pos, Seq: 99})
			continue
		}
		r.feed.add(dataEntry(uBob, pos, id))
		want = append(want, id)
	}
	start := encodeCursor(FeedKey{Pos: ago(time.Hour).UnixMilli()}, false)
	got := resumeAll(t, r, start, 1000)
	if !slices.Equal(got, want) {
		t.Errorf("resumed %d events (last %v), want the other 149 through e_149", len(got), got[len(got)-1])
	}
}

// goneUntil reports ErrGone for every push until open is closed.
type goneUntil struct {
	mu     sync.Mutex
	opened bool
	after  int // opens after this many attempts
	tries  int
	frames [][]byte
}

func (g *goneUntil) Push(_ context.Context, _ string, frame []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tries++
	if g.tries > g.after {
		g.opened = true
	}
	if !g.opened {
		return ErrGone
	}
	g.frames = append(g.frames, frame)
	return nil
}

func TestSessionsResumeWaitOpen(t *testing.T) {
	ctx := context.Background()
	from := encodeCursor(FeedKey{Pos: ago(time.Hour).UnixMilli()}, false)
	t.Run("retries until open", func(t *testing.T) {
		r := newSessionRig(readNow)
		r.feed.add(dataEntry(uBob, ago(30*time.Minute), "e_1"), dataEntry(uBob, ago(20*time.Minute), "e_2"))
		g := &goneUntil{after: 2}
		r.s.Pusher = g
		if err := r.s.Resume(ctx, uBob, "c1", from, true); err != nil {
			t.Fatalf("Resume = %v", err)
		}
		ids, _ := splitResume(t, g.frames)
		if !slices.Equal(ids, []string{"e_1", "e_2"}) || g.tries != 5 {
			t.Errorf("pushed %v in %d tries, want e_1, e_2 and resumed in 5", ids, g.tries)
		}
	})
	t.Run("without waitOpen it does not retry", func(t *testing.T) {
		r := newSessionRig(readNow)
		r.feed.add(dataEntry(uBob, ago(30*time.Minute), "e_1"))
		g := &goneUntil{after: 2}
		r.s.Pusher = g
		if err := r.s.Resume(ctx, uBob, "c1", from, false); !errors.Is(err, ErrGone) || g.tries != 1 {
			t.Errorf("Resume = %v after %d tries; want ErrGone after 1", err, g.tries)
		}
	})
	t.Run("gives up after the deadline", func(t *testing.T) {
		r := newSessionRig(readNow)
		r.feed.add(dataEntry(uBob, ago(30*time.Minute), "e_1"))
		g := &goneUntil{after: 1 << 30}
		r.s.Pusher = g
		// Each look at the clock is 2 s later: it gives up after ~5 s of
		// clock time, with only short real waits.
		r.s.Now = func() time.Time { r.clock.Advance(2 * time.Second); return r.clock.Now() }
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second) // were there no deadline
		defer cancel()
		if err := r.s.Resume(cctx, uBob, "c1", from, true); !errors.Is(err, ErrGone) {
			t.Errorf("Resume = %v, want ErrGone", err)
		}
		if g.tries < 2 || g.tries > 5 || time.Since(start) > 2*time.Second {
			t.Errorf("%d tries in %v", g.tries, time.Since(start))
		}
	})
	t.Run("a cancelled context stops the wait", func(t *testing.T) {
		r := newSessionRig(readNow)
		g := &goneUntil{after: 1 << 30}
		r.s.Pusher = g
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := r.s.Resume(cctx, uBob, "c1", from, true); !errors.Is(err, context.Canceled) || g.tries != 1 {
			t.Errorf("Resume = %v after %d tries", err, g.tries)
		}
	})
}

// closingPusher is a fakePusher that is also a Disconnecter.
type closingPusher struct {
	*fakePusher
	closeErr error // what Disconnect answers
	goneFor  int   // Disconnect answers ErrGone this many times first (not open yet)

	mu       sync.Mutex
	attempts int
	closed   []string
}

func (p *closingPusher) Disconnect(_ context.Context, connectionID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.attempts <= p.goneFor {
		return fmt.Errorf("DeleteConnection: %w", ErrGone)
	}
	p.closed = append(p.closed, connectionID)
	return p.closeErr
}

// TestSessionsResumeFailureCloses: a replay that cannot finish closes the
// connection, as a failed live push does. The client got no "resumed", so
// its cursor is still where it resumed from; left open, the connection
// would never bring the rest of the replay (the events after the failed
// push were lost to it until some unrelated reconnect).
func TestSessionsResumeFailureCloses(t *testing.T) {
	ctx := context.Background()
	from := encodeCursor(FeedKey{Pos: ago(time.Hour).UnixMilli()}, false)
	errPush := errors.New("PostToConnection: 500")
	errRead := errors.New("feed down")
	errClose := errors.New("DeleteConnection: 500")
	tests := []struct {
		name       string
		viaMessage bool // a resume frame rather than Resume itself
		waitOpen   bool // the connect URL's replay, which starts before the connection is open
		setup      func(r *sessionRig, p *closingPusher)
		wantErr    []error // all of these; none: the resume succeeds
		wantClosed bool
		wantTries  int      // Disconnect calls
		wantPushed []string // event ids that reached the client
	}{
		{
			name:       "a push fails midway",
			setup:      func(r *sessionRig, p *closingPusher) { p.failAfter = 2 },
			wantErr:    []error{errTooManyPushes},
			wantClosed: true, wantTries: 1,
			wantPushed: []string{"e_1", "e_2"},
		},
		{
			name:       "a push fails midway, resume frame",
			viaMessage: true,
			setup:      func(r *sessionRig, p *closingPusher) { p.failAfter = 1 },
			wantErr:    []error{errTooManyPushes},
			wantClosed: true, wantTries: 1,
			wantPushed: []string{"e_1"},
		},
		{
			name:       "a push fails midway, connect URL",
			waitOpen:   true,
			setup:      func(r *sessionRig, p *closingPusher) { p.failAfter = 2 },
			wantErr:    []error{errTooManyPushes},
			wantClosed: true, wantTries: 1,
			wantPushed: []string{"e_1", "e_2"},
		},
		{
			name:       "the first push fails",
			setup:      func(r *sessionRig, p *closingPusher) { p.fail["c1"] = errPush },
			wantErr:    []error{errPush},
			wantClosed: true, wantTries: 1,
		},
		{
			name:       "the read fails",
			setup:      func(r *sessionRig, p *closingPusher) { r.feed.readErr = errRead },
			wantErr:    []error{errRead},
			wantClosed: true, wantTries: 1,
		},
		{
			// The replay the connect URL asks for reads before the
			// connection is open: closing waits for it to open.
			name:       "the read fails before the connection is open",
			waitOpen:   true,
			setup:      func(r *sessionRig, p *closingPusher) { r.feed.readErr, p.goneFor = errRead, 2 },
			wantErr:    []error{errRead},
			wantClosed: true, wantTries: 3,
		},
		{
			name:      "the connection is already gone when closed",
			setup:     func(r *sessionRig, p *closingPusher) { p.failAfter, p.goneFor = 1, 1 },
			wantErr:   []error{errTooManyPushes},
			wantTries: 1, wantPushed: []string{"e_1"},
		},
		{
			name:       "closing fails too",
			setup:      func(r *sessionRig, p *closingPusher) { p.failAfter, p.closeErr = 1, errClose },
			wantErr:    []error{errTooManyPushes, errClose},
			wantClosed: true, wantTries: 1,
			wantPushed: []string{"e_1"},
		},
		{
			name:    "the connection is gone: nothing to close",
			setup:   func(r *sessionRig, p *closingPusher) { p.gone["c1"] = true },
			wantErr: []error{ErrGone},
		},
		{
			name:       "a replay that finishes leaves the connection open",
			setup:      func(r *sessionRig, p *closingPusher) {},
			wantPushed: []string{"e_1", "e_2", "e_3"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newSessionRig(readNow)
			r.feed.add(
				dataEntry(uBob, ago(30*time.Minute), "e_1"),
				dataEntry(uBob, ago(20*time.Minute), "e_2"),
				dataEntry(uBob, ago(10*time.Minute), "e_3"),
			)
			p := &closingPusher{fakePusher: r.pusher}
			r.s.Pusher = p
			tc.setup(r, p)
			var err error
			if tc.viaMessage {
				err = r.s.Message(ctx, uBob, "c1", []byte(`{"action":"resume","cursor":"`+from+`"}`))
			} else {
				err = r.s.Resume(ctx, uBob, "c1", from, tc.waitOpen)
			}
			if len(tc.wantErr) == 0 && err != nil {
				t.Fatalf("Resume = %v", err)
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Resume = %v, want %v in it", err, want)
				}
			}
			if closed := len(p.closed) > 0; closed != tc.wantClosed || p.attempts != tc.wantTries {
				t.Errorf("closed %v in %d tries, want closed %v in %d", p.closed, p.attempts, tc.wantClosed, tc.wantTries)
			}
			var pushed []string
			for _, f := range r.pusher.got("c1") {
				if id := decodeFrame(t, f).ID; id != "" {
					pushed = append(pushed, id)
				}
			}
			if !slices.Equal(pushed, tc.wantPushed) {
				t.Errorf("pushed %v, want %v", pushed, tc.wantPushed)
			}
		})
	}
}
