package chat_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
)

// The fixture thread was created an hour before t0 (the service's clock).
var base = t0.Add(-time.Hour)

// minute returns base plus n minutes.
func minute(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }

func as(userID string, scopes ...string) chat.Caller {
	return chat.Caller{UserID: userID, Scopes: scopes}
}

func textMsg(seq int64, sender string, created time.Time) chat.Message {
	return chat.Message{
		Seq: seq, Type: chat.TypeText, SenderID: sender, SenderDisplayName: "name " + sender[len(sender)-2:],
		Body: fmt.Sprintf("m%d", seq), CreatedOn: created, Version: created.UnixMilli(),
	}
}

// chatFixture seeds a thread created at base with the members (current,
// joined at base) and seven messages: participantAdded (1) and topicUpdated
// (2) at base, then text messages 3…7 a minute apart (3 at minute 1, …,
// 7 at minute 5), sent by me (3, 5, 7) and alice (4, 6).
func chatFixture(e *msgEnv, members ...string) chat.Thread {
	th := seedThread(e.env, "topic", base, members...)
	var ps []chat.Participant
	for _, m := range members {
		ps = append(ps, chat.Participant{UserID: m, JoinedOn: base})
	}
	e.mc.seedMessages(th.ID,
		chat.Message{Seq: 1, Type: chat.TypeParticipantAdded, Participants: ps, InitiatorID: members[0], CreatedOn: base, Version: base.UnixMilli()},
		chat.Message{Seq: 2, Type: chat.TypeTopicUpdated, Topic: "topic", InitiatorID: members[0], CreatedOn: base, Version: base.UnixMilli()},
		textMsg(3, me, minute(1)), textMsg(4, alice, minute(2)), textMsg(5, me, minute(3)),
		textMsg(6, alice, minute(4)), textMsg(7, me, minute(5)),
	)
	return e.st.thread(th.ID)
}

// updateParticipant changes a stored participant.
func updateParticipant(e *msgEnv, threadID, userID string, f func(p *chat.Participant)) {
	p, ok := e.mc.participant(threadID, userID)
	if !ok {
		panic("no participant " + userID)
	}
	f(&p)
	e.mc.setParticipant(threadID, p)
}

func removedAt(seq int64, at time.Time) func(p *chat.Participant) {
	return func(p *chat.Participant) { p.RemovedOn, p.RemovedSeq = at, seq }
}

func sharesFrom(at time.Time) func(p *chat.Participant) {
	return func(p *chat.Participant) { p.ShareHistoryTime = at }
}

func markDeleted(e *msgEnv, threadID string, at time.Time) {
	th := e.st.thread(threadID)
	th.DeletedOn = at
	e.st.setThread(th)
}

// want is an expected outcome: code "" means success.
type want struct {
	kind   fault.Kind
	code   string
	target string
}

var (
	noErr              = want{}
	errScope           = want{fault.Forbidden, "InsufficientScope", ""}
	errNotParticipant  = want{fault.Forbidden, "NotAParticipant", ""}
	errRemoved         = want{fault.Forbidden, "ParticipantRemoved", ""}
	errNotSender       = want{fault.Forbidden, "NotMessageSender", ""}
	errThreadNotFound  = want{fault.NotFound, "ThreadNotFound", "chatThreadId"}
	errThreadDeleted   = want{fault.NotFound, "ThreadDeleted", "chatThreadId"}
	errMessageNotFound = want{fault.NotFound, "MessageNotFound", "chatMessageId"}
	errPageSize        = want{fault.BadRequest, "InvalidPageSize", "maxPageSize"}
	errSkip            = want{fault.BadRequest, "InvalidQueryParameter", "skip"}
	errCursor          = want{fault.BadRequest, "InvalidContinuationToken", "syncState"}
	errTooMany         = want{fault.BadRequest, "TooManyParticipants", "participants"}
)

// check fails the test unless err is the expected outcome; it reports
// whether success was expected (and happened).
func (w want) check(t *testing.T, err error) bool {
	t.Helper()
	if w.code == "" {
		if err != nil {
			t.Fatalf("err = %v; want success", err)
		}
		return true
	}
	fe := wantFault(t, err, w.kind, w.code)
	if fe.Target != w.target {
		t.Fatalf("%s target = %q; want %q", fe.Code, fe.Target, w.target)
	}
	return false
}

func seqs(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

var ctx = context.Background()

// ---------------------------------------------------------------- messages

// A service built without a sanitizer (every function but send-message and
// update-message) refuses html content rather than storing it unsanitized;
// text still goes through.
func TestHTMLWithoutSanitizerIsRefused(t *testing.T) {
	e := newMsgEnv()
	e.svc.HTML = nil
	th := chatFixture(e, me, alice)
	if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Type: "html", Content: "<b>hi</b><script>x()</script>"}); err == nil {
		t.Fatal("html send without a sanitizer succeeded")
	} else if fe, ok := fault.As(err); ok {
		t.Fatalf("err = %v (%s); want an internal error", err, fe.Code)
	}
	setMessage(e, th.ID, 3, func(m *chat.Message) { m.Type = chat.TypeHTML })
	if err := e.svc.UpdateMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 3), chat.MessagePatch{Content: ptr("<i>x</i><script>y()</script>")}); err == nil {
		t.Fatal("html edit without a sanitizer succeeded")
	}
	if n := e.mc.writes(); n != 0 {
		t.Errorf("a refused html message reached the store: %d writes", n)
	}
	if m, _ := e.mc.message(th.ID, 3); m.Body != "m3" {
		t.Errorf("message 3 body = %q; want it unchanged", m.Body)
	}
	if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Content: "<b>plain</b>"}); err != nil {
		t.Fatalf("text send without a sanitizer: %v", err)
	}
}

func TestSendMessageContentChecks(t *testing.T) {
	maxText := strings.Repeat("a", chat.MaxMessageBytes)
	maxEmoji := strings.Repeat("😀", chat.MaxMessageBytes/4) // 4 bytes each
	bigMeta := map[string]string{"k": strings.Repeat("x", chat.MaxMetadataBytes)}
	tests := []struct {
		name     string
		in       chat.SendMessageInput
		want     want
		wantType string
		wantBody string
	}{
		{"type defaults to text", chat.SendMessageInput{Content: "hi"}, noErr, chat.TypeText, "hi"},
		{"TEXT in capitals", chat.SendMessageInput{Type: "TEXT", Content: "hi"}, noErr, chat.TypeText, "hi"},
		{"text is not sanitized", chat.SendMessageInput{Type: "text", Content: "<script>x()</script>"}, noErr, chat.TypeText, "<script>x()</script>"},
		{"Html loses scripts", chat.SendMessageInput{Type: "Html", Content: "<b>hi</b><script>alert(1)</script>"}, noErr, chat.TypeHTML, "<b>hi</b>"},
		{"html loses event handlers", chat.SendMessageInput{Type: "html", Content: `<p onclick="steal()">p</p>`}, noErr, chat.TypeHTML, "<p>p</p>"},
		{"html keeps formatting", chat.SendMessageInput{Type: "HTML", Content: "<i>a</i><ul><li>b</li></ul>"}, noErr, chat.TypeHTML, "<i>a</i><ul><li>b</li></ul>"},
		{"28 KB exactly", chat.SendMessageInput{Content: maxText}, noErr, chat.TypeText, maxText},
		{"28 KB of emoji round-trips", chat.SendMessageInput{Content: maxEmoji}, noErr, chat.TypeText, maxEmoji},
		{"one byte over 28 KB", chat.SendMessageInput{Content: maxText + "b"}, want{fault.TooLarge, "MessageTooLarge", "content"}, "", ""},
		{"emoji one byte over", chat.SendMessageInput{Content: maxEmoji + "b"}, want{fault.TooLarge, "MessageTooLarge", "content"}, "", ""},
		{"unknown type", chat.SendMessageInput{Type: "markdown", Content: "x"}, want{fault.BadRequest, "InvalidMessageType", "type"}, "", ""},
		{"topicUpdated is not sendable", chat.SendMessageInput{Type: chat.TypeTopicUpdated, Content: "x"}, want{fault.BadRequest, "InvalidMessageType", "type"}, "", ""},
		{"empty content", chat.SendMessageInput{Content: ""}, want{fault.BadRequest, "InvalidContent", "content"}, "", ""},
		{"invalid UTF-8", chat.SendMessageInput{Content: "a\xffb"}, want{fault.BadRequest, "InvalidContent", "content"}, "", ""},
		{"metadata too large", chat.SendMessageInput{Content: "x", Metadata: bigMeta}, want{fault.BadRequest, "MetadataTooLarge", "metadata"}, "", ""},
		{"metadata with an empty key", chat.SendMessageInput{Content: "x", Metadata: map[string]string{"": "v"}}, want{fault.BadRequest, "InvalidMetadata", "metadata"}, "", ""},
		{"display name of 256 runes", chat.SendMessageInput{Content: "x", SenderDisplayName: strings.Repeat("é", 256)}, noErr, chat.TypeText, "x"},
		{"display name of 257 runes", chat.SendMessageInput{Content: "x", SenderDisplayName: strings.Repeat("é", 257)}, want{fault.BadRequest, "InvalidDisplayName", "senderDisplayName"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			got, err := e.svc.SendMessage(ctx, chatCaller, th.ID, tt.in)
			if !tt.want.check(t, err) {
				if len(e.mc.sendChecks) != 0 || len(e.mc.nextSeqs) != 0 || len(e.mc.puts) != 0 {
					t.Errorf("a refused send reached the store: %d checks, %d seqs, %d puts", len(e.mc.sendChecks), len(e.mc.nextSeqs), len(e.mc.puts))
				}
				return
			}
			if got.Seq != 8 {
				t.Fatalf("seq = %d; want 8", got.Seq)
			}
			stored, ok := e.mc.message(th.ID, 8)
			if !ok {
				t.Fatal("no message 8 stored")
			}
			if stored.Type != tt.wantType || stored.Body != tt.wantBody {
				t.Errorf("stored %s %q; want %s %q", stored.Type, stored.Body, tt.wantType, tt.wantBody)
			}
			if got.Type != tt.wantType || got.Body != tt.wantBody {
				t.Errorf("returned %s %q; want %s %q", got.Type, got.Body, tt.wantType, tt.wantBody)
			}
			if stored.SenderDisplayName != tt.in.SenderDisplayName {
				t.Errorf("display name = %q; want %q", stored.SenderDisplayName, tt.in.SenderDisplayName)
			}
		})
	}
}

