package local

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go"
	"github.com/coder/websocket"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/store"
	"github.com/threadline/threadline/shared/token"
)

// frame is a server frame as tests read it.
type frame struct {
	ID         string                     `json:"id"`
	Cursor     string                     `json:"cursor"`
	Type       string                     `json:"type"`
	ThreadID   string                     `json:"threadId"`
	OccurredOn string                     `json:"occurredOn"`
	Data       map[string]json.RawMessage `json:"data"`
	Error      *struct{ Code string }     `json:"error"`
	raw        string
}

func (f frame) str(key string) string {
	var s string
	_ = json.Unmarshal(f.Data[key], &s)
	return s
}

// wsClient is a raw protocol client: every frame is kept, nothing deduped.
type wsClient struct {
	c      *websocket.Conn
	mu     sync.Mutex
	frames []frame
	closed chan websocket.StatusCode
	notify chan struct{}
}

func (s *testStack) dial(t *testing.T, token, cursor string) (*wsClient, error) {
	t.Helper()
	u := s.Info.WebSocket + "/?access_token=" + url.QueryEscape(token)
	if cursor != "" {
		u += "&cursor=" + url.QueryEscape(cursor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CA.Pool()}}}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("handshake %d: %w", resp.StatusCode, err)
		}
		return nil, err
	}
	c.SetReadLimit(256 << 10)
	w := &wsClient{c: c, closed: make(chan websocket.StatusCode, 1), notify: make(chan struct{}, 1)}
	go func() {
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				w.closed <- websocket.CloseStatus(err)
				return
			}
			var f frame
			_ = json.Unmarshal(b, &f)
			f.raw = string(b)
			w.mu.Lock()
			w.frames = append(w.frames, f)
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w, nil
}

func (s *testStack) mustDial(t *testing.T, token, cursor string) *wsClient {
	t.Helper()
	w, err := s.dial(t, token, cursor)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// waitFor waits until ok holds over the frames so far.
func (w *wsClient) waitFor(t *testing.T, what string, ok func([]frame) bool) []frame {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		w.mu.Lock()
		fs := append([]frame(nil), w.frames...)
		w.mu.Unlock()
		if ok(fs) {
			return fs
		}
		select {
		case <-w.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; frames so far:\n%s", what, dump(fs))
		}
	}
}

func (w *wsClient) send(t *testing.T, msg string) {
	t.Helper()
	if err := w.c.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func dump(fs []frame) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s %s %s\n", f.Type, f.ID, f.str("id"))
	}
	return b.String()
}

func has(fs []frame, typ string, match func(frame) bool) bool {
	for _, f := range fs {
		if f.Type == typ && (match == nil || match(f)) {
			return true
		}
	}
	return false
}

func count(fs []frame, typ string) int {
	n := 0
	for _, f := range fs {
		if f.Type == typ {
			n++
		}
	}
	return n
}

// poll long-polls /chat/events once.
func (s *testStack) poll(t *testing.T, token, cursor string, timeout int) ([]frame, string, acsclient.Response) {
	t.Helper()
	path := fmt.Sprintf("/chat/events?timeoutSeconds=%d", timeout)
	if cursor != "" {
		path += "&cursor=" + url.QueryEscape(cursor)
	}
	r := s.do(t, token, acsclient.Request{Method: http.MethodGet, Path: path})
	var page struct {
		Value  []json.RawMessage `json:"value"`
		Cursor string            `json:"cursor"`
	}
	if r.Status != http.StatusOK {
		return nil, "", r
	}
	if err := r.JSON(&page); err != nil || page.Value == nil || page.Cursor == "" {
		t.Fatalf("long poll: %s", r)
	}
	var fs []frame
	for _, raw := range page.Value {
		var f frame
		_ = json.Unmarshal(raw, &f)
		f.raw = string(raw)
		fs = append(fs, f)
	}
	return fs, page.Cursor, r
}

