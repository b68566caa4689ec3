package wsapi_test

// Fuzz targets for the WebSocket routes, through the handlers API Gateway
// calls.
//
// FuzzDefault: any client frame, as text or base64, on $default (and on the
// internal $replay route). Never a panic, always 200 (an error is a 500 and
// a lost frame), and the pushed answer is docs/realtime.md's protocol: one
// {"type":"error","error":{"code","message"}} for a refused frame, one pong
// for ping, events then one resumed (or one resyncRequired) for resume.
//
// FuzzConnect: any cursor in the connect URL. $connect answers 200 and asks
// $default to replay from it; that replay, run from the very payload
// $connect sends, answers 200 and ends in resumed or resyncRequired.
//
// The feed store fails as DynamoDB does for a sort key over 1024 bytes.
//
// Short runs:
//   go test ./shared/wsapi -run '^$' -fuzz '^FuzzDefault$' -fuzztime 10s
//   go test ./shared/wsapi -run '^$' -fuzz '^FuzzConnect$' -fuzztime 10s

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/wsapi"
)

var fzNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	fzUser   = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"
	fzThread = "19:aaaaaaaaaaaaaaaaaaaaaaaaaa@thread.v2"
)

type fzFeed struct{ entries []realtime.FeedEntry }

func (f *fzFeed) Append(context.Context, []realtime.FeedEntry) error {
	return errors.New("fzFeed: reads only")
}

func (f *fzFeed) Read(_ context.Context, userID string, after realtime.FeedKey, limit int) ([]realtime.FeedEntry, error) {
	if sk := fmt.Sprintf("%013d#%s", after.Pos, after.EventID); len("F#"+userID) > 2048 || len(sk) > 1024 {
		return nil, errors.New("dynamodb Query: api error ValidationException: Aggregated size of all range keys has exceeded the size limit of 1024 bytes")
	}
	var out []realtime.FeedEntry
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

func (f *fzFeed) MessagesByKey(_ context.Context, keys []realtime.MessageKey) (map[realtime.MessageKey]chat.Message, error) {
	out := map[realtime.MessageKey]chat.Message{}
	for _, k := range keys {
		out[k] = chat.Message{Seq: k.Seq, Type: chat.TypeText, SenderID: fzUser, Body: "hi", CreatedOn: fzNow.Add(-time.Hour), Version: 1}
	}
	return out, nil
}

type fzConns struct {
	mu    sync.Mutex
	conns map[string]time.Time
}

func (c *fzConns) Add(_ context.Context, userID, connectionID string, expires time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conns[userID+"|"+connectionID] = expires
	return nil
}

func (c *fzConns) Remove(_ context.Context, userID, connectionID string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, userID+"|"+connectionID)
	return nil
}

func (c *fzConns) Lookup(context.Context, []string) (map[string][]string, error) {
	return nil, errors.New("fzConns: not used by the routes")
}

func (c *fzConns) Coalesce(context.Context, string, time.Duration) (bool, error) {
	return false, errors.New("fzConns: not used by the routes")
}

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

type fzInvoker struct{ payloads [][]byte }

func (i *fzInvoker) InvokeAsync(_ context.Context, _ string, payload []byte) error {
	i.payloads = append(i.payloads, payload)
	return nil
}

func fzSessions() (*realtime.Sessions, *fzPusher) {
	at := func(d time.Duration) int64 { return fzNow.Add(-d).UnixMilli() }
	feed := &fzFeed{entries: []realtime.FeedEntry{
		{UserID: fzUser, Pos: at(time.Hour), EventID: "e_aaaaaaaaaaaaaaaaaaaaaa", Type: realtime.TypeMessageReceived, ThreadID: fzThread, At: fzNow.Add(-time.Hour), Seq: 1},
		{UserID: fzUser, Pos: at(time.Minute), EventID: "e_bbbbbbbbbbbbbbbbbbbbbb", Type: realtime.TypeThreadUpdated, ThreadID: fzThread, At: fzNow.Add(-time.Minute), Data: json.RawMessage(`{"version":"1"}`)},
	}}
	p := &fzPusher{}
	clock := func() time.Time { return fzNow }
	return &realtime.Sessions{
		Connections: &fzConns{conns: map[string]time.Time{}},
		Reader:      &realtime.Reader{Feed: feed, Messages: feed, Retention: 24 * time.Hour, Now: clock},
		Pusher:      p, Now: clock,
	}, p
}

var fzLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func fzAuthorizer() map[string]any {
	return map[string]any{"userId": fzUser, "scopes": "chat", "expires": strconv.FormatInt(fzNow.Add(time.Hour).Unix(), 10)}
}

// fzFrames decodes pushed frames and returns their types.
func fzFrames(t *testing.T, frames [][]byte) []string {
	t.Helper()
	var types []string
	for _, fr := range frames {
		var m struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(fr, &m); err != nil || m.Type == "" {
			t.Fatalf("frame %q is not a JSON object with a type (%v)", fr, err)
		}
		types = append(types, m.Type)
	}
	return types
}