func TestSendMessageStoresTheMessage(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	meta := map[string]string{"k": "v"}
	got, err := e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Content: "hello", SenderDisplayName: "Me", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	want := chat.Message{Seq: 8, Type: chat.TypeText, SenderID: me, SenderDisplayName: "Me", Body: "hello", CreatedOn: t0, Version: t0.UnixMilli(), Metadata: meta}
	for name, m := range map[string]chat.Message{"returned": got, "stored": func() chat.Message { m, _ := e.mc.message(th.ID, 8); return m }()} {
		if m.Seq != want.Seq || m.Type != want.Type || m.SenderID != want.SenderID || m.SenderDisplayName != want.SenderDisplayName ||
			m.Body != want.Body || !m.CreatedOn.Equal(want.CreatedOn) || m.Version != want.Version || !maps.Equal(m.Metadata, want.Metadata) ||
			!m.EditedOn.IsZero() || !m.DeletedOn.IsZero() {
			t.Errorf("%s message = %+v; want %+v", name, m, want)
		}
	}
	if th2 := e.st.thread(th.ID); th2.Seq != 8 || !th2.LastMessageAt.Equal(t0) {
		t.Errorf("thread seq/activity = %d / %v; want 8 / %v", th2.Seq, th2.LastMessageAt, t0)
	}
	if len(e.mc.sendChecks) != 1 || e.mc.sendChecks[0] != (sendCheckCall{th.ID, me, ""}) {
		t.Errorf("SendCheck calls = %+v; want one for (%s, %s, \"\")", e.mc.sendChecks, th.ID, me)
	}
	if len(e.mc.puts) != 1 || e.mc.puts[0].key != "" || e.mc.puts[0].rec != nil {
		t.Errorf("PutMessage calls = %+v; want one with no request record", e.mc.puts)
	}
	if e.st.views != 0 {
		t.Errorf("a member's send read the thread view %d times; want 0 (SendCheck is enough)", e.st.views)
	}

	// A second send takes the next sequence id.
	e.clock.Advance(time.Second)
	got2, err := e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Content: "again"})
	if err != nil || got2.Seq != 9 || !got2.CreatedOn.Equal(t0.Add(time.Second)) {
		t.Errorf("second send = seq %d at %v, %v; want seq 9 at %v", got2.Seq, got2.CreatedOn, err, t0.Add(time.Second))
	}
}

func TestSendMessageAccess(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *msgEnv, th chat.Thread) string // returns the thread id to send to
		c      chat.Caller
		want   want
		noRead bool // refused before any store read
	}{
		{"member with chat", nil, chatCaller, noErr, false},
		{"member with chat.join", nil, caller("chat.join"), noErr, false},
		{"member with chat.join.limited", nil, caller("chat.join.limited"), noErr, false},
		{"voip only", nil, caller("voip"), errScope, true},
		{"no scopes", nil, caller(), errScope, true},
		{"malformed thread id", func(*msgEnv, chat.Thread) string { return "19:nope@thread.v2" }, chatCaller, errThreadNotFound, true},
		{"unknown thread", func(*msgEnv, chat.Thread) string { return chat.NewThreadID(t0) }, chatCaller, errThreadNotFound, false},
		{"not a participant", func(e *msgEnv, _ chat.Thread) string { return seedThread(e.env, "other", base, alice, bob).ID }, chatCaller, errNotParticipant, false},
		{"removed participant", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
			return th.ID
		}, chatCaller, errRemoved, false},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(30)); return th.ID }, chatCaller, errThreadDeleted, false},
		{"retention period over", func(e *msgEnv, th chat.Thread) string {
			x := e.st.thread(th.ID)
			x.CreatedOn = t0.Add(-31 * 24 * time.Hour)
			x.Retention = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
			e.st.setThread(x)
			return th.ID
		}, chatCaller, errThreadDeleted, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			id := th.ID
			if tt.setup != nil {
				id = tt.setup(e, th)
			}
			before := e.mc.messageCount(id)
			m, err := e.svc.SendMessage(ctx, tt.c, id, chat.SendMessageInput{Content: "x"})
			if tt.want.check(t, err) {
				if m.Seq != 8 || m.SenderID != me {
					t.Errorf("sent %+v; want seq 8 from me", m)
				}
				return
			}
			if n := e.mc.messageCount(id); n != before || len(e.mc.puts) != 0 {
				t.Errorf("a refused send wrote: %d → %d messages, %d puts", before, n, len(e.mc.puts))
			}
			if tt.noRead && len(e.mc.sendChecks)+e.st.views != 0 {
				t.Errorf("the store was read for a request refused up front")
			}
		})
	}
}

func TestSendMessageRepeatability(t *testing.T) {
	in := chat.SendMessageInput{Content: "once", RequestID: "req-1", RequestHash: "hash-A"}

	t.Run("the record commits with the message", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in); err != nil {
			t.Fatal(err)
		}
		if len(e.mc.puts) != 1 {
			t.Fatalf("puts = %d", len(e.mc.puts))
		}
		p := e.mc.puts[0]
		if p.key == "" || p.key != e.mc.sendChecks[0].key {
			t.Errorf("PutMessage key %q, SendCheck key %q; want the same non-empty key", p.key, e.mc.sendChecks[0].key)
		}
		if p.rec == nil {
			t.Fatal("no request record written with the message")
		}
		r := *p.rec
		if r.Hash != "hash-A" || r.ThreadID != th.ID || !r.Done || !r.Created.Equal(t0) || !r.Expires.Equal(t0.Add(24*time.Hour)) || string(r.Result) != `{"seq":8}` {
			t.Errorf("record = %+v (result %s)", r, r.Result)
		}
	})

	t.Run("a repeat replays the first message", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		first, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []time.Duration{time.Second, 23 * time.Hour} {
			e.clock.Advance(d)
			again, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in)
			if err != nil {
				t.Fatal(err)
			}
			if again.Seq != first.Seq || first.Seq != 8 {
				t.Errorf("repeat seq = %d; want %d (first 8)", again.Seq, first.Seq)
			}
		}
		if len(e.mc.nextSeqs) != 1 || len(e.mc.puts) != 1 || e.mc.messageCount(th.ID) != 8 {
			t.Errorf("repeats wrote: %d seqs, %d puts, %d messages; want 1, 1, 8", len(e.mc.nextSeqs), len(e.mc.puts), e.mc.messageCount(th.ID))
		}
	})

	t.Run("after 24 hours the id is forgotten", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(24*time.Hour + time.Millisecond)
		again, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in)
		if err != nil || again.Seq != 9 {
			t.Errorf("send after 24 h = seq %d, %v; want a new message 9", again.Seq, err)
		}
	})

	t.Run("same id with another body conflicts", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in); err != nil {
			t.Fatal(err)
		}
		other := in
		other.Content, other.RequestHash = "twice", "hash-B"
		_, err := e.svc.SendMessage(ctx, chatCaller, th.ID, other)
		want{fault.Conflict, "RepeatabilityConflict", "repeatability-request-id"}.check(t, err)
		if len(e.mc.nextSeqs) != 1 || e.mc.messageCount(th.ID) != 8 {
			t.Errorf("a conflicting repeat wrote: %d seqs, %d messages", len(e.mc.nextSeqs), e.mc.messageCount(th.ID))
		}
	})

	t.Run("the id is scoped to thread and caller", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		other := chatFixture(e, me, alice)
		a, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.svc.SendMessage(ctx, chatCaller, other.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.svc.SendMessage(ctx, as(alice, "chat"), th.ID, in)
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq != 8 || b.Seq != 8 || c.Seq != 9 || len(e.mc.puts) != 3 {
			t.Errorf("seqs = %d, %d, %d with %d puts; want 8 (thread 1), 8 (thread 2), 9 (alice) and 3 puts", a.Seq, b.Seq, c.Seq, len(e.mc.puts))
		}
		if m, _ := e.mc.message(th.ID, 9); m.SenderID != alice {
			t.Errorf("message 9 sender = %s; want alice", m.SenderID)
		}
	})

	t.Run("without an id every send is new", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		plain := chat.SendMessageInput{Content: "x", RequestHash: "hash-A"}
		a, _ := e.svc.SendMessage(ctx, chatCaller, th.ID, plain)
		b, _ := e.svc.SendMessage(ctx, chatCaller, th.ID, plain)
		if a.Seq != 8 || b.Seq != 9 {
			t.Errorf("seqs = %d, %d; want 8, 9", a.Seq, b.Seq)
		}
	})

	// A concurrent request with the same id commits between our SendCheck
	// and our PutMessage.
	races := []struct {
		name       string
		winner     *chat.RequestRecord // stored by the racing request; nil: none visible yet
		secondErr  error               // the second SendCheck fails
		wantSeq    int64
		want       want
		wantChecks int
	}{
		{"winner with the same body is replayed", &chat.RequestRecord{Hash: "hash-A", Done: true, Result: []byte(`{"seq":41}`)}, nil, 41, noErr, 2},
		{"winner with another body conflicts", &chat.RequestRecord{Hash: "hash-B", Done: true, Result: []byte(`{"seq":41}`)}, nil, 0, want{fault.Conflict, "RepeatabilityConflict", "repeatability-request-id"}, 2},
		{"winner not visible yet is busy", nil, nil, 0, want{fault.Unavailable, fault.CodeUnavailable, ""}, 2},
	}
	for _, tt := range races {
		t.Run("race: "+tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			e.mc.putHook = func(call int, _ chat.Message, key string, _ *chat.RequestRecord) error {
				if tt.winner != nil {
					w := *tt.winner
					w.Expires = t0.Add(time.Hour)
					e.mc.sendRecs[key] = w
				}
				return chat.ErrRaced
			}
			m, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in)
			if tt.want.check(t, err) && m.Seq != tt.wantSeq {
				t.Errorf("seq = %d; want %d", m.Seq, tt.wantSeq)
			}
			if len(e.mc.sendChecks) != tt.wantChecks || len(e.mc.puts) != 1 {
				t.Errorf("SendCheck/PutMessage calls = %d/%d; want %d/1", len(e.mc.sendChecks), len(e.mc.puts), tt.wantChecks)
			}
			if len(e.mc.sendChecks) == 2 && e.mc.sendChecks[1] != e.mc.sendChecks[0] {
				t.Errorf("second SendCheck = %+v; want the first's arguments %+v", e.mc.sendChecks[1], e.mc.sendChecks[0])
			}
			if tt.want.code == fault.CodeUnavailable {
				if fe, _ := fault.As(err); fe.RetryAfter != time.Second {
					t.Errorf("RetryAfter = %v; want 1s", fe.RetryAfter)
				}
			}
		})
	}

	t.Run("race: the second check fails", func(t *testing.T) {
		e := newMsgEnv()
		th := chatFixture(e, me, alice)
		boom := errors.New("boom")
		e.mc.putHook = func(int, chat.Message, string, *chat.RequestRecord) error { return chat.ErrRaced }
		e.mc.sendCheckHook = func(call int) error {
			if call == 2 {
				return boom
			}
			return nil
		}
		if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, in); !errors.Is(err, boom) {
			t.Fatalf("err = %v; want %v", err, boom)
		}
	})
}

func TestSendMessageStoreErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		setup func(e *msgEnv, th chat.Thread)
	}{
		{"SendCheck", func(e *msgEnv, _ chat.Thread) { e.mc.sendCheckErr = boom }},
		{"NextSeq", func(e *msgEnv, _ chat.Thread) { e.mc.nextSeqErr = boom }},
		{"PutMessage", func(e *msgEnv, _ chat.Thread) {
			e.mc.putHook = func(int, chat.Message, string, *chat.RequestRecord) error { return boom }
		}},
		{"ThreadView of a non-member", func(e *msgEnv, th chat.Thread) {
			e.st.viewErr = boom
			e.mc.mu.Lock()
			delete(e.mc.parts[th.ID], me)
			e.mc.mu.Unlock()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			tt.setup(e, th)
			if _, err := e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Content: "x", RequestID: "r"}); !errors.Is(err, boom) {
				t.Fatalf("err = %v; want %v", err, boom)
			}
			if e.mc.messageCount(th.ID) != 7 {
				t.Errorf("messages = %d; want 7", e.mc.messageCount(th.ID))
			}
		})
	}
}

