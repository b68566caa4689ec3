package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

type typingRig struct {
	clock  *testClock
	roster *fakeRoster
	conns  *fakeConns
	pusher *fakePusher
	ty     *Typist
}

// newTypingRig: occRoster with a connection per participant (alice two).
func newTypingRig() *typingRig {
	r := &typingRig{clock: newTestClock(readNow), roster: newFakeRoster(), pusher: newFakePusher()}
	r.conns = newFakeConns(r.clock)
	th := occThreadState()
	r.roster.set(&th, occRoster()...)
	for user, conns := range map[string][]string{uAlice: {"a1", "a2"}, uBob: {"b1"}, uCarol: {"c1"}, uDave: {"d1"}, uErin: {"e1"}} {
		for _, c := range conns {
			_ = r.conns.Add(context.Background(), user, c, readNow.Add(time.Hour))
		}
	}
	r.ty = &Typist{Roster: r.roster, Connections: r.conns, Pusher: r.pusher}
	return r
}

func TestTypistPushes(t *testing.T) {
	r := newTypingRig()
	at := readNow.Add(123 * time.Millisecond)
	if err := r.ty.Typing(context.Background(), occThread, uBob, "Bobby", at); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a1": uAlice, "a2": uAlice, "e1": uErin}
	var id string
	for conn, user := range want {
		frames := r.pusher.got(conn)
		if len(frames) != 1 {
			t.Errorf("%s got %d frames, want 1", conn, len(frames))
			continue
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(frames[0], &raw)
		if _, has := raw["cursor"]; has {
			t.Errorf("typing frame has a cursor: %s", frames[0])
		}
		f := decodeFrame(t, frames[0])
		if f.Type != TypeTyping || f.ThreadID != occThread || f.ID == "" || f.OccurredOn != "2026-03-01T15:00:00.1230000Z" {
			t.Errorf("frame = %s", frames[0])
		}
		if id != "" && f.ID != id {
			t.Errorf("ids differ between recipients: %s, %s", id, f.ID)
		}
		id = f.ID
		if rawID(f.Data["recipient"]) != user || rawID(f.Data["sender"]) != uBob || f.Data["senderDisplayName"] != "Bobby" ||
			f.Data["receivedOn"] != "2026-03-01T15:00:00.1230000Z" || f.Data["version"] != strconv.FormatInt(at.UnixMilli(), 10) {
			t.Errorf("%s data = %v", conn, f.Data)
		}
	}
	for _, conn := range []string{"b1", "c1", "d1"} { // the sender, the removed
		if n := len(r.pusher.got(conn)); n != 0 {
			t.Errorf("%s got %d frames", conn, n)
		}
	}
	if r.pusher.count() != len(want) {
		t.Errorf("%d frames in all, want %d", r.pusher.count(), len(want))
	}
	if !slices.Equal(r.conns.windows, []time.Duration{TypingWindow}) {
		t.Errorf("coalesce windows = %v, want the default", r.conns.windows)
	}
	if lk := r.conns.lookups; len(lk) != 1 || !slices.Equal(sortedCopy(lk[0]), []string{uAlice, uErin}) {
		t.Errorf("lookups = %v", lk)
	}
	// No display name: no senderDisplayName.
	r2 := newTypingRig()
	_ = r2.ty.Typing(context.Background(), occThread, uBob, "", at)
	if fs := r2.pusher.got("e1"); len(fs) != 1 || decodeFrame(t, fs[0]).Data["senderDisplayName"] != nil {
		t.Errorf("frame without a display name = %q", fs)
	}
}

func TestTypistCoalesces(t *testing.T) {
	tests := []struct {
		name   string
		window time.Duration
		steps  []time.Duration // clock advance before each call
		user   []string        // the typist of each call
		want   []int           // frames at e1 after each call
	}{
		{"second call within the window", 0, []time.Duration{0, time.Second}, []string{uBob, uBob}, []int{1, 1}},
		{"second call after the window", 0, []time.Duration{0, TypingWindow}, []string{uBob, uBob}, []int{1, 2}},
		{"another typist is not coalesced", 0, []time.Duration{0, 0}, []string{uBob, uAlice}, []int{1, 2}},
		{"a custom window", 10 * time.Second, []time.Duration{0, 5 * time.Second, 5 * time.Second}, []string{uBob, uBob, uBob}, []int{1, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTypingRig()
			r.ty.Window = tc.window
			for i, d := range tc.steps {
				r.clock.Advance(d)
				if err := r.ty.Typing(context.Background(), occThread, tc.user[i], "", r.clock.Now()); err != nil {
					t.Fatal(err)
				}
				if n := len(r.pusher.got("e1")); n != tc.want[i] {
					t.Errorf("after call %d: e1 has %d frames, want %d", i, n, tc.want[i])
				}
			}
		})
	}
	// A coalesced call does not even read the roster.
	r := newTypingRig()
	_ = r.ty.Typing(context.Background(), occThread, uBob, "", readNow)
	_ = r.ty.Typing(context.Background(), occThread, uBob, "", readNow)
	if r.roster.calls[occThread] != 1 {
		t.Errorf("roster read %d times", r.roster.calls[occThread])
	}
}

func TestTypistGone(t *testing.T) {
	r := newTypingRig()
	r.pusher.gone["a1"] = true
	r.pusher.fail["e1"] = errors.New("throttled")
	if err := r.ty.Typing(context.Background(), occThread, uBob, "", readNow); err != nil {
		t.Fatalf("Typing = %v", err)
	}
	if got := r.conns.removals(); !slices.Equal(got, []string{uAlice + "/a1"}) {
		t.Errorf("removed %v, want only alice/a1", got)
	}
	if len(r.pusher.got("a2")) != 1 {
		t.Errorf("a2 got %d frames", len(r.pusher.got("a2")))
	}
}

func TestTypistAlone(t *testing.T) {
	r := newTypingRig()
	th := occThreadState()
	r.roster.set(&th, chat.Participant{UserID: uBob}, chat.Participant{UserID: uCarol, RemovedOn: readNow, RemovedSeq: 10})
	if err := r.ty.Typing(context.Background(), occThread, uBob, "", readNow); err != nil {
		t.Fatal(err)
	}
	if r.pusher.count() != 0 || len(r.conns.lookups) != 0 {
		t.Errorf("pushed %d, looked up %v", r.pusher.count(), r.conns.lookups)
	}
	r.roster.errs[occThread] = errors.New("boom")
	r.clock.Advance(time.Minute)
	if err := r.ty.Typing(context.Background(), occThread, uBob, "", readNow); err == nil {
		t.Error("a roster error is not returned")
	}
}
