package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

var readNow = occT0.Add(5 * time.Hour)

func dataEntry(user string, pos time.Time, id string) FeedEntry {
	return FeedEntry{
		UserID: user, Pos: pos.UnixMilli(), EventID: id, Type: TypeThreadUpdated, ThreadID: occThread, At: pos,
		Data: json.RawMessage(`{"properties":{"topic":"` + id + `"}}`), Expires: pos.Add(testRetention),
	}
}

func ago(d time.Duration) time.Time { return readNow.Add(-d) }

func newTestReader(clock *testClock) (*Reader, *fakeFeed, *fakeMessages) {
	feed, msgs := newFakeFeed(), &fakeMessages{msgs: map[MessageKey]chat.Message{}}
	return &Reader{Feed: feed, Messages: msgs, Retention: testRetention, Now: clock.Now}, feed, msgs
}

func frameIDs(t *testing.T, frames [][]byte) []string {
	t.Helper()
	var ids []string
	for _, f := range frames {
		ids = append(ids, decodeFrame(t, f).ID)
	}
	return ids
}

func TestReaderRead(t *testing.T) {
	horizon := readNow.Add(-Settle).UnixMilli()
	entries := []FeedEntry{
		dataEntry(uBob, ago(10*time.Second), "e_a"),
		dataEntry(uBob, ago(3*time.Second), "e_b"),
		dataEntry(uBob, ago(3*time.Second), "e_bz"), // same position, later id
		dataEntry(uBob, ago(3*time.Second), "e_a9"), // same position, earlier id
		dataEntry(uBob, ago(2100*time.Millisecond), "e_c"),
		dataEntry(uBob, ago(1500*time.Millisecond), "e_d"),
		dataEntry(uBob, ago(500*time.Millisecond), "e_e"),
		dataEntry(uBob, readNow, "e_f"),
		dataEntry(uAlice, ago(time.Second), "e_alice"),
	}
	posOf := map[string]int64{}
	for _, e := range entries {
		posOf[e.EventID] = e.Pos
	}
	cur := func(pos time.Time, id string, live bool) string {
		return encodeCursor(FeedKey{Pos: pos.UnixMilli(), EventID: id}, live)
	}
	tests := []struct {
		name        string
		cursor      string
		limit       int
		settledOnly bool
		want        []string
		wantCursor  FeedKey
		wantLive    bool
	}{
		{name: "no cursor: from Settle ago", cursor: "", limit: 100, want: []string{"e_d", "e_e", "e_f"}, wantCursor: FeedKey{readNow.UnixMilli(), "e_f"}, wantLive: true},
		{name: "settled cursor: strictly after it", cursor: cur(ago(3*time.Second), "e_b", false), limit: 100, want: []string{"e_bz", "e_c", "e_d", "e_e", "e_f"}, wantCursor: FeedKey{readNow.UnixMilli(), "e_f"}, wantLive: true},
		{name: "live cursor: from Settle before it", cursor: cur(ago(500*time.Millisecond), "e_e", true), limit: 100, want: []string{"e_c", "e_d", "e_e", "e_f"}, wantCursor: FeedKey{readNow.UnixMilli(), "e_f"}, wantLive: true},
		{name: "settled only", cursor: cur(ago(10*time.Second), "e_a", false), limit: 100, settledOnly: true, want: []string{"e_a9", "e_b", "e_bz", "e_c"}, wantCursor: FeedKey{ago(2100 * time.Millisecond).UnixMilli(), "e_c"}},
		{name: "settled only, nothing settled", cursor: "", limit: 100, settledOnly: true, want: nil, wantCursor: FeedKey{Pos: horizon}},
		{name: "settled only from a live cursor", cursor: cur(ago(1500*time.Millisecond), "e_d", true), limit: 100, settledOnly: true, want: []string{"e_a9", "e_b", "e_bz", "e_c"}, wantCursor: FeedKey{ago(2100 * time.Millisecond).UnixMilli(), "e_c"}},
		{name: "limit", cursor: cur(ago(10*time.Second), "e_a", false), limit: 2, want: []string{"e_a9", "e_b"}, wantCursor: FeedKey{ago(3 * time.Second).UnixMilli(), "e_b"}},
		{name: "nothing after a settled cursor", cursor: cur(readNow, "e_f", false), limit: 100, want: nil, wantCursor: FeedKey{readNow.UnixMilli(), "e_f"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, feed, _ := newTestReader(newTestClock(readNow))
			// Stored out of order: the store orders them.
			for i := len(entries) - 1; i >= 0; i-- {
				feed.add(entries[i])
			}
			b, err := r.Read(context.Background(), uBob, tc.cursor, tc.limit, tc.settledOnly)
			if err != nil {
				t.Fatal(err)
			}
			if got := frameIDs(t, b.Frames); !slices.Equal(got, tc.want) {
				t.Errorf("frames %v, want %v", got, tc.want)
			}
			k, live := mustDecodeCursor(t, b.Cursor)
			if k != tc.wantCursor || live != tc.wantLive {
				t.Errorf("cursor %+v live=%v, want %+v live=%v", k, live, tc.wantCursor, tc.wantLive)
			}
			if tc.settledOnly && live {
				t.Errorf("a settled-only read returned a live cursor")
			}
			// Each frame: addressed to bob, with its own cursor, in position order.
			var last FeedKey
			for i, f := range b.Frames {
				fr := decodeFrame(t, f)
				fk, flive := mustDecodeCursor(t, fr.Cursor)
				// A frame's cursor names its entry; it may be settled only
				// once its entry is (a settled cursor skips what comes later
				// at a smaller position).
				if fk.EventID != fr.ID || fk.Pos != posOf[fr.ID] || (!flive && fk.Pos > horizon) {
					t.Errorf("frame %s cursor %+v live=%v", fr.ID, fk, flive)
				}
				if i > 0 && (fk.Pos < last.Pos || (fk.Pos == last.Pos && fk.EventID <= last.EventID)) {
					t.Errorf("frame %s out of order after %+v", fr.ID, last)
				}
				last = fk
				if rawID(fr.Data["recipient"]) != uBob || fr.Type != TypeThreadUpdated || fr.ThreadID != occThread {
					t.Errorf("frame = %s", f)
				}
				if props, _ := fr.Data["properties"].(map[string]any); props["topic"] != fr.ID {
					t.Errorf("frame data = %v", fr.Data)
				}
			}
		})
	}
}