func TestListMessages(t *testing.T) {
	cursor := func(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	tests := []struct {
		name       string
		setup      func(e *msgEnv, th chat.Thread)
		c          chat.Caller
		q          chat.MessageQuery
		want       want
		wantSeqs   []int64
		wantCursor bool
		wantRange  chat.MessageRange // what the store was asked for
	}{
		{"default page", nil, chatCaller, chat.MessageQuery{}, noErr, []int64{7, 6, 5, 4, 3, 2, 1}, false, chat.MessageRange{Limit: 21}},
		{"chat.join.limited", nil, caller("chat.join.limited"), chat.MessageQuery{}, noErr, []int64{7, 6, 5, 4, 3, 2, 1}, false, chat.MessageRange{Limit: 21}},
		{"page of 3", nil, chatCaller, chat.MessageQuery{PageSize: 3}, noErr, []int64{7, 6, 5}, true, chat.MessageRange{Limit: 4}},
		{"page exactly as large as the thread", nil, chatCaller, chat.MessageQuery{PageSize: 7}, noErr, []int64{7, 6, 5, 4, 3, 2, 1}, false, chat.MessageRange{Limit: 8}},
		{"page of 200", nil, chatCaller, chat.MessageQuery{PageSize: 200}, noErr, []int64{7, 6, 5, 4, 3, 2, 1}, false, chat.MessageRange{Limit: 201}},
		{"startTime is inclusive", nil, chatCaller, chat.MessageQuery{StartTime: minute(3)}, noErr, []int64{7, 6, 5}, false, chat.MessageRange{Limit: 21, Since: minute(3)}},
		{"cursor", nil, chatCaller, chat.MessageQuery{PageSize: 2, Cursor: cursor("m1|5")}, noErr, []int64{4, 3}, true, chat.MessageRange{Limit: 3, Before: 5}},
		{"cursor near the start", nil, chatCaller, chat.MessageQuery{PageSize: 2, Cursor: cursor("m1|2")}, noErr, []int64{1}, false, chat.MessageRange{Limit: 3, Before: 2}},
		{"share-history time bounds the caller", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(4)))
		}, chatCaller, chat.MessageQuery{}, noErr, []int64{7, 6}, false, chat.MessageRange{Limit: 21, Since: minute(4)}},
		{"later startTime beats share-history time", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(1)))
		}, chatCaller, chat.MessageQuery{StartTime: minute(4)}, noErr, []int64{7, 6}, false, chat.MessageRange{Limit: 21, Since: minute(4)}},
		{"later share-history time beats startTime", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(4)))
		}, chatCaller, chat.MessageQuery{StartTime: minute(1)}, noErr, []int64{7, 6}, false, chat.MessageRange{Limit: 21, Since: minute(4)}},
		{"removed caller sees up to its removal", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(5, minute(3)))
		}, chatCaller, chat.MessageQuery{}, noErr, []int64{5, 4, 3, 2, 1}, false, chat.MessageRange{Limit: 21, MaxSeq: 5}},
		{"removed caller with a share-history time", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, func(p *chat.Participant) { sharesFrom(minute(2))(p); removedAt(5, minute(3))(p) })
		}, chatCaller, chat.MessageQuery{}, noErr, []int64{5, 4}, false, chat.MessageRange{Limit: 21, MaxSeq: 5, Since: minute(2)}},
		{"removed caller paging", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(5, minute(3)))
		}, chatCaller, chat.MessageQuery{PageSize: 2}, noErr, []int64{5, 4}, true, chat.MessageRange{Limit: 3, MaxSeq: 5}},
		{"page size -1", nil, chatCaller, chat.MessageQuery{PageSize: -1}, errPageSize, nil, false, chat.MessageRange{}},
		{"page size 201", nil, chatCaller, chat.MessageQuery{PageSize: 201}, errPageSize, nil, false, chat.MessageRange{}},
		{"cursor not base64", nil, chatCaller, chat.MessageQuery{Cursor: "!!!"}, errCursor, nil, false, chat.MessageRange{}},
		{"cursor of sequence 0", nil, chatCaller, chat.MessageQuery{Cursor: cursor("m1|0")}, errCursor, nil, false, chat.MessageRange{}},
		{"cursor not a number", nil, chatCaller, chat.MessageQuery{Cursor: cursor("m1|x")}, errCursor, nil, false, chat.MessageRange{}},
		{"cursor of another kind", nil, chatCaller, chat.MessageQuery{Cursor: cursor("t1|5")}, errCursor, nil, false, chat.MessageRange{}},
		{"voip only", nil, caller("voip"), chat.MessageQuery{}, errScope, nil, false, chat.MessageRange{}},
		{"not a participant", func(e *msgEnv, th chat.Thread) {
			e.mc.mu.Lock()
			delete(e.mc.parts[th.ID], me)
			e.mc.mu.Unlock()
		}, chatCaller, chat.MessageQuery{}, errNotParticipant, nil, false, chat.MessageRange{}},
		{"deleted thread", func(e *msgEnv, th chat.Thread) { markDeleted(e, th.ID, minute(10)) }, chatCaller, chat.MessageQuery{}, errThreadDeleted, nil, false, chat.MessageRange{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			if tt.setup != nil {
				tt.setup(e, th)
			}
			page, err := e.svc.ListMessages(ctx, tt.c, th.ID, tt.q)
			if !tt.want.check(t, err) {
				if len(e.mc.ranges) != 0 {
					t.Errorf("a refused listing read messages: %+v", e.mc.ranges)
				}
				return
			}
			if got := seqs(page.Messages); !slices.Equal(got, tt.wantSeqs) {
				t.Errorf("seqs = %v; want %v", got, tt.wantSeqs)
			}
			if (page.Cursor != "") != tt.wantCursor {
				t.Errorf("cursor = %q; want one: %v", page.Cursor, tt.wantCursor)
			}
			if len(e.mc.ranges) != 1 {
				t.Fatalf("store reads = %d; want 1", len(e.mc.ranges))
			}
			r := e.mc.ranges[0]
			if r.Limit != tt.wantRange.Limit || r.Before != tt.wantRange.Before || r.MaxSeq != tt.wantRange.MaxSeq || !r.Since.Equal(tt.wantRange.Since) {
				t.Errorf("range = %+v; want %+v", r, tt.wantRange)
			}
		})
	}
}

func TestListMessagesPaging(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	var pages [][]int64
	q := chat.MessageQuery{PageSize: 3}
	for i := 0; ; i++ {
		if i > 5 {
			t.Fatal("paging does not end")
		}
		page, err := e.svc.ListMessages(ctx, chatCaller, th.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, seqs(page.Messages))
		if i == 0 {
			// A message arriving while the client pages shifts nothing.
			if _, err := e.svc.SendMessage(ctx, as(alice, "chat"), th.ID, chat.SendMessageInput{Content: "late"}); err != nil {
				t.Fatal(err)
			}
		}
		if page.Cursor == "" {
			break
		}
		q.Cursor = page.Cursor
	}
	if got := fmt.Sprint(pages); got != "[[7 6 5] [4 3 2] [1]]" {
		t.Errorf("pages = %s; want [[7 6 5] [4 3 2] [1]]", got)
	}
	fresh, err := e.svc.ListMessages(ctx, chatCaller, th.ID, chat.MessageQuery{PageSize: 3})
	if err != nil || !slices.Equal(seqs(fresh.Messages), []int64{8, 7, 6}) {
		t.Errorf("a fresh listing = %v, %v; want [8 7 6]", seqs(fresh.Messages), err)
	}
}

func TestListMessagesStoreError(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	boom := errors.New("boom")
	e.mc.messagesErr = boom
	if _, err := e.svc.ListMessages(ctx, chatCaller, th.ID, chat.MessageQuery{}); !errors.Is(err, boom) {
		t.Fatalf("err = %v; want %v", err, boom)
	}
}

func TestGetMessage(t *testing.T) {
	type msgCase struct {
		name     string
		setup    func(e *msgEnv, th chat.Thread) string // returns the thread id, "" for th
		c        chat.Caller
		id       func(th chat.Thread) string
		want     want
		wantSeq  int64
		wantBody string
		noRead   bool
	}
	id := func(seq int64) func(chat.Thread) string {
		return func(th chat.Thread) string { return chat.MessageID(th.ID, seq) }
	}
	tests := []msgCase{
		{"own message", nil, chatCaller, id(3), noErr, 3, "m3", false},
		{"someone else's message", nil, chatCaller, id(4), noErr, 4, "m4", false},
		{"system message", nil, chatCaller, id(1), noErr, 1, "", false},
		{"chat.join.limited", nil, caller("chat.join.limited"), id(7), noErr, 7, "m7", false},
		{"unknown sequence id", nil, chatCaller, id(99), errMessageNotFound, 0, "", false},
		{"not a number", nil, chatCaller, func(chat.Thread) string { return "abc" }, errMessageNotFound, 0, "", true},
		{"the thread's base id (sequence 0)", nil, chatCaller, id(0), errMessageNotFound, 0, "", true},
		{"before the caller's share-history time", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, sharesFrom(minute(3)))
			return ""
		}, chatCaller, id(4), errMessageNotFound, 0, "", false},
		{"exactly at the caller's share-history time", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, sharesFrom(minute(3)))
			return ""
		}, chatCaller, id(5), noErr, 5, "m5", false},
		{"removed caller, its own removal's range", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(5, minute(3)))
			return ""
		}, chatCaller, id(5), noErr, 5, "m5", false},
		{"removed caller, newer than its removal", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(5, minute(3)))
			return ""
		}, chatCaller, id(6), errMessageNotFound, 0, "", false},
		{"not a participant", func(e *msgEnv, _ chat.Thread) string {
			other := chatFixture(e, alice, bob)
			return other.ID
		}, chatCaller, nil, errNotParticipant, 0, "", false},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(10)); return "" }, chatCaller, id(3), errThreadDeleted, 0, "", false},
		{"unknown thread", func(*msgEnv, chat.Thread) string { return chat.NewThreadID(base) }, chatCaller, nil, errThreadNotFound, 0, "", false},
		{"malformed thread id", func(*msgEnv, chat.Thread) string { return "19:x@thread.v2" }, chatCaller, func(chat.Thread) string { return "12345" }, errThreadNotFound, 0, "", true},
		{"voip only", nil, caller("voip"), id(3), errScope, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			threadID := th.ID
			if tt.setup != nil {
				if id := tt.setup(e, th); id != "" {
					threadID = id
				}
			}
			msgID := chat.MessageID(threadID, 3)
			if tt.id != nil {
				msgID = tt.id(chat.Thread{ID: threadID})
			}
			m, err := e.svc.GetMessage(ctx, tt.c, threadID, msgID)
			if tt.want.check(t, err) {
				if m.Seq != tt.wantSeq || m.Body != tt.wantBody {
					t.Errorf("message = %d %q; want %d %q", m.Seq, m.Body, tt.wantSeq, tt.wantBody)
				}
				return
			}
			if tt.noRead && e.mc.msgViews != 0 {
				t.Errorf("the store was read for a request refused up front")
			}
			if m.Seq != 0 || m.Body != "" {
				t.Errorf("a refused get returned %+v", m)
			}
		})
	}
}

