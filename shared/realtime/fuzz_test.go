package realtime

// Fuzz targets for the WebSocket client-frame parser and cursor decoding.
//
// FuzzClientFrame: ParseClientFrame and Sessions.Message on any frame body.
// Never a panic and never an error out of Message (the $default route would
// answer 500); the answer is exactly the protocol of docs/realtime.md:
//   - a refused frame gets one {"type":"error","error":{"code","message"}}
//     with a documented code and a message, and nothing else;
//   - ping gets one {"type":"pong"};
//   - resume gets events then one {"type":"resumed","cursor":…}, or one
//     {"type":"resyncRequired"}.
//
// FuzzCursor: a cursor that decodes encodes back to one that decodes the
// same; a read from any cursor string is a batch, ErrInvalidCursor or
// ErrCursorExpired, never another error (the feed fails as DynamoDB does for
// a sort key over 1024 bytes) and never a panic.
//
// Short runs:
//   go test ./shared/realtime -run '^$' -fuzz '^FuzzClientFrame$' -fuzztime 10s
//   go test ./shared/realtime -run '^$' -fuzz '^FuzzCursor$' -fuzztime 10s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

var fzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	fzUser   = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"
	fzThread = "19:aaaaaaaaaaaaaaaaaaaaaaaaaa@thread.v2"
)

// fzFeed is a FeedStore over fixed entries with the feed table's keys
// (F#<user> / %013d#<event id>): a key DynamoDB cannot hold is an error.
type fzFeed struct{ entries []FeedEntry }

func (f *fzFeed) Append(context.Context, []FeedEntry) error { return errors.New("fzFeed: reads only") }