// fzResumeAnswer checks frames are events then one resumed with a cursor,
// or just one resyncRequired.
func fzResumeAnswer(t *testing.T, frames [][]byte) {
	t.Helper()
	types := fzFrames(t, frames)
	if len(types) == 1 && string(frames[0]) == `{"type":"resyncRequired"}` {
		return
	}
	if len(types) == 0 || types[len(types)-1] != "resumed" {
		t.Fatalf("resume answered %q; want events then resumed, or resyncRequired", frames)
	}
	var r struct {
		Cursor string `json:"cursor"`
	}
	if json.Unmarshal(frames[len(frames)-1], &r) != nil || r.Cursor == "" {
		t.Fatalf("resumed without a cursor: %s", frames[len(frames)-1])
	}
	for _, typ := range types[:len(types)-1] {
		if slices.Contains([]string{"resumed", "resyncRequired", "error", "pong"}, typ) {
			t.Fatalf("resume answered %q", frames)
		}
	}
}

func FuzzDefault(f *testing.F) {
	hour := strconv.FormatInt(fzNow.Add(-time.Hour).UnixMilli(), 10)
	cur := func(flag, pos, id string) string {
		return base64.RawURLEncoding.EncodeToString([]byte("f1|" + flag + "|" + pos + "|" + id))
	}
	for _, s := range []string{`{"action":"ping"}`, `{"action":"resume","cursor":"` + cur("l", hour, "e_aaaaaaaaaaaaaaaaaaaaaa") + `"}`,
		`{"action":"resume","cursor":"` + cur("s", hour, "") + `"}`, `{"action":"resume","cursor":"` + cur("s", "1", "") + `"}`,
		`{"action":"resume","cursor":"` + cur("s", hour, strings.Repeat("e", 1100)) + `"}`, `{"action":"resume","cursor":"!"}`,
		`{"action":"resume"}`, `{"action":"nope"}`, `{}`, ``, `{`, `[1]`, "\xff\xfe", `{"action":"ping"}{}`} {
		for _, mode := range []uint8{0, 1, 2, 3} {
			f.Add([]byte(s), mode)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, mode uint8) {
		s, p := fzSessions()
		replay := mode&2 != 0
		ev := events.APIGatewayWebsocketProxyRequest{Body: strings.ToValidUTF8(string(body), "\uFFFD")}
		ev.RequestContext.RouteKey, ev.RequestContext.ConnectionID, ev.RequestContext.Authorizer = "$default", "conn-1", fzAuthorizer()
		if mode&1 != 0 {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
		if replay {
			ev.RequestContext.RouteKey = wsapi.ReplayRoute
		}
		resp, err := wsapi.Default(s, fzLog)(context.Background(), ev)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("$default answered %d, %v; want 200", resp.StatusCode, err)
		}
		sent := body
		if mode&1 == 0 {
			sent = []byte(ev.Body)
		}
		frame, perr := realtime.ParseClientFrame(sent)
		switch {
		case replay || perr == nil && frame.Action == "resume":
			fzResumeAnswer(t, p.frames)
		case perr != nil:
			var e struct {
				Type  string            `json:"type"`
				Error map[string]string `json:"error"`
			}
			var all map[string]any
			if len(p.frames) != 1 || json.Unmarshal(p.frames[0], &e) != nil || json.Unmarshal(p.frames[0], &all) != nil ||
				len(all) != 2 || e.Type != "error" || len(e.Error) != 2 || e.Error["code"] == "" || e.Error["message"] == "" {
				t.Fatalf("refused frame %q answered %q; want one {\"type\":\"error\",\"error\":{\"code\",\"message\"}}", sent, p.frames)
			}
		default:
			if len(p.frames) != 1 || string(p.frames[0]) != `{"type":"pong"}` {
				t.Fatalf("ping answered %q", p.frames)
			}
		}
	})
}

func FuzzConnect(f *testing.F) {
	hour := strconv.FormatInt(fzNow.Add(-time.Hour).UnixMilli(), 10)
	for _, c := range []string{"", base64.RawURLEncoding.EncodeToString([]byte("f1|l|" + hour + "|e_aaaaaaaaaaaaaaaaaaaaaa")),
		base64.RawURLEncoding.EncodeToString([]byte("f1|s|" + hour + "|" + strings.Repeat("e", 1100))), "x", "\"", `{"action":"ping"}`} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		cursor = strings.ToValidUTF8(cursor, "\uFFFD")
		s, p := fzSessions()
		inv := &fzInvoker{}
		var ev events.APIGatewayWebsocketProxyRequest
		ev.QueryStringParameters = map[string]string{"access_token": "t", "cursor": cursor}
		ev.RequestContext.RouteKey, ev.RequestContext.ConnectionID, ev.RequestContext.Authorizer = "$connect", "conn-1", fzAuthorizer()
		resp, err := wsapi.Connect(s, inv, "ws-default", fzLog)(context.Background(), ev)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("$connect answered %d, %v; want 200", resp.StatusCode, err)
		}
		if want := min(len(cursor), 1); len(inv.payloads) != want {
			t.Fatalf("$connect with cursor %q started %d replays; want %d", cursor, len(inv.payloads), want)
		}
		for _, payload := range inv.payloads {
			var replay events.APIGatewayWebsocketProxyRequest
			if err := json.Unmarshal(payload, &replay); err != nil {
				t.Fatalf("replay payload %q: %v", payload, err)
			}
			if replay.RequestContext.RouteKey != wsapi.ReplayRoute {
				t.Fatalf("replay route = %q", replay.RequestContext.RouteKey)
			}
			resp, err := wsapi.Default(s, fzLog)(context.Background(), replay)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("the replay answered %d, %v; want 200", resp.StatusCode, err)
			}
			fzResumeAnswer(t, p.frames)
		}
	})
}