func TestGetMessageStoreError(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	boom := errors.New("boom")
	e.mc.msgViewErr = boom
	if _, err := e.svc.GetMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 3)); !errors.Is(err, boom) {
		t.Fatalf("err = %v; want %v", err, boom)
	}
}

func TestUpdateMessage(t *testing.T) {
	orig := minute(1).UnixMilli() // message 3's version
	tests := []struct {
		name      string
		setup     func(e *msgEnv, th chat.Thread)
		c         chat.Caller
		seq       int64
		patch     chat.MessagePatch
		want      want
		wantWrite bool
		wantBody  string
		wantMeta  map[string]string
		wantVer   int64
	}{
		{"content", nil, chatCaller, 3, chat.MessagePatch{Content: ptr("edited")}, noErr, true, "edited", map[string]string{"a": "1", "b": "2"}, t0.UnixMilli()},
		{"content with chat.join.limited", nil, caller("chat.join.limited"), 3, chat.MessagePatch{Content: ptr("edited")}, noErr, true, "edited", map[string]string{"a": "1", "b": "2"}, t0.UnixMilli()},
		{"metadata merge", nil, chatCaller, 3, chat.MessagePatch{Metadata: map[string]*string{"a": nil, "c": ptr("3")}}, noErr, true, "m3", map[string]string{"b": "2", "c": "3"}, t0.UnixMilli()},
		{"metadata cleared", nil, chatCaller, 3, chat.MessagePatch{ClearMetadata: true}, noErr, true, "m3", nil, t0.UnixMilli()},
		{"metadata cleared and set", nil, chatCaller, 3, chat.MessagePatch{ClearMetadata: true, Metadata: map[string]*string{"x": ptr("y")}}, noErr, true, "m3", map[string]string{"x": "y"}, t0.UnixMilli()},
		{"version in the future is still raised", func(e *msgEnv, th chat.Thread) {
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.Version = t0.UnixMilli() + 5000 })
		}, chatCaller, 3, chat.MessagePatch{Content: ptr("edited")}, noErr, true, "edited", map[string]string{"a": "1", "b": "2"}, t0.UnixMilli() + 5001},
		{"html edit is sanitized", func(e *msgEnv, th chat.Thread) {
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.Type = chat.TypeHTML })
		}, chatCaller, 3, chat.MessagePatch{Content: ptr("<i>x</i><script>y()</script>")}, noErr, true, "<i>x</i>", map[string]string{"a": "1", "b": "2"}, t0.UnixMilli()},
		{"text edit is not sanitized", nil, chatCaller, 3, chat.MessagePatch{Content: ptr("<script>y()</script>")}, noErr, true, "<script>y()</script>", map[string]string{"a": "1", "b": "2"}, t0.UnixMilli()},
		{"same content: no write", nil, chatCaller, 3, chat.MessagePatch{Content: ptr("m3")}, noErr, false, "m3", map[string]string{"a": "1", "b": "2"}, orig},
		{"empty patch: no write", nil, chatCaller, 3, chat.MessagePatch{}, noErr, false, "m3", map[string]string{"a": "1", "b": "2"}, orig},
		{"same metadata: no write", nil, chatCaller, 3, chat.MessagePatch{Metadata: map[string]*string{"a": ptr("1"), "zz": nil}}, noErr, false, "m3", map[string]string{"a": "1", "b": "2"}, orig},
		{"empty content", nil, chatCaller, 3, chat.MessagePatch{Content: ptr("")}, want{fault.BadRequest, "InvalidContent", "content"}, false, "", nil, 0},
		{"content over 28 KB", nil, chatCaller, 3, chat.MessagePatch{Content: ptr(strings.Repeat("a", chat.MaxMessageBytes+1))}, want{fault.TooLarge, "MessageTooLarge", "content"}, false, "", nil, 0},
		{"invalid UTF-8", nil, chatCaller, 3, chat.MessagePatch{Content: ptr("\xff")}, want{fault.BadRequest, "InvalidContent", "content"}, false, "", nil, 0},
		{"merged metadata too large", nil, chatCaller, 3, chat.MessagePatch{Metadata: map[string]*string{"big": ptr(strings.Repeat("x", chat.MaxMetadataBytes-20))}}, want{fault.BadRequest, "MetadataTooLarge", "metadata"}, false, "", nil, 0},
		{"metadata with an empty key", nil, chatCaller, 3, chat.MessagePatch{Metadata: map[string]*string{"": ptr("v")}}, want{fault.BadRequest, "InvalidMetadata", "metadata"}, false, "", nil, 0},
		{"someone else's message", nil, chatCaller, 4, chat.MessagePatch{Content: ptr("mine now")}, errNotSender, false, "", nil, 0},
		{"system message", nil, chatCaller, 2, chat.MessagePatch{Content: ptr("x")}, errNotSender, false, "", nil, 0},
		{"deleted message", func(e *msgEnv, th chat.Thread) {
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.DeletedOn, m.Body, m.Metadata = minute(7), "", nil })
		}, chatCaller, 3, chat.MessagePatch{Content: ptr("back")}, want{fault.NotFound, "MessageDeleted", "chatMessageId"}, false, "", nil, 0},
		{"removed caller", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
		}, chatCaller, 3, chat.MessagePatch{Content: ptr("x")}, errRemoved, false, "", nil, 0},
		{"before the caller's share-history time", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(2)))
		}, chatCaller, 3, chat.MessagePatch{Content: ptr("x")}, errMessageNotFound, false, "", nil, 0},
		{"unknown message", nil, chatCaller, 42, chat.MessagePatch{Content: ptr("x")}, errMessageNotFound, false, "", nil, 0},
		{"deleted thread", func(e *msgEnv, th chat.Thread) { markDeleted(e, th.ID, minute(9)) }, chatCaller, 3, chat.MessagePatch{Content: ptr("x")}, errThreadDeleted, false, "", nil, 0},
		{"voip only", nil, caller("voip"), 3, chat.MessagePatch{Content: ptr("x")}, errScope, false, "", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.Metadata = map[string]string{"a": "1", "b": "2"} })
			if tt.setup != nil {
				tt.setup(e, th)
			}
			before, _ := e.mc.message(th.ID, tt.seq)
			err := e.svc.UpdateMessage(ctx, tt.c, th.ID, chat.MessageID(th.ID, tt.seq), tt.patch)
			after, _ := e.mc.message(th.ID, tt.seq)
			if !tt.want.check(t, err) {
				if len(e.mc.replaces) != 0 {
					t.Errorf("a refused update wrote %d times", len(e.mc.replaces))
				}
				if after.Body != before.Body || after.Version != before.Version {
					t.Errorf("a refused update changed the message: %+v", after)
				}
				return
			}
			if got := len(e.mc.replaces); got != map[bool]int{true: 1, false: 0}[tt.wantWrite] {
				t.Fatalf("ReplaceMessage calls = %d; want write %v", got, tt.wantWrite)
			}
			if after.Body != tt.wantBody || !maps.Equal(after.Metadata, tt.wantMeta) || after.Version != tt.wantVer {
				t.Errorf("message = %q %v v%d; want %q %v v%d", after.Body, after.Metadata, after.Version, tt.wantBody, tt.wantMeta, tt.wantVer)
			}
			if tt.wantWrite {
				if !after.EditedOn.Equal(t0) {
					t.Errorf("editedOn = %v; want %v", after.EditedOn, t0)
				}
				if e.mc.replaces[0].expect != before.Version {
					t.Errorf("expected version = %d; want the read one %d", e.mc.replaces[0].expect, before.Version)
				}
				if after.Seq != before.Seq || after.Type != before.Type || after.SenderID != me || !after.CreatedOn.Equal(before.CreatedOn) || !after.DeletedOn.IsZero() {
					t.Errorf("an edit changed other fields: %+v (was %+v)", after, before)
				}
			} else if !after.EditedOn.IsZero() {
				t.Errorf("editedOn = %v on a no-op", after.EditedOn)
			}
		})
	}
}

func setMessage(e *msgEnv, threadID string, seq int64, f func(m *chat.Message)) {
	e.mc.mu.Lock()
	defer e.mc.mu.Unlock()
	i := slices.IndexFunc(e.mc.msgs[threadID], func(m chat.Message) bool { return m.Seq == seq })
	if i < 0 {
		panic(fmt.Sprintf("no message %d", seq))
	}
	f(&e.mc.msgs[threadID][i])
}

func TestDeleteMessage(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(e *msgEnv, th chat.Thread)
		c         chat.Caller
		seq       int64
		want      want
		wantWrite bool
	}{
		{"own message", nil, chatCaller, 3, noErr, true},
		{"own message with chat.join.limited", nil, caller("chat.join.limited"), 3, noErr, true},
		{"already deleted: success, no write", func(e *msgEnv, th chat.Thread) {
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.DeletedOn, m.Body = minute(8), "" })
		}, chatCaller, 3, noErr, false},
		{"someone else's message", nil, chatCaller, 4, errNotSender, false},
		{"system message", nil, chatCaller, 1, errNotSender, false},
		{"unknown message", nil, chatCaller, 50, errMessageNotFound, false},
		{"removed caller", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
		}, chatCaller, 3, errRemoved, false},
		{"voip only", nil, caller("voip"), 3, errScope, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			setMessage(e, th.ID, 3, func(m *chat.Message) { m.Metadata = map[string]string{"a": "1"} })
			if tt.setup != nil {
				tt.setup(e, th)
			}
			before, _ := e.mc.message(th.ID, tt.seq)
			err := e.svc.DeleteMessage(ctx, tt.c, th.ID, chat.MessageID(th.ID, tt.seq))
			after, _ := e.mc.message(th.ID, tt.seq)
			tt.want.check(t, err)
			if !tt.wantWrite {
				if len(e.mc.replaces) != 0 || after.Version != before.Version || !after.DeletedOn.Equal(before.DeletedOn) {
					t.Errorf("wrote %d times; message %+v (was %+v)", len(e.mc.replaces), after, before)
				}
				return
			}
			if len(e.mc.replaces) != 1 {
				t.Fatalf("ReplaceMessage calls = %d; want 1", len(e.mc.replaces))
			}
			if !after.DeletedOn.Equal(t0) || after.Body != "" || after.Metadata != nil || after.Version != t0.UnixMilli() || !after.EditedOn.IsZero() {
				t.Errorf("deleted message = %+v; want deletedOn %v, no body or metadata, version %d", after, t0, t0.UnixMilli())
			}
			if after.Seq != before.Seq || after.SenderID != before.SenderID || after.Type != before.Type || !after.CreatedOn.Equal(before.CreatedOn) {
				t.Errorf("a delete changed other fields: %+v (was %+v)", after, before)
			}
			// Deleted messages stay in the history.
			page, err := e.svc.ListMessages(ctx, chatCaller, th.ID, chat.MessageQuery{})
			if err != nil || !slices.Contains(seqs(page.Messages), tt.seq) {
				t.Errorf("the deleted message left the history: %v, %v", seqs(page.Messages), err)
			}
		})
	}
}