func (f *fzFeed) Read(_ context.Context, userID string, after FeedKey, limit int) ([]FeedEntry, error) {
	if sk := fmt.Sprintf("%013d#%s", after.Pos, after.EventID); len("F#"+userID) > 2048 || len(sk) > 1024 {
		return nil, errors.New("dynamodb Query: api error ValidationException: Aggregated size of all range keys has exceeded the size limit of 1024 bytes")
	}
	var out []FeedEntry
	for _, e := range f.entries {
		if e.UserID != userID || e.Pos < after.Pos || (e.Pos == after.Pos && e.EventID <= after.EventID) {
			continue
		}
		out = append(out, e)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

type fzMessages struct{}

func (fzMessages) MessagesByKey(_ context.Context, keys []MessageKey) (map[MessageKey]chat.Message, error) {
	out := map[MessageKey]chat.Message{}
	for _, k := range keys {
		if k.Seq <= 3 {
			out[k] = chat.Message{Seq: k.Seq, Type: chat.TypeText, SenderID: fzUser, Body: "m" + strconv.FormatInt(k.Seq, 10), CreatedOn: fzNow.Add(-time.Hour), Version: 1}
		}
	}
	return out, nil
}

// fzPusher records every frame; it never fails.
type fzPusher struct {
	mu     sync.Mutex
	frames [][]byte
}

func (p *fzPusher) Push(_ context.Context, _ string, frame []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frames = append(p.frames, slices.Clone(frame))
	return nil
}

// fzReader reads a feed with events an hour, a minute and a second old,
// and one for a message that is gone.
func fzReader() *Reader {
	at := func(d time.Duration) int64 { return fzNow.Add(-d).UnixMilli() }
	return &Reader{Feed: &fzFeed{entries: []FeedEntry{
		{UserID: fzUser, Pos: at(time.Hour), EventID: "e_aaaaaaaaaaaaaaaaaaaaaa", Type: TypeMessageReceived, ThreadID: fzThread, At: fzNow.Add(-time.Hour), Seq: 1},
		{UserID: fzUser, Pos: at(time.Minute), EventID: "e_bbbbbbbbbbbbbbbbbbbbbb", Type: TypeThreadUpdated, ThreadID: fzThread, At: fzNow.Add(-time.Minute), Data: json.RawMessage(`{"version":"1"}`)},
		{UserID: fzUser, Pos: at(time.Second), EventID: "e_cccccccccccccccccccccc", Type: TypeMessageReceived, ThreadID: fzThread, At: fzNow.Add(-time.Second), Seq: 9},
		{UserID: fzUser, Pos: at(time.Second), EventID: "e_dddddddddddddddddddddd", Type: TypeMessageEdited, ThreadID: fzThread, At: fzNow.Add(-time.Second), Seq: 2},
	}}, Messages: fzMessages{}, Retention: 24 * time.Hour, Now: func() time.Time { return fzNow }}
}

// fzCursorOf is a cursor as encodeCursor writes it, from any parts.
func fzCursorOf(flag, pos, eventID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("f1|" + flag + "|" + pos + "|" + eventID))
}

// fzCheckAnswer checks the frames pushed in answer to one client frame.
func fzCheckAnswer(t *testing.T, body []byte, frames [][]byte) {
	t.Helper()
	if len(frames) == 0 {
		t.Fatalf("no answer to %q", body)
	}
	var types []string
	for _, fr := range frames {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(fr, &m); err != nil {
			t.Fatalf("frame %q is not a JSON object: %v", fr, err)
		}
		var typ string
		if err := json.Unmarshal(m["type"], &typ); err != nil || typ == "" {
			t.Fatalf("frame %s has no type", fr)
		}
		types = append(types, typ)
	}
	f, err := ParseClientFrame(body)
	var fe *frameError
	switch {
	case errors.As(err, &fe):
		var e struct {
			Type  string            `json:"type"`
			Error map[string]string `json:"error"`
		}
		var all map[string]any
		if len(frames) != 1 || json.Unmarshal(frames[0], &e) != nil || json.Unmarshal(frames[0], &all) != nil || len(all) != 2 || e.Type != "error" || len(e.Error) != 2 {
			t.Fatalf("refusal of %q answered %q; want one {\"type\":\"error\",\"error\":{\"code\",\"message\"}}", body, frames)
		}
		if !slices.Contains([]string{"InvalidFrame", "UnknownAction", "InvalidCursor"}, e.Error["code"]) || e.Error["message"] == "" {
			t.Fatalf("error frame %s: want a documented code and a message", frames[0])
		}
	case err != nil:
		t.Fatalf("ParseClientFrame(%q) = %v; want a frame error", body, err)
	case f.Action == "ping":
		if len(frames) != 1 || string(frames[0]) != `{"type":"pong"}` {
			t.Fatalf("ping answered %q", frames)
		}
	case f.Action == "resume" && f.Cursor != "":
		last := types[len(types)-1]
		switch {
		case last == "resyncRequired" && len(frames) == 1 && string(frames[0]) == `{"type":"resyncRequired"}`:
		case last == "resumed":
			var r struct {
				Cursor string `json:"cursor"`
			}
			if json.Unmarshal(frames[len(frames)-1], &r) != nil || r.Cursor == "" {
				t.Fatalf("resumed without a cursor: %s", frames[len(frames)-1])
			}
			for _, typ := range types[:len(types)-1] {
				if typ == "resumed" || typ == "resyncRequired" || typ == "error" || typ == "pong" {
					t.Fatalf("resume answered %q", frames)
				}
			}
		default:
			t.Fatalf("resume answered %q", frames)
		}
	default:
		t.Fatalf("ParseClientFrame(%q) accepted %+v", body, f)
	}
}

func FuzzClientFrame(f *testing.F) {
	hour := strconv.FormatInt(fzNow.Add(-time.Hour).UnixMilli(), 10)
	cursor := func(c string) string { return `{"action":"resume","cursor":` + strconv.Quote(c) + `}` }
	for _, s := range []string{
		`{"action":"ping"}`, `{"action":"resume","cursor":"` + fzCursorOf("l", hour, "e_aaaaaaaaaaaaaaaaaaaaaa") + `"}`,
		cursor(fzCursorOf("s", hour, "")), cursor(fzCursorOf("s", "0", "")), cursor(fzCursorOf("l", "9223372036854775807", "")),
		cursor(fzCursorOf("s", hour, strings.Repeat("e", 1100))), cursor(fzCursorOf("x", hour, "")), cursor(fzCursorOf("s", "-5", "")),
		cursor("%%%"), cursor(""), `{"action":"resume"}`, `{"action":"resume","cursor":5}`, `{"action":""}`, `{}`, `{"action":"PING"}`,
		`{"action":"subscribe"}`, `{"action":"ping","extra":[1,2]}`, `{"action":"ping"}{"action":"ping"}`, `{"action":"ping"} `, `[]`, `null`,
		`"ping"`, ``, ` `, `{`, "\xff", `{"action":"\u0000"}`, `{"action":"` + strings.Repeat("x", 5000) + `"}`, `{"Action":"ping"}`,
		`{"action":"ping","action":"resume"}`, `{"action":"resume","cursor":"` + fzCursorOf("l", hour, "") + `","cursor":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p := &fzPusher{}
		s := &Sessions{Reader: fzReader(), Pusher: p, Now: func() time.Time { return fzNow }}
		if err := s.Message(context.Background(), fzUser, "conn-1", body); err != nil {
			t.Fatalf("Message(%q) = %v; the $default route would answer 500", body, err)
		}
		fzCheckAnswer(t, body, p.frames)
	})
}

func FuzzCursor(f *testing.F) {
	hour := strconv.FormatInt(fzNow.Add(-time.Hour).UnixMilli(), 10)
	for _, s := range []string{
		"", fzCursorOf("s", hour, ""), fzCursorOf("l", hour, "e_aaaaaaaaaaaaaaaaaaaaaa"), fzCursorOf("s", hour, "e_aaaaaaaaaaaaaaaaaaaaaa"),
		fzCursorOf("s", "0", ""), fzCursorOf("s", "00000"+hour, "x|y"), fzCursorOf("l", "9223372036854775807", ""), fzCursorOf("s", "-1", ""),
		fzCursorOf("s", "+1", ""), fzCursorOf("s", hour, strings.Repeat("e", 1100)), fzCursorOf("s", "99999999999999999999", ""),
		"f1|s|1|", "%%%", "Zg", "ZjF8", "ZjF8c3w", fzCursorOf("s", hour, "") + "=", " " + fzCursorOf("s", hour, ""),
	} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, cursor string, settledOnly bool) {
		if k, live, err := decodeCursor(cursor); err == nil {
			again := encodeCursor(k, live)
			k2, live2, err := decodeCursor(again)
			if err != nil || k2 != k || live2 != live {
				t.Fatalf("decodeCursor(%q) = %+v %v, encoded %q decodes to %+v %v (%v)", cursor, k, live, again, k2, live2, err)
			}
		} else if !errors.Is(err, ErrInvalidCursor) {
			t.Fatalf("decodeCursor(%q) = %v; want ErrInvalidCursor", cursor, err)
		}
		b, err := fzReader().Read(context.Background(), fzUser, cursor, 2, settledOnly)
		switch {
		case errors.Is(err, ErrInvalidCursor), errors.Is(err, ErrCursorExpired):
		case err != nil:
			t.Fatalf("Read(%q) = %v; want a batch, ErrInvalidCursor or ErrCursorExpired", cursor, err)
		default:
			if _, _, err := decodeCursor(b.Cursor); err != nil {
				t.Fatalf("Read(%q) handed back cursor %q, which does not decode: %v", cursor, b.Cursor, err)
			}
			for _, fr := range b.Frames {
				if !json.Valid(fr) {
					t.Fatalf("frame %q is not JSON", fr)
				}
			}
		}
	})
}