func TestEveryEventTypeOverWebSocketAndLongPoll(t *testing.T) {
	s := startStack(t)
	alice, bob, carol := s.user(t), s.user(t), s.user(t)
	aws := s.mustDial(t, alice.Token, "")
	bws := s.mustDial(t, bob.Token, "")

	// Every kind of change, by the REST API.
	thread := s.createThread(t, alice.Token, "everything", bob).ChatThread.ID
	msg := s.send(t, alice.Token, thread, "hello <b>bob</b> 👋")
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+msg), Body: map[string]any{"content": "edited"}}); r.Status != 204 {
		t.Fatal(r)
	}
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": msg}}); r.Status != 200 {
		t.Fatal(r)
	}
	if r := s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "typing"), Body: map[string]any{"senderDisplayName": "Bob"}}); r.Status != 200 {
		t.Fatal(r)
	}
	if r := s.add(t, alice.Token, thread, carol); r.Status != 201 {
		t.Fatal(r)
	}
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, ""), Body: map[string]any{"topic": "renamed", "metadata": map[string]string{"k": "v"}}}); r.Status != 204 {
		t.Fatal(r)
	}
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "messages/"+msg)}); r.Status != 204 {
		t.Fatal(r)
	}
	if r := s.remove(t, alice.Token, thread, carol.ID); r.Status != 204 {
		t.Fatal(r)
	}
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "")}); r.Status != 204 {
		t.Fatal(r)
	}

	durable := []string{"chatThreadCreated", "chatMessageReceived", "chatMessageEdited", "readReceiptReceived",
		"participantsAdded", "chatThreadPropertiesUpdated", "chatMessageDeleted", "participantsRemoved", "chatThreadDeleted"}
	fs := bws.waitFor(t, "every event type at bob", func(fs []frame) bool {
		for _, typ := range durable {
			if !has(fs, typ, nil) {
				return false
			}
		}
		return true
	})
	byType := map[string]frame{}
	for _, f := range fs {
		if f.ThreadID != thread {
			t.Errorf("frame for another thread: %s", f.raw)
		}
		if f.ID == "" || f.OccurredOn == "" {
			t.Errorf("frame without id or occurredOn: %s", f.raw)
		}
		if _, err := time.Parse(time.RFC3339Nano, f.OccurredOn); err != nil {
			t.Errorf("occurredOn %q", f.OccurredOn)
		}
		var rcpt struct{ RawID string }
		if json.Unmarshal(f.Data["recipient"], &rcpt) != nil || rcpt.RawID != bob.ID {
			t.Errorf("recipient of %s is %s, want bob", f.Type, f.Data["recipient"])
		}
		byType[f.Type] = f
	}
	// ACS's fields, identifiers in the REST wire form.
	recv := byType["chatMessageReceived"]
	var sender struct {
		Kind              string
		RawID             string
		CommunicationUser struct{ ID string }
	}
	_ = json.Unmarshal(recv.Data["sender"], &sender)
	if recv.str("message") != "hello <b>bob</b> 👋" || recv.str("id") != msg || recv.str("type") != "text" || recv.str("sequenceId") != "3" ||
		recv.str("version") == "" || recv.str("createdOn") == "" || sender.Kind != "communicationUser" || sender.RawID != alice.ID || sender.CommunicationUser.ID != alice.ID {
		t.Errorf("chatMessageReceived = %s", recv.raw)
	}
	if recv.Cursor == "" {
		t.Error("a durable event without a cursor")
	}
	if e := byType["chatMessageEdited"]; e.str("message") != "edited" || e.str("editedOn") == "" {
		t.Errorf("chatMessageEdited = %s", e.raw)
	}
	if d := byType["chatMessageDeleted"]; d.str("deletedOn") == "" || d.Data["message"] != nil {
		t.Errorf("chatMessageDeleted = %s", d.raw)
	}
	if r := byType["readReceiptReceived"]; r.str("chatMessageId") != msg || r.str("readOn") == "" {
		t.Errorf("readReceiptReceived = %s", r.raw)
	}
	var props struct {
		Topic    string
		Metadata map[string]string
	}
	if u := byType["chatThreadPropertiesUpdated"]; json.Unmarshal(u.Data["properties"], &props) != nil || props.Topic != "renamed" || props.Metadata["k"] != "v" || u.Data["updatedBy"] == nil {
		t.Errorf("chatThreadPropertiesUpdated = %s", u.raw)
	}
	if c := byType["chatThreadCreated"]; c.Data["createdBy"] == nil || c.Data["participants"] == nil || c.Data["properties"] == nil {
		t.Errorf("chatThreadCreated = %s", c.raw)
	}
	if a := byType["participantsAdded"]; !strings.Contains(string(a.Data["participantsAdded"]), carol.ID) || a.Data["addedBy"] == nil {
		t.Errorf("participantsAdded = %s", a.raw)
	}
	if r := byType["participantsRemoved"]; !strings.Contains(string(r.Data["participantsRemoved"]), carol.ID) || r.Data["removedBy"] == nil {
		t.Errorf("participantsRemoved = %s", r.raw)
	}
	if d := byType["chatThreadDeleted"]; d.Data["deletedBy"] == nil || d.str("deletedOn") == "" {
		t.Errorf("chatThreadDeleted = %s", d.raw)
	}
	// Typing reached alice (not bob, who typed), with no cursor.
	afs := aws.waitFor(t, "typing at alice", func(fs []frame) bool { return has(fs, "typingIndicatorReceived", nil) })
	for _, f := range afs {
		if f.Type == "typingIndicatorReceived" && (f.Cursor != "" || f.str("senderDisplayName") != "Bob") {
			t.Errorf("typing frame = %s", f.raw)
		}
	}
	if has(fs, "typingIndicatorReceived", nil) {
		t.Error("the typist received its own typing indicator")
	}

	// Long polling returns the same events with the same ids and cursors.
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	pushed := map[string]frame{}
	for _, f := range fs {
		if f.Cursor != "" {
			pushed[f.ID] = f
		}
	}
	polled := map[string]frame{}
	cursor := ""
	// Start from before everything: a cursor of the first pushed event, minus nothing.
	first, _, _ := s.poll(t, bob.Token, fs[0].Cursor, 0)
	_ = first
	cursor = fs[0].Cursor
	polled[fs[0].ID] = fs[0]
	for i := 0; i < 20 && len(polled) < len(pushed); i++ {
		got, next, r := s.poll(t, bob.Token, cursor, 3)
		if r.Status != 200 {
			t.Fatalf("long poll: %s", r)
		}
		for _, f := range got {
			polled[f.ID] = f
		}
		cursor = next
	}
	for id, p := range pushed {
		q, ok := polled[id]
		if !ok {
			t.Errorf("long polling missed %s %s", p.Type, id)
			continue
		}
		if q.Cursor != p.Cursor || q.Type != p.Type {
			t.Errorf("%s: pushed cursor %s, polled %s", id, p.Cursor, q.Cursor)
		}
	}
	if has(mapValues(polled), "typingIndicatorReceived", nil) {
		t.Error("long polling returned a typing indicator")
	}
}