// concurrently returns a ReplaceMessage hook under which another writer's
// change f lands on message 3 just before the service's first write, so
// that write loses its version condition.
func concurrently(f func(m *chat.Message)) func(e *msgEnv, th chat.Thread) func(int, chat.Message, int64) error {
	return func(e *msgEnv, th chat.Thread) func(int, chat.Message, int64) error {
		return func(call int, _ chat.Message, _ int64) error {
			if call == 1 { // the hook runs with the store's lock held
				i := slices.IndexFunc(e.mc.msgs[th.ID], func(m chat.Message) bool { return m.Seq == 3 })
				f(&e.mc.msgs[th.ID][i])
				e.mc.msgs[th.ID][i].Version++
			}
			return nil
		}
	}
}

// TestChangeMessageRetries covers changeMessage's optimistic loop.
func TestChangeMessageRetries(t *testing.T) {
	boom := errors.New("boom")
	edit := func(e *msgEnv, th chat.Thread) error {
		return e.svc.UpdateMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 3), chat.MessagePatch{Content: ptr("edited")})
	}
	del := func(e *msgEnv, th chat.Thread) error {
		return e.svc.DeleteMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 3))
	}
	tests := []struct {
		name         string
		op           func(e *msgEnv, th chat.Thread) error
		hook         func(e *msgEnv, th chat.Thread) func(call int, m chat.Message, expect int64) error
		want         want
		wantErr      error
		wantReplaces int
		check        func(t *testing.T, m chat.Message)
	}{
		{"edit after a concurrent metadata change keeps both", edit, concurrently(func(m *chat.Message) { m.Metadata = map[string]string{"other": "x"} }), noErr, nil, 2, func(t *testing.T, m chat.Message) {
			if m.Body != "edited" || m.Metadata["other"] != "x" || m.Version != t0.UnixMilli() {
				t.Errorf("message = %q %v v%d; want the edit on top of the concurrent change", m.Body, m.Metadata, m.Version)
			}
		}},
		{"edit after a concurrent delete is refused", edit, concurrently(func(m *chat.Message) { m.DeletedOn, m.Body = minute(30), "" }), want{fault.NotFound, "MessageDeleted", "chatMessageId"}, nil, 1, func(t *testing.T, m chat.Message) {
			if m.Body != "" || !m.DeletedOn.Equal(minute(30)) {
				t.Errorf("message = %+v; want the concurrent delete", m)
			}
		}},
		{"delete after a concurrent delete succeeds", del, concurrently(func(m *chat.Message) { m.DeletedOn, m.Body = minute(30), "" }), noErr, nil, 1, func(t *testing.T, m chat.Message) {
			if !m.DeletedOn.Equal(minute(30)) {
				t.Errorf("deletedOn = %v; want the first delete's %v", m.DeletedOn, minute(30))
			}
		}},
		{"delete raced once", del, func(e *msgEnv, th chat.Thread) func(int, chat.Message, int64) error {
			return func(call int, _ chat.Message, _ int64) error {
				if call == 1 {
					return chat.ErrRaced
				}
				return nil
			}
		}, noErr, nil, 2, func(t *testing.T, m chat.Message) {
			if !m.DeletedOn.Equal(t0) {
				t.Errorf("deletedOn = %v; want %v", m.DeletedOn, t0)
			}
		}},
		{"always raced: busy after 8 tries", edit, func(*msgEnv, chat.Thread) func(int, chat.Message, int64) error {
			return func(int, chat.Message, int64) error { return chat.ErrRaced }
		}, want{fault.Unavailable, fault.CodeUnavailable, ""}, nil, 8, func(t *testing.T, m chat.Message) {
			if m.Body != "m3" {
				t.Errorf("body = %q; want unchanged", m.Body)
			}
		}},
		{"other store errors are not retried", del, func(*msgEnv, chat.Thread) func(int, chat.Message, int64) error {
			return func(int, chat.Message, int64) error { return boom }
		}, noErr, boom, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			e.mc.replaceHook = tt.hook(e, th)
			err := tt.op(e, th)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v; want %v", err, tt.wantErr)
				}
			} else {
				tt.want.check(t, err)
			}
			if len(e.mc.replaces) != tt.wantReplaces {
				t.Errorf("ReplaceMessage calls = %d; want %d", len(e.mc.replaces), tt.wantReplaces)
			}
			if tt.want.code == fault.CodeUnavailable {
				if fe, _ := fault.As(err); fe.RetryAfter != time.Second {
					t.Errorf("RetryAfter = %v; want 1s", fe.RetryAfter)
				}
			}
			if tt.check != nil {
				m, _ := e.mc.message(th.ID, 3)
				tt.check(t, m)
			}
		})
	}
}

// ------------------------------------------------------------ participants

// rosterFixture seeds a thread whose join order differs from user-id order:
// me (base), bob and carol (minute 1, a tie broken by id), alice (minute
// 2), and dave, removed. The store returns the roster in reverse id order.
func rosterFixture(e *msgEnv) chat.Thread {
	th := chatFixture(e, me, alice, bob, carol, user(5))
	updateParticipant(e, th.ID, alice, func(p *chat.Participant) { p.JoinedOn, p.DisplayName = minute(2), "Alice" })
	updateParticipant(e, th.ID, bob, func(p *chat.Participant) { p.JoinedOn = minute(1) })
	updateParticipant(e, th.ID, carol, func(p *chat.Participant) { p.JoinedOn = minute(1) })
	updateParticipant(e, th.ID, user(5), removedAt(6, minute(4)))
	e.mc.rosterReversed = true
	return th
}

func TestListParticipants(t *testing.T) {
	all := []string{me, bob, carol, alice}
	tests := []struct {
		name     string
		setup    func(e *msgEnv, th chat.Thread) string
		c        chat.Caller
		q        chat.RosterQuery
		want     want
		wantIDs  []string
		wantNext int
		noRead   bool
	}{
		{"default page: current members in join order", nil, chatCaller, chat.RosterQuery{}, noErr, all, -1, false},
		{"chat.join.limited", nil, caller("chat.join.limited"), chat.RosterQuery{}, noErr, all, -1, false},
		{"page of 2", nil, chatCaller, chat.RosterQuery{PageSize: 2}, noErr, all[:2], 2, false},
		{"skip 1, page of 2", nil, chatCaller, chat.RosterQuery{Skip: 1, PageSize: 2}, noErr, all[1:3], 3, false},
		{"skip 2, page of 2 is the last", nil, chatCaller, chat.RosterQuery{Skip: 2, PageSize: 2}, noErr, all[2:], -1, false},
		{"skip 3", nil, chatCaller, chat.RosterQuery{Skip: 3}, noErr, all[3:], -1, false},
		{"skip all", nil, chatCaller, chat.RosterQuery{Skip: 4}, noErr, []string{}, -1, false},
		{"skip past the end", nil, chatCaller, chat.RosterQuery{Skip: 10}, noErr, []string{}, -1, false},
		{"page of 200", nil, chatCaller, chat.RosterQuery{PageSize: 200}, noErr, all, -1, false},
		{"page of 201", nil, chatCaller, chat.RosterQuery{PageSize: 201}, errPageSize, nil, 0, false},
		{"page of -1", nil, chatCaller, chat.RosterQuery{PageSize: -1}, errPageSize, nil, 0, false},
		{"skip -1", nil, chatCaller, chat.RosterQuery{Skip: -1}, errSkip, nil, 0, false},
		{"removed caller", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(7, minute(5)))
			return ""
		}, chatCaller, chat.RosterQuery{}, errRemoved, nil, 0, false},
		{"not a participant", func(e *msgEnv, _ chat.Thread) string { return chatFixture(e, alice).ID }, chatCaller, chat.RosterQuery{}, errNotParticipant, nil, 0, false},
		{"unknown thread", func(*msgEnv, chat.Thread) string { return chat.NewThreadID(t0) }, chatCaller, chat.RosterQuery{}, errThreadNotFound, nil, 0, false},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(9)); return "" }, chatCaller, chat.RosterQuery{}, errThreadDeleted, nil, 0, false},
		{"malformed thread id", func(*msgEnv, chat.Thread) string { return "19:bad@thread.v2" }, chatCaller, chat.RosterQuery{}, errThreadNotFound, nil, 0, true},
		{"voip only", nil, caller("voip"), chat.RosterQuery{}, errScope, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := rosterFixture(e)
			id := th.ID
			if tt.setup != nil {
				if s := tt.setup(e, th); s != "" {
					id = s
				}
			}
			page, err := e.svc.ListParticipants(ctx, tt.c, id, tt.q)
			if !tt.want.check(t, err) {
				if tt.noRead && e.mc.rosters != 0 {
					t.Errorf("the store was read for a request refused up front")
				}
				return
			}
			if got := userIDs(page.Participants); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("participants = %v; want %v", got, tt.wantIDs)
			}
			if page.Next != tt.wantNext {
				t.Errorf("next = %d; want %d", page.Next, tt.wantNext)
			}
			for _, p := range page.Participants {
				if p.UserID == alice && (p.DisplayName != "Alice" || !p.JoinedOn.Equal(minute(2))) {
					t.Errorf("alice = %+v", p)
				}
			}
		})
	}
}

func TestListParticipantsDefaultPageSize(t *testing.T) {
	e := newMsgEnv()
	members := []string{me}
	for i := range 149 {
		members = append(members, user(100+i))
	}
	th := seedThread(e.env, "big", base, members...)
	var got []string
	q := chat.RosterQuery{}
	for _, wantLen := range []int{100, 50} {
		page, err := e.svc.ListParticipants(ctx, chatCaller, th.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Participants) != wantLen {
			t.Fatalf("page of %d; want %d", len(page.Participants), wantLen)
		}
		got = append(got, userIDs(page.Participants)...)
		if page.Next == -1 {
			break
		}
		if page.Next != 100 {
			t.Fatalf("next = %d; want 100", page.Next)
		}
		q.Skip = page.Next
	}
	if !slices.Equal(got, members) {
		t.Errorf("paged participants differ from the members (%d vs %d)", len(got), len(members))
	}
}

func TestListParticipantsStoreError(t *testing.T) {
	e := newMsgEnv()
	th := rosterFixture(e)
	boom := errors.New("boom")
	e.mc.rosterErr = boom
	if _, err := e.svc.ListParticipants(ctx, chatCaller, th.ID, chat.RosterQuery{}); !errors.Is(err, boom) {
		t.Fatalf("err = %v; want %v", err, boom)
	}
}

// addFixture: me and alice are members, carol was removed (message 7).
func addFixture(e *msgEnv) chat.Thread {
	th := chatFixture(e, me, alice, carol)
	updateParticipant(e, th.ID, carol, removedAt(7, minute(5)))
	return th
}

func newUsers(e *msgEnv, from, n int) []chat.NewParticipant {
	out := make([]chat.NewParticipant, n)
	for i := range out {
		id := user(from + i)
		e.dir.live[id] = true
		out[i] = chat.NewParticipant{UserID: id, DisplayName: fmt.Sprint("user ", from+i)}
	}
	return out
}