// TestReaderLateEntry: an entry written after a push, at a smaller position
// than the pushed event's, is still read from the pushed (live) cursor.
func TestReaderLateEntry(t *testing.T) {
	clock := newTestClock(readNow)
	r, feed, _ := newTestReader(clock)
	feed.add(dataEntry(uBob, ago(200*time.Millisecond), "e_pushed"))
	pushed := encodeCursor(FeedKey{Pos: ago(200 * time.Millisecond).UnixMilli(), EventID: "e_pushed"}, true)
	feed.add(dataEntry(uBob, ago(1200*time.Millisecond), "e_late"))
	clock.Advance(300 * time.Millisecond)
	b, err := r.Read(context.Background(), uBob, pushed, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := frameIDs(t, b.Frames); !slices.Equal(got, []string{"e_late", "e_pushed"}) {
		t.Errorf("frames %v, want e_late, e_pushed", got)
	}
	// The same position as a settled cursor would have skipped it.
	settled := encodeCursor(FeedKey{Pos: ago(200 * time.Millisecond).UnixMilli(), EventID: "e_pushed"}, false)
	b, err = r.Read(context.Background(), uBob, settled, 100, false)
	if err != nil || len(b.Frames) != 0 {
		t.Errorf("from a settled cursor: %v, %v", frameIDs(t, b.Frames), err)
	}
}

func TestReaderCursorErrors(t *testing.T) {
	tests := []struct {
		name   string
		cursor string
		want   error
	}{
		{"garbage", "not a cursor", ErrInvalidCursor},
		{"wrong version", "ZjJ8c3wxfGU", ErrInvalidCursor}, // "f2|s|1|e"
		{"expired settled", encodeCursor(FeedKey{Pos: readNow.Add(-testRetention - time.Millisecond).UnixMilli()}, false), ErrCursorExpired},
		{"expired live", encodeCursor(FeedKey{Pos: readNow.Add(-25 * time.Hour).UnixMilli(), EventID: "e_x"}, true), ErrCursorExpired},
	}
	for _, tc := range tests {
		for _, settledOnly := range []bool{false, true} {
			r, feed, _ := newTestReader(newTestClock(readNow))
			feed.add(dataEntry(uBob, ago(time.Hour), "e_a"))
			b, err := r.Read(context.Background(), uBob, tc.cursor, 100, settledOnly)
			if !errors.Is(err, tc.want) || len(b.Frames) != 0 || b.Cursor != "" {
				t.Errorf("%s (settledOnly %v): %v, %+v; want %v", tc.name, settledOnly, err, b, tc.want)
			}
			if len(feed.reads) != 0 {
				t.Errorf("%s: read the feed", tc.name)
			}
		}
	}
	// Just inside retention is fine.
	r, _, _ := newTestReader(newTestClock(readNow))
	if _, err := r.Read(context.Background(), uBob, encodeCursor(FeedKey{Pos: readNow.Add(-testRetention).UnixMilli()}, false), 100, false); err != nil {
		t.Errorf("a cursor at the retention limit: %v", err)
	}
}

func TestReaderMessageEntries(t *testing.T) {
	r, feed, msgs := newTestReader(newTestClock(readNow))
	m5 := text5()
	m7 := text5()
	m7.Seq, m7.Body, m7.DeletedOn, m7.Metadata = 7, "", ago(time.Minute), nil
	msgs.msgs[MessageKey{occThread, 5}] = m5
	msgs.msgs[MessageKey{occThread, 7}] = m7
	ptrEntry := func(pos time.Time, id, typ string, seq int64) FeedEntry {
		return FeedEntry{UserID: uBob, Pos: pos.UnixMilli(), EventID: id, Type: typ, ThreadID: occThread, At: pos, Seq: seq, Expires: pos.Add(testRetention)}
	}
	feed.add(
		ptrEntry(ago(10*time.Second), "e_m5", TypeMessageReceived, 5),
		ptrEntry(ago(9*time.Second), "e_m6", TypeMessageReceived, 6), // gone with its thread
		dataEntry(uBob, ago(8*time.Second), "e_t"),
		ptrEntry(ago(7*time.Second), "e_m7", TypeMessageDeleted, 7),
		ptrEntry(ago(6*time.Second), "e_m6b", TypeMessageEdited, 6), // also gone, and last
	)
	b, err := r.Read(context.Background(), uBob, encodeCursor(FeedKey{Pos: ago(time.Minute).UnixMilli()}, false), 100, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := frameIDs(t, b.Frames); !slices.Equal(got, []string{"e_m5", "e_t", "e_m7"}) {
		t.Fatalf("frames %v, want e_m5, e_t, e_m7", got)
	}
	if msgs.calls != 1 {
		t.Errorf("MessagesByKey called %d times, want 1", msgs.calls)
	}
	if k, _ := mustDecodeCursor(t, b.Cursor); k.EventID != "e_m6b" {
		t.Errorf("cursor at %+v, want past the skipped last entry", k)
	}
	f := decodeFrame(t, b.Frames[0])
	if f.Type != TypeMessageReceived || f.Data["message"] != m5.Body || f.Data["sequenceId"] != "5" || f.Data["id"] != chat.MessageID(occThread, 5) ||
		rawID(f.Data["recipient"]) != uBob || rawID(f.Data["sender"]) != uAlice || f.OccurredOn != "2026-03-01T14:59:50.0000000Z" {
		t.Errorf("message frame = %s", b.Frames[0])
	}
	f = decodeFrame(t, b.Frames[2])
	if f.Type != TypeMessageDeleted || f.Data["deletedOn"] == nil || f.Data["message"] != nil {
		t.Errorf("deleted frame = %s", b.Frames[2])
	}

	// A failing message read fails the read.
	msgs.err = errors.New("boom")
	if _, err := r.Read(context.Background(), uBob, "", 100, false); err != nil {
		t.Errorf("no pointer entries from now, yet: %v", err)
	}
	if _, err := r.Read(context.Background(), uBob, encodeCursor(FeedKey{Pos: ago(time.Minute).UnixMilli()}, false), 100, false); !errors.Is(err, msgs.err) {
		t.Errorf("message read error: %v", err)
	}
	feed.readErr = errors.New("feed down")
	if _, err := r.Read(context.Background(), uBob, "", 100, false); !errors.Is(err, feed.readErr) {
		t.Errorf("feed read error: %v", err)
	}
}

func TestReaderPoll(t *testing.T) {
	ctx := context.Background()
	t.Run("a settled event returns at once", func(t *testing.T) {
		feed := newFakeFeed()
		r := &Reader{Feed: feed, Messages: &fakeMessages{}, Retention: testRetention}
		now := time.Now()
		feed.add(dataEntry(uBob, now.Add(-3*time.Second), "e_old"), dataEntry(uBob, now.Add(-100*time.Millisecond), "e_young"))
		start := time.Now()
		b, err := r.Poll(ctx, uBob, encodeCursor(FeedKey{Pos: now.Add(-time.Minute).UnixMilli()}, false), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v", d)
		}
		if got := frameIDs(t, b.Frames); !slices.Equal(got, []string{"e_old"}) {
			t.Errorf("frames %v, want only the settled e_old", got)
		}
		if k, live := mustDecodeCursor(t, b.Cursor); live || k.EventID != "e_old" {
			t.Errorf("cursor %+v live=%v", k, live)
		}
	})
	t.Run("an event settling during the wait", func(t *testing.T) {
		feed := newFakeFeed()
		r := &Reader{Feed: feed, Messages: &fakeMessages{}, Retention: testRetention}
		now := time.Now()
		feed.add(dataEntry(uBob, now.Add(-1700*time.Millisecond), "e_soon"))
		start := time.Now()
		b, err := r.Poll(ctx, uBob, "", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		if got := frameIDs(t, b.Frames); !slices.Equal(got, []string{"e_soon"}) {
			t.Errorf("frames %v, want e_soon", got)
		}
	})
	t.Run("nothing: the timeout", func(t *testing.T) {
		feed := newFakeFeed()
		r := &Reader{Feed: feed, Messages: &fakeMessages{}, Retention: testRetention}
		feed.add(dataEntry(uBob, time.Now(), "e_young"))
		start := time.Now()
		b, err := r.Poll(ctx, uBob, "", 150*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > time.Second {
			t.Errorf("took %v", d)
		}
		if len(b.Frames) != 0 {
			t.Errorf("frames %v", frameIDs(t, b.Frames))
		}
		k, live := mustDecodeCursor(t, b.Cursor)
		if live || k.Pos < time.Now().Add(-Settle-time.Second).UnixMilli() {
			t.Errorf("cursor %+v live=%v", k, live)
		}
		if len(feed.reads) < 2 {
			t.Errorf("read the feed %d times while waiting", len(feed.reads))
		}
	})
	t.Run("an invalid cursor", func(t *testing.T) {
		r := &Reader{Feed: newFakeFeed(), Messages: &fakeMessages{}, Retention: testRetention}
		if _, err := r.Poll(ctx, uBob, "bogus", 5*time.Second); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("Poll = %v", err)
		}
	})
}