func mapValues(m map[string]frame) []frame {
	out := make([]frame, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestResumeDeliversExactlyWhatWasMissed(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "resume", bob).ChatThread.ID
	first := s.send(t, alice.Token, thread, "before")
	bws := s.mustDial(t, bob.Token, "")
	second := s.send(t, alice.Token, thread, "while connected")
	fs := bws.waitFor(t, "the second message", func(fs []frame) bool {
		return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == second })
	})
	cursor := fs[len(fs)-1].Cursor
	// Everything bob's feed held before he left, delivered or not (he
	// connected after the thread was made): a resume may repeat any of it.
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	before, err := s.Realtime.Read(context.Background(), bob.ID, realtime.FeedKey{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range before {
		seen[e.EventID] = true
	}
	bws.c.Close(websocket.StatusNormalClosure, "going away")

	// While bob is away: 50 messages, 5 edits, 5 deletions.
	var ids []string
	for i := 0; i < 50; i++ {
		ids = append(ids, s.send(t, alice.Token, thread, fmt.Sprintf("missed %02d", i)))
	}
	for _, id := range ids[:5] {
		if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+id), Body: map[string]any{"content": "edited"}}); r.Status != 204 {
			t.Fatal(r)
		}
	}
	for _, id := range ids[45:] {
		if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "messages/"+id)}); r.Status != 204 {
			t.Fatal(r)
		}
	}
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}

	back := s.mustDial(t, bob.Token, cursor)
	got := back.waitFor(t, "resumed", func(fs []frame) bool { return has(fs, "resumed", nil) })
	var fresh []frame
	dup := map[string]int{}
	for _, f := range got {
		if f.Type == "resumed" {
			if f.Cursor == "" {
				t.Error("resumed without a cursor")
			}
			continue
		}
		dup[f.ID]++
		if seen[f.ID] {
			continue // the few events just before the cursor come again; clients drop them by id
		}
		fresh = append(fresh, f)
	}
	for id, n := range dup {
		if n > 1 {
			t.Errorf("event %s sent %d times in one resume", id, n)
		}
	}
	if len(fresh) != 60 {
		t.Fatalf("resume delivered %d new events, want 60 (50 received, 5 edited, 5 deleted):\n%s", len(fresh), dump(fresh))
	}
	var order []string
	for _, f := range fresh {
		if f.Type == "chatMessageReceived" {
			order = append(order, f.str("id"))
		}
	}
	if fmt.Sprint(order) != fmt.Sprint(ids) {
		t.Errorf("received events out of order:\n%v\nwant\n%v", order, ids)
	}
	if count(fresh, "chatMessageEdited") != 5 || count(fresh, "chatMessageDeleted") != 5 {
		t.Errorf("edits/deletes: %d/%d", count(fresh, "chatMessageEdited"), count(fresh, "chatMessageDeleted"))
	}
	if has(fresh, "chatMessageReceived", func(f frame) bool { return f.str("id") == first }) {
		t.Error("resume repeated a message from before the connection")
	}
	// And live delivery continues on the resumed connection.
	late := s.send(t, alice.Token, thread, "after resume")
	back.waitFor(t, "a live message after resume", func(fs []frame) bool {
		return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == late })
	})
	// An explicit resume frame works the same way.
	back.send(t, `{"action":"resume","cursor":"`+cursor+`"}`)
	back.waitFor(t, "a second resumed", func(fs []frame) bool { return count(fs, "resumed") == 2 })
}