func np(ids ...string) []chat.NewParticipant {
	out := make([]chat.NewParticipant, len(ids))
	for i, id := range ids {
		out[i] = chat.NewParticipant{UserID: id}
	}
	return out
}

func TestAddParticipants(t *testing.T) {
	bigMeta := map[string]string{"k": strings.Repeat("x", chat.MaxMetadataBytes)}
	phone := chat.InvalidParticipant{Target: "4:+14255550123", Code: "403", Message: "phone numbers cannot chat"}
	tests := []struct {
		name        string
		setup       func(e *msgEnv, th chat.Thread) string
		c           chat.Caller
		req         func(e *msgEnv) []chat.NewParticipant
		invalid     []chat.InvalidParticipant
		want        want
		wantCommits [][]string // the users of each AddParticipants call
		wantInvalid []string   // target:code
	}{
		{"a new user", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, noErr, [][]string{{bob}}, nil},
		{"with chat.join", nil, caller("chat.join"), func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, noErr, [][]string{{bob}}, nil},
		{"with chat.join.limited", nil, caller("chat.join.limited"), func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errScope, nil, nil},
		{"voip only", nil, caller("voip"), func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errScope, nil, nil},
		{"current members: no write", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(alice, me) }, nil, noErr, nil, nil},
		{"current members are skipped", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(alice, bob, me) }, nil, noErr, [][]string{{bob}}, nil},
		{"duplicates are merged", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob, bob) }, nil, noErr, [][]string{{bob}}, nil},
		{"removed member comes back", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(carol) }, nil, noErr, [][]string{{carol}}, nil},
		{"unknown ids are 404s", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(ghost, bob, user(98), ghost) }, nil, noErr, [][]string{{bob}}, []string{ghost + ":404", user(98) + ":404"}},
		{"only unknown ids: no write", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(ghost) }, nil, noErr, nil, []string{ghost + ":404"}},
		{"the API layer's refusals come first", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(ghost, bob) }, []chat.InvalidParticipant{phone}, noErr, [][]string{{bob}}, []string{phone.Target + ":403", ghost + ":404"}},
		{"only the API layer's refusals", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return nil }, []chat.InvalidParticipant{phone}, noErr, nil, []string{phone.Target + ":403"}},
		{"nobody", nil, chatCaller, func(*msgEnv) []chat.NewParticipant { return nil }, nil, want{fault.BadRequest, "MissingParticipants", "participants"}, nil, nil},
		{"200 per call", nil, chatCaller, func(e *msgEnv) []chat.NewParticipant { return newUsers(e, 1000, 200) }, nil, noErr, nil, nil},
		{"201 per call", nil, chatCaller, func(e *msgEnv) []chat.NewParticipant { return newUsers(e, 1000, 201) }, nil, errTooMany, nil, nil},
		{"200 plus an API-layer refusal", nil, chatCaller, func(e *msgEnv) []chat.NewParticipant { return newUsers(e, 1000, 200) }, []chat.InvalidParticipant{phone}, errTooMany, nil, nil},
		{"participant metadata too large", nil, chatCaller, func(*msgEnv) []chat.NewParticipant {
			return []chat.NewParticipant{{UserID: bob, Metadata: bigMeta}}
		}, nil, want{fault.BadRequest, "MetadataTooLarge", "participants.metadata"}, nil, nil},
		{"display name of 257 runes", nil, chatCaller, func(*msgEnv) []chat.NewParticipant {
			return []chat.NewParticipant{{UserID: bob, DisplayName: strings.Repeat("d", 257)}}
		}, nil, want{fault.BadRequest, "InvalidDisplayName", "participants.displayName"}, nil, nil},
		{"caller not a participant", func(e *msgEnv, _ chat.Thread) string { return chatFixture(e, alice).ID }, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errNotParticipant, nil, nil},
		{"removed caller", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(7, minute(5)))
			return ""
		}, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errRemoved, nil, nil},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(9)); return "" }, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errThreadDeleted, nil, nil},
		{"unknown thread", func(*msgEnv, chat.Thread) string { return chat.NewThreadID(t0) }, chatCaller, func(*msgEnv) []chat.NewParticipant { return np(bob) }, nil, errThreadNotFound, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := addFixture(e)
			id := th.ID
			if tt.setup != nil {
				if s := tt.setup(e, th); s != "" {
					id = s
				}
			}
			req := tt.req(e)
			invalid, err := e.svc.AddParticipants(ctx, tt.c, id, req, slices.Clone(tt.invalid))
			if !tt.want.check(t, err) {
				if n := e.mc.writes() + len(e.mc.nextSeqs); n != 0 {
					t.Errorf("a refused add wrote %d times", n)
				}
				return
			}
			var gotInvalid []string
			for _, p := range invalid {
				gotInvalid = append(gotInvalid, p.Target+":"+p.Code)
				if p.Message == "" {
					t.Errorf("invalid %s has no message", p.Target)
				}
			}
			if !slices.Equal(gotInvalid, tt.wantInvalid) {
				t.Errorf("invalid = %v; want %v", gotInvalid, tt.wantInvalid)
			}
			if tt.wantCommits == nil && len(req) == 200 {
				return // checked by TestAddParticipantsChunks
			}
			var commits [][]string
			for _, c := range e.mc.adds {
				commits = append(commits, userIDs(c.Add))
			}
			if fmt.Sprint(commits) != fmt.Sprint(tt.wantCommits) {
				t.Errorf("commits = %v; want %v", commits, tt.wantCommits)
			}
			if len(e.mc.nextSeqs) != len(tt.wantCommits) {
				t.Errorf("sequence ids taken = %d; want one per commit (%d)", len(e.mc.nextSeqs), len(tt.wantCommits))
			}
			for _, c := range tt.wantCommits {
				for _, u := range c {
					if p, ok := e.mc.participant(th.ID, u); !ok || !p.Current() || !p.JoinedOn.Equal(t0) {
						t.Errorf("%s = %+v, %v; want a current member since %v", u, p, ok, t0)
					}
				}
			}
		})
	}
}

func TestAddParticipantsCommit(t *testing.T) {
	e := newMsgEnv()
	th := addFixture(e)
	sht := minute(3)
	req := []chat.NewParticipant{
		{UserID: bob, DisplayName: "Bob (old)"},
		{UserID: carol, DisplayName: "Carol", ShareHistoryTime: sht, Metadata: map[string]string{"role": "x"}},
		{UserID: bob, DisplayName: "Bob"}, // a later entry wins
	}
	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, req, nil); err != nil {
		t.Fatal(err)
	}
	if len(e.dir.calls) != 1 || !slices.Equal(e.dir.calls[0], []string{bob, carol}) {
		t.Errorf("directory calls = %v; want one for [bob carol]", e.dir.calls)
	}
	if len(e.mc.adds) != 1 {
		t.Fatalf("commits = %d; want 1", len(e.mc.adds))
	}
	c := e.mc.adds[0]
	if c.ThreadID != th.ID || !c.At.Equal(t0) || c.MaxMembers != chat.MaxParticipantsPerThread || c.Remove != "" {
		t.Errorf("change = thread %s at %v max %d remove %q", c.ThreadID, c.At, c.MaxMembers, c.Remove)
	}
	wantAdd := []chat.Participant{
		{UserID: bob, DisplayName: "Bob", JoinedOn: t0},
		{UserID: carol, DisplayName: "Carol", ShareHistoryTime: sht, Metadata: map[string]string{"role": "x"}, JoinedOn: t0},
	}
	samePeople := func(a, b []chat.Participant) bool {
		return slices.EqualFunc(a, b, func(x, y chat.Participant) bool {
			return x.UserID == y.UserID && x.DisplayName == y.DisplayName && x.ShareHistoryTime.Equal(y.ShareHistoryTime) &&
				maps.Equal(x.Metadata, y.Metadata) && x.JoinedOn.Equal(y.JoinedOn) && x.RemovedOn.IsZero() && x.RemovedSeq == 0
		})
	}
	if !samePeople(c.Add, wantAdd) {
		t.Errorf("added = %+v; want %+v", c.Add, wantAdd)
	}
	m := c.Message
	if m.Seq != 8 || m.Type != chat.TypeParticipantAdded || m.InitiatorID != me || m.SenderID != "" || !m.CreatedOn.Equal(t0) || m.Version != t0.UnixMilli() || !samePeople(m.Participants, wantAdd) {
		t.Errorf("message = %+v; want participantAdded 8 by me listing %v", m, userIDs(wantAdd))
	}
	if p, _ := e.mc.participant(th.ID, carol); !p.Current() || p.RemovedSeq != 0 || !p.ShareHistoryTime.Equal(sht) {
		t.Errorf("carol = %+v; want a current member again with her new share-history time", p)
	}
	if got := e.st.thread(th.ID); got.Seq != 8 || !got.LastMessageAt.Equal(t0) {
		t.Errorf("thread seq/activity = %d/%v; want 8/%v", got.Seq, got.LastMessageAt, t0)
	}
	// Adding them again changes nothing.
	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, req, nil); err != nil || len(e.mc.adds) != 1 || len(e.mc.nextSeqs) != 1 {
		t.Errorf("a repeated add = %v with %d commits, %d seqs; want no write", err, len(e.mc.adds), len(e.mc.nextSeqs))
	}
}

func TestAddParticipantsChunks(t *testing.T) {
	e := newMsgEnv()
	th := addFixture(e)
	req := newUsers(e, 1000, 200)
	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, req, nil); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var seqIDs []int64
	var all []string
	for _, c := range e.mc.adds {
		sizes = append(sizes, len(c.Add))
		seqIDs = append(seqIDs, c.Message.Seq)
		all = append(all, userIDs(c.Add)...)
		if !slices.Equal(userIDs(c.Message.Participants), userIDs(c.Add)) {
			t.Errorf("message %d lists %d users; its commit adds %d", c.Message.Seq, len(c.Message.Participants), len(c.Add))
		}
		if c.Message.Type != chat.TypeParticipantAdded {
			t.Errorf("message %d is %s", c.Message.Seq, c.Message.Type)
		}
	}
	if !slices.Equal(sizes, []int{98, 98, 4}) || !slices.Equal(seqIDs, []int64{8, 9, 10}) {
		t.Errorf("commits of %v with messages %v; want [98 98 4] with [8 9 10]", sizes, seqIDs)
	}
	wantAll := make([]string, len(req))
	for i, p := range req {
		wantAll[i] = p.UserID
	}
	if !slices.Equal(all, wantAll) {
		t.Errorf("users added out of request order or not exactly once")
	}
	if got := e.st.thread(th.ID).Members; got != 202 {
		t.Errorf("members = %d; want 202", got)
	}
}

func TestAddParticipantsResumesAfterAPartialFailure(t *testing.T) {
	e := newMsgEnv()
	th := addFixture(e)
	req := newUsers(e, 1000, 150)
	boom := errors.New("boom")
	e.mc.addHook = func(call int, _ chat.RosterChange) error {
		if call == 2 {
			return boom
		}
		return nil
	}
	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, req, nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v; want %v", err, boom)
	}
	e.mc.addHook = nil
	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, req, nil); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range e.mc.adds {
		sizes = append(sizes, len(c.Add))
	}
	// 98 committed, 52 failed; the retry adds exactly those 52.
	if !slices.Equal(sizes, []int{98, 52, 52}) {
		t.Errorf("commit sizes = %v; want [98 52 52]", sizes)
	}
	if first, last := userIDs(e.mc.adds[0].Add), userIDs(e.mc.adds[2].Add); slices.Contains(last, first[0]) || last[0] != req[98].UserID {
		t.Errorf("the retry re-added committed users or skipped some")
	}
}

func TestAddParticipantsThreadLimit(t *testing.T) {
	tests := []struct {
		name  string
		n     int // new users beside me and alice
		want  want
		sizes []int
	}{
		{"up to 250", 248, noErr, []int{98, 98, 52}},
		{"251", 249, errTooMany, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := addFixture(e)
			// Two calls: a call holds at most 200.
			first := newUsers(e, 1000, 100)
			if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, first, nil); err != nil {
				t.Fatal(err)
			}
			adds := len(e.mc.adds)
			_, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, newUsers(e, 2000, tt.n-100), nil)
			if !tt.want.check(t, err) {
				if len(e.mc.adds) != adds {
					t.Errorf("a refused add committed")
				}
				return
			}
			if got := e.st.thread(th.ID).Members; got != 250 {
				t.Errorf("members = %d; want 250", got)
			}
		})
	}
}

func TestAddParticipantsStoreOutcomes(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		setup    func(e *msgEnv, th chat.Thread)
		want     want
		wantErr  error
		wantAdds int
		wantLast []string // the users of the last commit
	}{
		{"a user joined meanwhile: read again, add the rest", func(e *msgEnv, th chat.Thread) {
			e.mc.addHook = func(call int, _ chat.RosterChange) error {
				if call == 1 { // bob was added by someone else first
					e.mc.parts[th.ID][bob] = chat.Participant{UserID: bob, DisplayName: "theirs", JoinedOn: minute(50)}
					return chat.ErrRaced
				}
				return nil
			}
		}, noErr, nil, 2, []string{user(10)}},
		{"raced 16 times: busy", func(e *msgEnv, _ chat.Thread) {
			e.mc.addHook = func(int, chat.RosterChange) error { return chat.ErrRaced }
		}, want{fault.Unavailable, fault.CodeUnavailable, ""}, nil, 16, nil},
		{"thread full", func(e *msgEnv, _ chat.Thread) {
			e.mc.addHook = func(int, chat.RosterChange) error { return chat.ErrThreadFull }
		}, errTooMany, nil, 1, nil},
		{"thread deleted meanwhile", func(e *msgEnv, _ chat.Thread) {
			e.mc.addHook = func(int, chat.RosterChange) error { return chat.ErrThreadGone }
		}, errThreadDeleted, nil, 1, nil},
		{"thread deleted before the sequence id", func(e *msgEnv, _ chat.Thread) { e.mc.nextSeqErr = chat.ErrThreadGone }, errThreadDeleted, nil, 0, nil},
		{"sequence id store error", func(e *msgEnv, _ chat.Thread) { e.mc.nextSeqErr = boom }, noErr, boom, 0, nil},
		{"commit store error", func(e *msgEnv, _ chat.Thread) {
			e.mc.addHook = func(int, chat.RosterChange) error { return boom }
		}, noErr, boom, 1, nil},
		{"directory error", func(e *msgEnv, _ chat.Thread) { e.dir.err = boom }, noErr, boom, 0, nil},
		{"roster error", func(e *msgEnv, _ chat.Thread) { e.mc.rosterErr = boom }, noErr, boom, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := addFixture(e)
			e.dir.live[user(10)] = true
			tt.setup(e, th)
			_, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, np(bob, user(10)), nil)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v; want %v", err, tt.wantErr)
				}
			default:
				tt.want.check(t, err)
			}
			if len(e.mc.adds) != tt.wantAdds {
				t.Fatalf("commits = %d; want %d", len(e.mc.adds), tt.wantAdds)
			}
			if tt.wantLast != nil {
				if got := userIDs(e.mc.adds[len(e.mc.adds)-1].Add); !slices.Equal(got, tt.wantLast) {
					t.Errorf("last commit adds %v; want %v", got, tt.wantLast)
				}
				if p, _ := e.mc.participant(th.ID, bob); p.DisplayName != "theirs" {
					t.Errorf("bob = %+v; the concurrent add must stand", p)
				}
			}
		})
	}
}

func TestRemoveParticipant(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name        string
		setup       func(e *msgEnv, th chat.Thread) string
		c           chat.Caller
		user        string
		want        want
		wantErr     error
		wantRemoves int // RemoveParticipant calls
		wantGone    bool
	}{
		{"another member", nil, chatCaller, alice, noErr, nil, 1, true},
		{"with chat.join", nil, caller("chat.join"), alice, noErr, nil, 1, true},
		{"with chat.join.limited", nil, caller("chat.join.limited"), alice, errScope, nil, 0, false},
		{"itself with chat.join.limited", nil, caller("chat.join.limited"), me, errScope, nil, 0, false},
		{"voip only", nil, caller("voip"), alice, errScope, nil, 0, false},
		{"itself", nil, chatCaller, me, noErr, nil, 1, true},
		{"already removed: no-op", nil, chatCaller, carol, noErr, nil, 0, false},
		{"never a member", nil, chatCaller, bob, want{fault.NotFound, "ParticipantNotFound", "rawId"}, nil, 0, false},
		{"no such identity", nil, chatCaller, ghost, want{fault.NotFound, "ParticipantNotFound", "rawId"}, nil, 0, false},
		{"removed caller", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(7, minute(5)))
			return ""
		}, chatCaller, alice, errRemoved, nil, 0, false},
		{"caller not a participant", func(e *msgEnv, _ chat.Thread) string { return chatFixture(e, alice, bob).ID }, chatCaller, alice, errNotParticipant, nil, 0, false},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(9)); return "" }, chatCaller, alice, errThreadDeleted, nil, 0, false},
		{"removed meanwhile: done", func(e *msgEnv, th chat.Thread) string {
			e.mc.removeHook = func(call int, _ chat.RosterChange) error {
				if call == 1 {
					p := e.mc.parts[th.ID][alice]
					p.RemovedOn, p.RemovedSeq = minute(50), 8
					e.mc.parts[th.ID][alice] = p
				}
				return nil // the fake then answers ErrRaced
			}
			return ""
		}, chatCaller, alice, noErr, nil, 1, true},
		{"raced 8 times: busy", func(e *msgEnv, _ chat.Thread) string {
			e.mc.removeHook = func(int, chat.RosterChange) error { return chat.ErrRaced }
			return ""
		}, chatCaller, alice, want{fault.Unavailable, fault.CodeUnavailable, ""}, nil, 8, false},
		{"thread deleted before the sequence id", func(e *msgEnv, _ chat.Thread) string {
			e.mc.nextSeqErr = chat.ErrThreadGone
			return ""
		}, chatCaller, alice, errThreadDeleted, nil, 0, false},
		// The real store's RemoveParticipant answers ErrThreadGone when the
		// thread was deleted between NextSeq and the commit (rosterError).
		{"thread deleted meanwhile", func(e *msgEnv, th chat.Thread) string {
			e.mc.removeHook = func(int, chat.RosterChange) error {
				t := e.mc.threads[th.ID]
				t.DeletedOn = t0
				e.mc.threads[th.ID] = t
				return nil // the fake then answers ErrThreadGone
			}
			return ""
		}, chatCaller, alice, errThreadDeleted, nil, 1, false},
		{"store error", func(e *msgEnv, _ chat.Thread) string {
			e.mc.removeHook = func(int, chat.RosterChange) error { return boom }
			return ""
		}, chatCaller, alice, noErr, boom, 1, false},
		{"roster error", func(e *msgEnv, _ chat.Thread) string { e.mc.rosterErr = boom; return "" }, chatCaller, alice, noErr, boom, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := addFixture(e)
			id := th.ID
			if tt.setup != nil {
				if s := tt.setup(e, th); s != "" {
					id = s
				}
			}
			before, _ := e.mc.participant(id, tt.user)
			err := e.svc.RemoveParticipant(ctx, tt.c, id, tt.user)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v; want %v", err, tt.wantErr)
				}
			} else {
				tt.want.check(t, err)
			}
			if len(e.mc.removes) != tt.wantRemoves {
				t.Errorf("RemoveParticipant calls = %d; want %d", len(e.mc.removes), tt.wantRemoves)
			}
			after, _ := e.mc.participant(id, tt.user)
			if !tt.wantGone {
				if !after.RemovedOn.Equal(before.RemovedOn) || after.RemovedSeq != before.RemovedSeq {
					t.Errorf("participant changed: %+v (was %+v)", after, before)
				}
				return
			}
			if after.Current() {
				t.Fatalf("%s is still a member", tt.user)
			}
			if tt.setup != nil {
				return // removed by the concurrent request; checked above
			}
			c := e.mc.removes[0]
			if c.ThreadID != th.ID || c.Remove != tt.user || !c.At.Equal(t0) || len(c.Add) != 0 {
				t.Errorf("change = %+v", c)
			}
			m := c.Message
			if m.Seq != 8 || m.Type != chat.TypeParticipantRemoved || m.InitiatorID != me || !m.CreatedOn.Equal(t0) || m.Version != t0.UnixMilli() ||
				len(m.Participants) != 1 || m.Participants[0].UserID != tt.user || !m.Participants[0].JoinedOn.Equal(before.JoinedOn) {
				t.Errorf("message = %+v; want participantRemoved 8 by me listing %s", m, tt.user)
			}
			if !after.RemovedOn.Equal(t0) || after.RemovedSeq != 8 {
				t.Errorf("removed %v at seq %d; want %v at 8", after.RemovedOn, after.RemovedSeq, t0)
			}
		})
	}
}

// TestRemovedParticipantKeepsHistory follows a self-removal through the
// other operations.
func TestRemovedParticipantKeepsHistory(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	e.clock.Advance(time.Minute)
	if err := e.svc.RemoveParticipant(ctx, chatCaller, th.ID, me); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if _, err := e.svc.SendMessage(ctx, as(alice, "chat"), th.ID, chat.SendMessageInput{Content: "after"}); err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.ListMessages(ctx, chatCaller, th.ID, chat.MessageQuery{})
	if err != nil || !slices.Equal(seqs(page.Messages), []int64{8, 7, 6, 5, 4, 3, 2, 1}) {
		t.Errorf("history = %v, %v; want up to the removal (8)", seqs(page.Messages), err)
	}
	if m, err := e.svc.GetMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 8)); err != nil || m.Type != chat.TypeParticipantRemoved {
		t.Errorf("own removal = %+v, %v", m, err)
	}
	_, err = e.svc.GetMessage(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 9))
	errMessageNotFound.check(t, err)
	_, err = e.svc.SendMessage(ctx, chatCaller, th.ID, chat.SendMessageInput{Content: "x"})
	errRemoved.check(t, err)
	_, err = e.svc.ListParticipants(ctx, chatCaller, th.ID, chat.RosterQuery{})
	errRemoved.check(t, err)
	// Alice no longer lists me.
	pp, err := e.svc.ListParticipants(ctx, as(alice, "chat"), th.ID, chat.RosterQuery{})
	if err != nil || !slices.Equal(userIDs(pp.Participants), []string{alice}) {
		t.Errorf("alice lists %v, %v; want only herself", userIDs(pp.Participants), err)
	}
}