func TestGoneConnectionIsRemovedOnFirst410(t *testing.T) {
	s := startStack(t)
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "gone", bob).ChatThread.ID
	live := s.mustDial(t, bob.Token, "")
	// A connection that vanished without $disconnect: in bob's item, but
	// unknown to API Gateway.
	ctx := context.Background()
	if err := s.Realtime.Add(ctx, bob.ID, "VANISHED0000000=", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	conns, _ := s.Realtime.Lookup(ctx, []string{bob.ID})
	if len(conns[bob.ID]) != 2 {
		t.Fatalf("connections before = %v", conns)
	}
	id := s.send(t, alice.Token, thread, "ping the dead")
	live.waitFor(t, "the message on the live connection", func(fs []frame) bool {
		return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == id })
	})
	if err := s.WaitStreams(ctx); err != nil {
		t.Fatal(err)
	}
	conns, _ = s.Realtime.Lookup(ctx, []string{bob.ID})
	if len(conns[bob.ID]) != 1 || conns[bob.ID][0] == "VANISHED0000000=" {
		t.Errorf("connections after = %v, want only the live one", conns)
	}
}

func TestOutsidersAndLateJoinersReceiveNothingOfThePast(t *testing.T) {
	s := startStack(t)
	alice, bob, carol, mallory := s.user(t), s.user(t), s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "private", bob).ChatThread.ID
	old := s.send(t, alice.Token, thread, "before carol")
	cws := s.mustDial(t, carol.Token, "")
	mws := s.mustDial(t, mallory.Token, "")
	time.Sleep(5 * time.Millisecond)
	p := acsclient.Participant(carol.ID, "Carol")
	p["shareHistoryTime"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	if r := s.do(t, alice.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "participants/:add"), Body: map[string]any{"participants": []any{p}}}); r.Status != 201 {
		t.Fatal(r)
	}
	// Changes to the old message after carol joined must not reach her.
	s.do(t, alice.Token, acsclient.Request{Method: http.MethodPatch, Path: acsclient.ThreadPath(thread, "messages/"+old), Body: map[string]any{"content": "old, edited"}})
	s.do(t, bob.Token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "readReceipts"), Body: map[string]any{"chatMessageId": old}})
	s.do(t, alice.Token, acsclient.Request{Method: http.MethodDelete, Path: acsclient.ThreadPath(thread, "messages/"+old)})
	fresh := s.send(t, alice.Token, thread, "after carol")
	fs := cws.waitFor(t, "carol's view", func(fs []frame) bool {
		return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == fresh })
	})
	if !has(fs, "participantsAdded", nil) {
		t.Error("carol was not told she was added")
	}
	for _, f := range fs {
		if f.str("id") == old || f.str("chatMessageId") == old {
			t.Errorf("carol received %s about a message from before her share time: %s", f.Type, f.raw)
		}
	}
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	mws.mu.Lock()
	defer mws.mu.Unlock()
	if len(mws.frames) != 0 {
		t.Errorf("an outsider received %d frames:\n%s", len(mws.frames), dump(mws.frames))
	}
	// Nor does its feed hold anything.
	if got, _, _ := s.poll(t, mallory.Token, "", 0); len(got) != 0 {
		t.Errorf("an outsider's feed has %d events", len(got))
	}
}