// ------------------------------------------------------ receipts and typing

func TestSendReadReceipt(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name    string
		setup   func(e *msgEnv, th chat.Thread)
		c       chat.Caller
		seq     int64
		want    want
		wantErr error
	}{
		{"a visible message", nil, chatCaller, 4, noErr, nil},
		{"a system message", nil, chatCaller, 1, noErr, nil},
		{"with chat.join.limited", nil, caller("chat.join.limited"), 4, noErr, nil},
		{"exactly at the share-history time", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(2)))
		}, chatCaller, 4, noErr, nil},
		{"before the share-history time", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(2)))
		}, chatCaller, 3, errMessageNotFound, nil},
		{"unknown message", nil, chatCaller, 77, errMessageNotFound, nil},
		{"removed caller, even for an old message", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
		}, chatCaller, 4, errRemoved, nil},
		{"deleted thread", func(e *msgEnv, th chat.Thread) { markDeleted(e, th.ID, minute(9)) }, chatCaller, 4, errThreadDeleted, nil},
		{"voip only", nil, caller("voip"), 4, errScope, nil},
		{"store error", func(e *msgEnv, _ chat.Thread) { e.mc.putReceiptErr = boom }, chatCaller, 4, noErr, boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			if tt.setup != nil {
				tt.setup(e, th)
			}
			err := e.svc.SendReadReceipt(ctx, tt.c, th.ID, chat.MessageID(th.ID, tt.seq))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if !tt.want.check(t, err) {
				if len(e.mc.receiptPuts) != 0 {
					t.Errorf("a refused receipt was stored: %+v", e.mc.receiptPuts)
				}
				return
			}
			m, _ := e.mc.message(th.ID, tt.seq)
			want := chat.Receipt{UserID: me, Seq: tt.seq, ReadOn: t0, MessageCreatedOn: m.CreatedOn}
			if len(e.mc.receiptPuts) != 1 || e.mc.receiptPuts[0] != want {
				t.Errorf("receipts stored = %+v; want [%+v]", e.mc.receiptPuts, want)
			}
		})
	}
}

func TestSendReadReceiptNotAParticipant(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, alice, bob)
	err := e.svc.SendReadReceipt(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 3))
	errNotParticipant.check(t, err)
	if len(e.mc.receiptPuts) != 0 {
		t.Errorf("stored %+v", e.mc.receiptPuts)
	}
}

// receiptFixture: pointers of me (7), alice (3), bob (2) and carol (5).
func receiptFixture(e *msgEnv) chat.Thread {
	th := chatFixture(e, me, alice, bob, carol)
	for _, r := range []struct {
		u   string
		seq int64
	}{{me, 7}, {alice, 3}, {bob, 2}, {carol, 5}} {
		m, _ := e.mc.message(th.ID, r.seq)
		e.mc.setReceipt(th.ID, chat.Receipt{UserID: r.u, Seq: r.seq, ReadOn: minute(10 + int(r.seq)), MessageCreatedOn: m.CreatedOn})
	}
	return th
}

func TestListReadReceipts(t *testing.T) {
	boom := errors.New("boom")
	everyone := []string{me, alice, bob, carol}
	aliceC := as(alice, "chat")
	tests := []struct {
		name     string
		setup    func(e *msgEnv, th chat.Thread)
		c        chat.Caller
		q        chat.RosterQuery
		want     want
		wantErr  error
		wantIDs  []string
		wantNext int
	}{
		{"everyone, by user id", nil, aliceC, chat.RosterQuery{}, noErr, nil, everyone, -1},
		{"with chat.join.limited", nil, as(alice, "chat.join.limited"), chat.RosterQuery{}, noErr, nil, everyone, -1},
		// me shares from minute 3: bob's pointer (2, at base) and alice's
		// (3, minute 1) are before it; carol's (5) is exactly at it.
		{"the caller's share-history time hides older pointers", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(3)))
		}, chatCaller, chat.RosterQuery{}, noErr, nil, []string{me, carol}, -1},
		{"another member's share-history time does not matter", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, bob, sharesFrom(minute(3)))
		}, aliceC, chat.RosterQuery{}, noErr, nil, everyone, -1},
		{"page of 2", nil, aliceC, chat.RosterQuery{PageSize: 2}, noErr, nil, everyone[:2], 2},
		{"skip 1, page of 2", nil, aliceC, chat.RosterQuery{Skip: 1, PageSize: 2}, noErr, nil, everyone[1:3], 3},
		{"skip 2, page of 2", nil, aliceC, chat.RosterQuery{Skip: 2, PageSize: 2}, noErr, nil, everyone[2:], -1},
		{"skip past the end", nil, aliceC, chat.RosterQuery{Skip: 9}, noErr, nil, []string{}, -1},
		{"paging after filtering", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, sharesFrom(minute(3)))
		}, chatCaller, chat.RosterQuery{Skip: 1, PageSize: 1}, noErr, nil, []string{carol}, -1},
		{"page of 201", nil, aliceC, chat.RosterQuery{PageSize: 201}, errPageSize, nil, nil, 0},
		{"skip -1", nil, aliceC, chat.RosterQuery{Skip: -1}, errSkip, nil, nil, 0},
		{"removed caller", func(e *msgEnv, th chat.Thread) {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
		}, chatCaller, chat.RosterQuery{}, errRemoved, nil, nil, 0},
		{"not a participant", nil, as(user(42), "chat"), chat.RosterQuery{}, errNotParticipant, nil, nil, 0},
		{"deleted thread", func(e *msgEnv, th chat.Thread) { markDeleted(e, th.ID, minute(9)) }, aliceC, chat.RosterQuery{}, errThreadDeleted, nil, nil, 0},
		{"voip only", nil, as(alice, "voip"), chat.RosterQuery{}, errScope, nil, nil, 0},
		{"store error", func(e *msgEnv, _ chat.Thread) { e.mc.receiptsErr = boom }, aliceC, chat.RosterQuery{}, noErr, boom, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := receiptFixture(e)
			if tt.setup != nil {
				tt.setup(e, th)
			}
			page, err := e.svc.ListReadReceipts(ctx, tt.c, th.ID, tt.q)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if !tt.want.check(t, err) {
				return
			}
			var got []string
			for _, r := range page.Receipts {
				got = append(got, r.UserID)
				m, _ := e.mc.message(th.ID, r.Seq)
				if !r.ReadOn.Equal(minute(10+int(r.Seq))) || !r.MessageCreatedOn.Equal(m.CreatedOn) {
					t.Errorf("receipt %+v lost its fields", r)
				}
			}
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, tt.wantIDs) {
				t.Errorf("receipts of %v; want %v", got, tt.wantIDs)
			}
			if page.Next != tt.wantNext {
				t.Errorf("next = %d; want %d", page.Next, tt.wantNext)
			}
		})
	}
}

func TestListReadReceiptsDefaultPageSize(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me)
	for i := range 120 {
		e.mc.setReceipt(th.ID, chat.Receipt{UserID: user(100 + i), Seq: 3, MessageCreatedOn: minute(1)})
	}
	page, err := e.svc.ListReadReceipts(ctx, chatCaller, th.ID, chat.RosterQuery{})
	if err != nil || len(page.Receipts) != 100 || page.Next != 100 || page.Receipts[0].UserID != user(100) {
		t.Fatalf("page of %d, next %d, %v; want 100 from %s, next 100", len(page.Receipts), page.Next, err, user(100))
	}
}

func TestSendTyping(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		setup func(e *msgEnv, th chat.Thread) string
		c     chat.Caller
		dname string
		want  want
	}{
		{"member", nil, chatCaller, "Me", noErr},
		{"no display name", nil, chatCaller, "", noErr},
		{"256 runes", nil, chatCaller, strings.Repeat("é", 256), noErr},
		{"with chat.join.limited", nil, caller("chat.join.limited"), "Me", noErr},
		{"257 runes", nil, chatCaller, strings.Repeat("é", 257), want{fault.BadRequest, "InvalidDisplayName", "senderDisplayName"}},
		{"voip only", nil, caller("voip"), "Me", errScope},
		{"not a participant", func(e *msgEnv, _ chat.Thread) string { return chatFixture(e, alice).ID }, chatCaller, "Me", errNotParticipant},
		{"removed caller", func(e *msgEnv, th chat.Thread) string {
			updateParticipant(e, th.ID, me, removedAt(7, minute(6)))
			return ""
		}, chatCaller, "Me", errRemoved},
		{"deleted thread", func(e *msgEnv, th chat.Thread) string { markDeleted(e, th.ID, minute(9)); return "" }, chatCaller, "Me", errThreadDeleted},
		{"unknown thread", func(*msgEnv, chat.Thread) string { return chat.NewThreadID(t0) }, chatCaller, "Me", errThreadNotFound},
		{"malformed thread id", func(*msgEnv, chat.Thread) string { return "nope" }, chatCaller, "Me", errThreadNotFound},
		{"the notifier fails", func(e *msgEnv, _ chat.Thread) string { e.typing.err = boom; return "" }, chatCaller, "Me", want{fault.Unavailable, fault.CodeUnavailable, ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMsgEnv()
			th := chatFixture(e, me, alice)
			id := th.ID
			if tt.setup != nil {
				if s := tt.setup(e, th); s != "" {
					id = s
				}
			}
			e.clock.Advance(1500 * time.Millisecond)
			err := e.svc.SendTyping(ctx, tt.c, id, tt.dname)
			if !tt.want.check(t, err) {
				if tt.want.code == fault.CodeUnavailable {
					if len(e.typing.calls) != 1 {
						t.Errorf("notifier calls = %d; want 1", len(e.typing.calls))
					}
					return
				}
				if len(e.typing.calls) != 0 {
					t.Errorf("a refused typing notification was passed on: %+v", e.typing.calls)
				}
				return
			}
			want := typingCall{id, me, tt.dname, t0.Add(1500 * time.Millisecond)}
			if len(e.typing.calls) != 1 || e.typing.calls[0] != want {
				t.Errorf("notifier calls = %+v; want [%+v]", e.typing.calls, want)
			}
			if e.mc.writes() != 0 {
				t.Errorf("typing stored something")
			}
		})
	}
}

func TestSendTypingWithoutNotifier(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	e.svc.Typing = nil
	if err := e.svc.SendTyping(ctx, chatCaller, th.ID, "Me"); err != nil {
		t.Fatalf("err = %v; want success", err)
	}
	other := chatFixture(e, alice)
	errNotParticipant.check(t, e.svc.SendTyping(ctx, chatCaller, other.ID, "Me"))
}

func TestSendTypingTimeIsUTC(t *testing.T) {
	e := newMsgEnv()
	th := chatFixture(e, me, alice)
	e.svc.Now = func() time.Time { return t0.In(time.FixedZone("X", 3600)) }
	if err := e.svc.SendTyping(ctx, chatCaller, th.ID, ""); err != nil {
		t.Fatal(err)
	}
	if at := e.typing.calls[0].at; at.Location() != time.UTC || !at.Equal(t0) {
		t.Errorf("at = %v; want %v in UTC", at, t0)
	}
}