func TestEveryMemberOfA250ThreadReceivesTheMessage(t *testing.T) {
	s := startStack(t)
	users := s.users(t, 250)
	thread := s.createThread(t, users[0].Token, "everyone", users[1:200]...).ChatThread.ID
	if r := s.add(t, users[0].Token, thread, users[200:]...); r.Status != 201 {
		t.Fatal(r)
	}
	clients := make([]*wsClient, len(users))
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for i, u := range users {
		wg.Add(1)
		go func(i int, token string) {
			defer wg.Done()
			c, err := s.dial(t, token, "")
			if err != nil {
				errs <- err
				return
			}
			clients[i] = c
		}(i, u.Token)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	id := s.send(t, users[7].Token, thread, "to all 250")
	for i, c := range clients {
		c.waitFor(t, fmt.Sprintf("member %d", i), func(fs []frame) bool {
			return has(fs, "chatMessageReceived", func(f frame) bool { return f.str("id") == id })
		})
	}
}

func TestRealtimeBadInput(t *testing.T) {
	s := startStack(t)
	alice := s.user(t)
	signer := mustSigner(t, s)
	expired, _, _ := signer.Issue(alice.ID, s.Secrets.ResourceID, []string{"chat"}, 0, time.Now().Add(-3*time.Hour), time.Hour)
	for _, c := range []struct{ name, token string }{{"missing token", ""}, {"garbage token", "not.a.jwt"}, {"expired token", expired}} {
		if _, err := s.dial(t, c.token, ""); err == nil || !strings.Contains(err.Error(), "handshake 401") {
			t.Errorf("%s: handshake error %v, want a 401", c.name, err)
		}
	}
	w := s.mustDial(t, alice.Token, "")
	w.send(t, `{"action":"dance"}`)
	w.send(t, `{not json`)
	w.send(t, `{"action":"resume"}`)
	w.send(t, `{"action":"resume","cursor":"bm90LWEtY3Vyc29y"}`)
	expiredCursor := encodeTestCursor(time.Now().Add(-25 * time.Hour))
	w.send(t, `{"action":"resume","cursor":"`+expiredCursor+`"}`)
	w.send(t, `{"action":"ping"}`)
	fs := w.waitFor(t, "answers to every bad frame", func(fs []frame) bool { return len(fs) >= 6 })
	// API Gateway runs each client frame's integration on its own, so
	// answers to several frames need not come back in order.
	want := []string{"error:InvalidCursor", "error:InvalidFrame", "error:UnknownAction", "pong", "resyncRequired", "resyncRequired"}
	var got []string
	for _, f := range fs {
		g := f.Type
		if f.Error != nil {
			g += ":" + f.Error.Code
		}
		got = append(got, g)
	}
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	// An oversized frame closes the connection with 1009.
	w.send(t, `{"action":"ping","pad":"`+strings.Repeat("x", 33*1024)+`"}`)
	select {
	case code := <-w.closed:
		if code != websocket.StatusMessageTooBig {
			t.Errorf("close code %v, want 1009", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("an oversized frame did not close the connection")
	}
	// Long polling: expired and invalid cursors, bad timeouts.
	_, _, r := s.poll(t, alice.Token, expiredCursor, 0)
	acsError(t, "expired cursor", r, 410, "CursorExpired", "")
	_, _, r = s.poll(t, alice.Token, "bm90LWEtY3Vyc29y", 0)
	acsError(t, "invalid cursor", r, 400, "InvalidCursor", "")
	_, _, r = s.poll(t, alice.Token, "", 26)
	acsError(t, "timeout over 25 s", r, 400, "InvalidQueryParameter", "")
	if _, _, r := s.poll(t, "", "", 0); r.Status != 401 {
		t.Errorf("long poll without a token: %s", r)
	}
}

func mustSigner(t *testing.T, s *testStack) *token.Signer {
	t.Helper()
	sg, err := token.NewSigner([]byte(s.Secrets.SigningSecret))
	if err != nil {
		t.Fatal(err)
	}
	return sg
}

// encodeTestCursor is a well-formed cursor at a given time (the format is
// the service's own; docs/realtime.md calls it opaque to clients).
func encodeTestCursor(at time.Time) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("f1|l|%d|e_x", at.UnixMilli())))
}

// killer kills the first dispatch invocation that carries a real batch part
// way through: its context ends after a few milliseconds of work and the
// invocation reports an error, as when Lambda's runtime dies mid-batch.
type killer struct {
	Invoker
	killed atomic.Bool
}

func (k *killer) Invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	if fn != "DispatchFunction" || bytes.Count(payload, []byte(`"eventName"`)) < 10 || !k.killed.CompareAndSwap(false, true) {
		return k.Invoker.Invoke(ctx, fn, payload)
	}
	cut, cancel := context.WithTimeout(ctx, 15*time.Millisecond)
	defer cancel()
	_, _ = k.Invoker.Invoke(cut, fn, payload)
	return nil, errors.New("Runtime exited with error: signal: killed")
}

// flakyFeed fails one feed write part way through a batch: the third
// BatchWriteItem call (a stream batch's feed entries go out in calls of 25
// entries, so a busy batch makes several).
type flakyFeed struct {
	store.DB
	calls atomic.Int64
}

func (f *flakyFeed) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	for table := range in.RequestItems {
		if strings.Contains(table, "FeedTable") && f.calls.Add(1) == 3 {
			return nil, &smithy.GenericAPIError{Code: "InternalServerError", Message: "injected"}
		}
	}
	return f.DB.BatchWriteItem(ctx, in, o...)
}

func TestDispatcherFailingMidBatchLosesNothing(t *testing.T) {
	k := &killer{}
	ff := &flakyFeed{}
	s := startStack(t, func(c *Config) {
		c.Wrap = func(i Invoker) Invoker { k.Invoker = i; return k }
		c.WrapDB = func(db store.DB) store.DB { ff.DB = db; return ff }
	})
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "faults", bob).ChatThread.ID
	bws := s.mustDial(t, bob.Token, "")
	// Many messages at once, so the stream hands the dispatcher real batches.
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				id := s.send(t, alice.Token, thread, fmt.Sprintf("m%d-%d", g, i))
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
	if err := s.WaitStreams(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !k.killed.Load() || ff.calls.Load() < 3 {
		t.Fatalf("the faults were not injected (killed %v, feed writes %d)", k.killed.Load(), ff.calls.Load())
	}
	// Every message is in bob's feed (maybe twice: readers dedupe by id)…
	entries, err := s.Realtime.Read(context.Background(), bob.ID, realtime.FeedKey{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	inFeed := map[string]bool{}
	for _, e := range entries {
		if e.Type == "chatMessageReceived" {
			inFeed[e.EventID] = true
		}
	}
	if len(inFeed) != len(ids) {
		t.Errorf("bob's feed holds %d distinct messages, want %d", len(inFeed), len(ids))
	}
	// …and reached his connection, each at least once.
	bws.waitFor(t, "every message at bob", func(fs []frame) bool {
		got := map[string]bool{}
		for _, f := range fs {
			if f.Type == "chatMessageReceived" {
				got[f.str("id")] = true
			}
		}
		return len(got) == len(ids)
	})
	if st := s.Streams[0].Stats(); st.DeadLettered != 0 || st.Retried == 0 {
		t.Errorf("stream stats %+v: want retries and no dead letters", st)
	}
}
