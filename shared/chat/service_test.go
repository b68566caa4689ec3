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

func user(n int) string {
	return fmt.Sprintf("8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-%012d", n)
}

var (
	me    = user(1)
	alice = user(2)
	bob   = user(3)
	carol = user(4)
	ghost = user(99) // no identity

	t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

func caller(scopes ...string) chat.Caller { return chat.Caller{UserID: me, Scopes: scopes} }

var chatCaller = caller("chat")

type env struct {
	svc   *chat.Service
	st    *memThreads
	dir   *memDirectory
	reqs  *memRequests
	clock *testClock
}

func newEnv() *env {
	e := &env{st: newMemThreads(), dir: newMemDirectory(me, alice, bob, carol), reqs: newMemRequests(), clock: &testClock{t: t0}}
	e.svc = &chat.Service{Threads: e.st, Users: e.dir, Requests: e.reqs, Now: e.clock.Now}
	return e
}

func wantFault(t *testing.T, err error, kind fault.Kind, code string) *fault.Error {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("err = %v; want fault %s", err, code)
	}
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("err = %s (kind %v): %s; want %s (kind %v)", fe.Code, fe.Kind, fe.Message, code, kind)
	}
	return fe
}

func ptr[T any](v T) *T { return &v }

func userIDs(ps []chat.Participant) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.UserID
	}
	return out
}

func TestCreateThreadValidation(t *testing.T) {
	many := func(n int) []chat.NewParticipant {
		out := make([]chat.NewParticipant, n)
		for i := range out {
			out[i] = chat.NewParticipant{UserID: user(1000 + i)}
		}
		return out
	}
	bigMeta := map[string]string{"k": strings.Repeat("x", 1024-len(`{"k":""}`)+1)}
	exactMeta := map[string]string{"k": strings.Repeat("x", 1024-len(`{"k":""}`))}
	tests := []struct {
		name   string
		in     chat.CreateThreadInput
		code   string
		target string
	}{
		{"ok", chat.CreateThreadInput{Topic: "hello"}, "", ""},
		{"empty topic", chat.CreateThreadInput{Topic: ""}, "InvalidTopic", "topic"},
		{"whitespace topic", chat.CreateThreadInput{Topic: " \t\n "}, "InvalidTopic", "topic"},
		{"250 runes", chat.CreateThreadInput{Topic: strings.Repeat("a", 250)}, "", ""},
		{"251 runes", chat.CreateThreadInput{Topic: strings.Repeat("a", 251)}, "InvalidTopic", "topic"},
		{"250 emoji (1000 bytes)", chat.CreateThreadInput{Topic: strings.Repeat("😀", 250)}, "", ""},
		{"251 emoji", chat.CreateThreadInput{Topic: strings.Repeat("😀", 251)}, "InvalidTopic", "topic"},
		{"250 accented runes", chat.CreateThreadInput{Topic: strings.Repeat("é", 250)}, "", ""},
		{"invalid UTF-8", chat.CreateThreadInput{Topic: "ab\xffcd"}, "InvalidTopic", "topic"},
		{"200 participants", chat.CreateThreadInput{Topic: "t", Participants: many(200)}, "", ""},
		{"201 participants", chat.CreateThreadInput{Topic: "t", Participants: many(201)}, "TooManyParticipants", "participants"},
		{"200 participants + 1 invalid", chat.CreateThreadInput{Topic: "t", Participants: many(200), Invalid: []chat.InvalidParticipant{{Target: "4:+1", Code: "403"}}}, "TooManyParticipants", "participants"},
		{"metadata at the limit", chat.CreateThreadInput{Topic: "t", Metadata: exactMeta}, "", ""},
		{"metadata over 1024 bytes", chat.CreateThreadInput{Topic: "t", Metadata: bigMeta}, "MetadataTooLarge", "metadata"},
		// 308 bytes of JSON as sent; json.Marshal's HTML escaping counts 1808.
		{"metadata with '&' well under 1024 bytes", chat.CreateThreadInput{Topic: "t", Metadata: map[string]string{"q": strings.Repeat("&", 300)}}, "", ""},
		{"metadata with an empty key", chat.CreateThreadInput{Topic: "t", Metadata: map[string]string{"": "v"}}, "InvalidMetadata", "metadata"},
		{"participant metadata over 1024 bytes", chat.CreateThreadInput{Topic: "t", Participants: []chat.NewParticipant{{UserID: alice, Metadata: bigMeta}}}, "MetadataTooLarge", "participants.metadata"},
		{"retention 29 days", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 29}}, "InvalidRetentionPolicy", "retentionPolicy.deleteThreadAfterDays"},
		{"retention 30 days", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}}, "", ""},
		{"retention 90 days", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 90}}, "", ""},
		{"retention 91 days", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 91}}, "InvalidRetentionPolicy", "retentionPolicy.deleteThreadAfterDays"},
		{"retention none", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: chat.RetentionNone}}, "", ""},
		{"retention unknown kind", chat.CreateThreadInput{Topic: "t", Retention: chat.Retention{Kind: "forever"}}, "InvalidRetentionPolicy", "retentionPolicy.kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			for _, p := range tt.in.Participants {
				e.dir.live[p.UserID] = true
			}
			res, err := e.svc.CreateThread(context.Background(), chatCaller, tt.in)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("CreateThread() = %v", err)
				}
				if res.Thread.Topic != tt.in.Topic {
					t.Errorf("topic = %q; want %q", res.Thread.Topic, tt.in.Topic)
				}
				if len(e.st.creates) != 1 {
					t.Errorf("CreateThread store calls = %d; want 1", len(e.st.creates))
				}
				return
			}
			fe := wantFault(t, err, fault.BadRequest, tt.code)
			if fe.Target != tt.target {
				t.Errorf("target = %q; want %q", fe.Target, tt.target)
			}
			if len(e.st.creates) != 0 || e.reqs.claims != 0 {
				t.Errorf("a refused create wrote: %d creates, %d claims", len(e.st.creates), e.reqs.claims)
			}
		})
	}
}

func TestCreateThreadMembersAndSystemMessages(t *testing.T) {
	e := newEnv()
	in := chat.CreateThreadInput{
		Topic: "Project",
		Participants: []chat.NewParticipant{
			{UserID: alice, DisplayName: "Alice (first)"},
			{UserID: ghost, DisplayName: "Nobody"},
			{UserID: bob, DisplayName: "Bob"},
			{UserID: alice, DisplayName: "Alice"}, // a later entry wins
			{UserID: me, DisplayName: "Me"},       // the caller, named explicitly
		},
		Invalid:  []chat.InvalidParticipant{{Target: "4:+14255550123", Code: "403", Message: "phone"}},
		Metadata: map[string]string{"k": "v"},
	}
	res, err := e.svc.CreateThread(context.Background(), chatCaller, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.st.creates) != 1 {
		t.Fatalf("store creates = %d; want 1", len(e.st.creates))
	}
	d := e.st.creates[0]

	// Members: the caller first, then in request order, deduplicated,
	// without the unknown user.
	if got, want := userIDs(d.Participants), []string{me, alice, bob}; !slices.Equal(got, want) {
		t.Errorf("participants = %v; want %v", got, want)
	}
	names := map[string]string{}
	for _, p := range d.Participants {
		names[p.UserID] = p.DisplayName
		if !p.JoinedOn.Equal(t0) {
			t.Errorf("%s JoinedOn = %v; want %v", p.UserID, p.JoinedOn, t0)
		}
	}
	if names[alice] != "Alice" || names[me] != "Me" || names[bob] != "Bob" {
		t.Errorf("display names = %v", names)
	}

	// The directory is asked only about the others, once each.
	if len(e.dir.calls) != 1 || !slices.Equal(e.dir.calls[0], []string{alice, ghost, bob}) {
		t.Errorf("directory calls = %v; want one call for [alice ghost bob]", e.dir.calls)
	}

	// Invalid: the API layer's first, then unknown ids as "404".
	if len(res.Invalid) != 2 {
		t.Fatalf("invalid = %+v; want 2 entries", res.Invalid)
	}
	if res.Invalid[0].Target != "4:+14255550123" || res.Invalid[0].Code != "403" {
		t.Errorf("invalid[0] = %+v", res.Invalid[0])
	}
	if res.Invalid[1].Target != ghost || res.Invalid[1].Code != "404" || res.Invalid[1].Message == "" {
		t.Errorf("invalid[1] = %+v; want target %s code 404", res.Invalid[1], ghost)
	}

	// The thread.
	th := d.Thread
	if !chat.ValidThreadID(th.ID) || th.ID != res.Thread.ID {
		t.Errorf("thread id = %q (result %q)", th.ID, res.Thread.ID)
	}
	if th.Topic != "Project" || th.CreatedBy != me || !th.CreatedOn.Equal(t0) || !th.LastMessageAt.Equal(t0) || th.Seq != 2 || !th.DeletedOn.IsZero() {
		t.Errorf("thread = %+v", th)
	}
	if !maps.Equal(th.Metadata, in.Metadata) {
		t.Errorf("metadata = %v", th.Metadata)
	}

	// System messages: participantAdded (1, all members), topicUpdated (2).
	if len(d.Messages) != 2 {
		t.Fatalf("messages = %d; want 2", len(d.Messages))
	}
	added, topic := d.Messages[0], d.Messages[1]
	if added.Seq != 1 || added.Type != chat.TypeParticipantAdded || added.InitiatorID != me || !added.CreatedOn.Equal(t0) {
		t.Errorf("message 1 = %+v", added)
	}
	if got := userIDs(added.Participants); !slices.Equal(got, []string{me, alice, bob}) {
		t.Errorf("participantAdded lists %v; want all members", got)
	}
	if topic.Seq != 2 || topic.Type != chat.TypeTopicUpdated || topic.Topic != "Project" || topic.InitiatorID != me || !topic.CreatedOn.Equal(t0) {
		t.Errorf("message 2 = %+v", topic)
	}
	if added.Version != t0.UnixMilli() || topic.Version != t0.UnixMilli() {
		t.Errorf("versions = %d, %d; want %d", added.Version, topic.Version, t0.UnixMilli())
	}
	if e.reqs.claims != 0 {
		t.Errorf("a create without repeatability-request-id claimed %d records", e.reqs.claims)
	}
}

func TestCreateThreadCallerOnly(t *testing.T) {
	e := newEnv()
	_, err := e.svc.CreateThread(context.Background(), chatCaller, chat.CreateThreadInput{Topic: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	if got := userIDs(e.st.creates[0].Participants); !slices.Equal(got, []string{me}) {
		t.Errorf("participants = %v; want only the caller", got)
	}
	if len(e.dir.calls) != 0 {
		t.Errorf("directory asked %v with no other participants", e.dir.calls)
	}
}

func TestCreateThreadDependencyErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		setup func(e *env)
	}{
		{"directory", func(e *env) { e.dir.err = boom }},
		{"store", func(e *env) { e.st.createErr = boom }},
		{"request log", func(e *env) { e.reqs.claimErr = boom }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv()
			tt.setup(e)
			_, err := e.svc.CreateThread(context.Background(), chatCaller, chat.CreateThreadInput{Topic: "t", Participants: []chat.NewParticipant{{UserID: alice}}, RequestID: "r", RequestHash: "h"})
			if !errors.Is(err, boom) {
				t.Fatalf("CreateThread() = %v; want %v", err, boom)
			}
			if e.reqs.completes != 0 {
				t.Errorf("a failed create was completed in the request log")
			}
		})
	}
}

func TestCreateThreadRepeatability(t *testing.T) {
	ctx := context.Background()
	in := chat.CreateThreadInput{Topic: "t", Participants: []chat.NewParticipant{{UserID: alice}, {UserID: ghost}}, RequestID: "req-1", RequestHash: "hash-A"}

	t.Run("same id and hash replays", func(t *testing.T) {
		e := newEnv()
		first, err := e.svc.CreateThread(ctx, chatCaller, in)
		if err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(10 * time.Second)
		second, err := e.svc.CreateThread(ctx, chatCaller, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.st.creates) != 1 {
			t.Errorf("store creates = %d; want 1 (the repeat must not write)", len(e.st.creates))
		}
		if second.Thread.ID != first.Thread.ID || !second.Thread.CreatedOn.Equal(first.Thread.CreatedOn) || second.Thread.Topic != first.Thread.Topic || second.Thread.Seq != first.Thread.Seq {
			t.Errorf("replayed thread = %+v; want %+v", second.Thread, first.Thread)
		}
		if !slices.Equal(second.Invalid, first.Invalid) || len(second.Invalid) != 1 || second.Invalid[0].Code != "404" {
			t.Errorf("replayed invalid = %+v; want %+v", second.Invalid, first.Invalid)
		}
		if e.reqs.claims != 2 || e.reqs.completes != 1 {
			t.Errorf("claims/completes = %d/%d; want 2/1", e.reqs.claims, e.reqs.completes)
		}
	})

	t.Run("same id, different hash conflicts", func(t *testing.T) {
		e := newEnv()
		if _, err := e.svc.CreateThread(ctx, chatCaller, in); err != nil {
			t.Fatal(err)
		}
		other := in
		other.RequestHash = "hash-B"
		other.Topic = "another"
		_, err := e.svc.CreateThread(ctx, chatCaller, other)
		fe := wantFault(t, err, fault.Conflict, "RepeatabilityConflict")
		if fe.Target != "repeatability-request-id" {
			t.Errorf("target = %q", fe.Target)
		}
		if len(e.st.creates) != 1 {
			t.Errorf("store creates = %d; want 1", len(e.st.creates))
		}
	})

	t.Run("same id from another user is independent", func(t *testing.T) {
		e := newEnv()
		a, err := e.svc.CreateThread(ctx, chatCaller, in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.svc.CreateThread(ctx, chat.Caller{UserID: alice, Scopes: []string{"chat"}}, in)
		if err != nil {
			t.Fatal(err)
		}
		if a.Thread.ID == b.Thread.ID || len(e.st.creates) != 2 {
			t.Errorf("two users sharing a request id got thread %s and %s (%d creates)", a.Thread.ID, b.Thread.ID, len(e.st.creates))
		}
	})

	t.Run("pending record resumes with the recorded id and time", func(t *testing.T) {
		e := newEnv()
		e.st.createErr = errors.New("crashed part-way")
		if _, err := e.svc.CreateThread(ctx, chatCaller, in); err == nil {
			t.Fatal("first attempt succeeded; want the store error")
		}
		if len(e.st.creates) != 1 {
			t.Fatalf("creates = %d", len(e.st.creates))
		}
		firstID, firstAt := e.st.creates[0].Thread.ID, e.st.creates[0].Thread.CreatedOn

		e.st.createErr = nil
		e.clock.Advance(3 * time.Second)
		res, err := e.svc.CreateThread(ctx, chatCaller, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(e.st.creates) != 2 {
			t.Fatalf("creates = %d; want 2 (the resumed attempt writes)", len(e.st.creates))
		}
		d := e.st.creates[1]
		if d.Thread.ID != firstID || res.Thread.ID != firstID {
			t.Errorf("resumed thread id = %s (result %s); want %s", d.Thread.ID, res.Thread.ID, firstID)
		}
		if !d.Thread.CreatedOn.Equal(firstAt) || !d.Messages[0].CreatedOn.Equal(firstAt) || !d.Participants[0].JoinedOn.Equal(firstAt) {
			t.Errorf("resumed times = %v / %v / %v; want %v", d.Thread.CreatedOn, d.Messages[0].CreatedOn, d.Participants[0].JoinedOn, firstAt)
		}
		if e.reqs.completes != 1 {
			t.Errorf("completes = %d; want 1", e.reqs.completes)
		}
		// And now it is done: a third call replays without writing.
		again, err := e.svc.CreateThread(ctx, chatCaller, in)
		if err != nil || again.Thread.ID != firstID || len(e.st.creates) != 2 {
			t.Errorf("third call = %v, %s, %d creates", err, again.Thread.ID, len(e.st.creates))
		}
	})

	t.Run("pending record with another hash conflicts", func(t *testing.T) {
		e := newEnv()
		e.st.createErr = errors.New("crashed")
		_, _ = e.svc.CreateThread(ctx, chatCaller, in)
		e.st.createErr = nil
		other := in
		other.RequestHash = "hash-B"
		_, err := e.svc.CreateThread(ctx, chatCaller, other)
		wantFault(t, err, fault.Conflict, "RepeatabilityConflict")
	})
}

// seedThread stores a committed thread created at `at` with the given
// members (all current).
func seedThread(e *env, topic string, at time.Time, members ...string) chat.Thread {
	th := chat.Thread{ID: chat.NewThreadID(at), Topic: topic, CreatedOn: at, CreatedBy: members[0], LastMessageAt: at, Seq: 2}
	var ps []chat.Participant
	for _, m := range members {
		ps = append(ps, chat.Participant{UserID: m, JoinedOn: at})
	}
	e.st.seed(th, ps...)
	return th
}

func removeParticipant(e *env, threadID, userID string, at time.Time) {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	p := e.st.parts[threadID][userID]
	p.RemovedOn = at
	e.st.parts[threadID][userID] = p
}

func TestGetThread(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	live := seedThread(e, "live", t0.Add(-time.Hour), me, alice)
	notMine := seedThread(e, "not mine", t0.Add(-time.Hour), alice, bob)
	removedFrom := seedThread(e, "removed", t0.Add(-time.Hour), alice, me)
	removeParticipant(e, removedFrom.ID, me, t0.Add(-time.Minute))
	deleted := seedThread(e, "deleted", t0.Add(-time.Hour), me)
	d := e.st.thread(deleted.ID)
	d.DeletedOn = t0.Add(-time.Minute)
	e.st.setThread(d)
	expired := seedThread(e, "expired", t0.Add(-31*24*time.Hour), me)
	x := e.st.thread(expired.ID)
	x.Retention = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
	e.st.setThread(x)
	retained := seedThread(e, "retained", t0.Add(-29*24*time.Hour), me)
	r := e.st.thread(retained.ID)
	r.Retention = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
	e.st.setThread(r)
	unknown := chat.NewThreadID(t0)

	tests := []struct {
		name   string
		id     string
		c      chat.Caller
		topic  string
		kind   fault.Kind
		code   string
		noView bool
	}{
		{"participant", live.ID, chatCaller, "live", 0, "", false},
		{"chat.join", live.ID, caller("chat.join"), "live", 0, "", false},
		{"chat.join.limited", live.ID, caller("chat.join.limited"), "live", 0, "", false},
		{"removed participant can still get", removedFrom.ID, chatCaller, "removed", 0, "", false},
		{"retention not reached", retained.ID, chatCaller, "retained", 0, "", false},
		{"unknown thread", unknown, chatCaller, "", fault.NotFound, "ThreadNotFound", false},
		{"malformed id", "19:nope@thread.v2", chatCaller, "", fault.NotFound, "ThreadNotFound", true},
		{"empty id", "", chatCaller, "", fault.NotFound, "ThreadNotFound", true},
		{"non-participant", notMine.ID, chatCaller, "", fault.Forbidden, "NotAParticipant", false},
		{"deleted", deleted.ID, chatCaller, "", fault.NotFound, "ThreadDeleted", false},
		{"retention expired", expired.ID, chatCaller, "", fault.NotFound, "ThreadDeleted", false},
		{"voip only", live.ID, caller("voip"), "", fault.Forbidden, "InsufficientScope", true},
		{"no scopes", live.ID, caller(), "", fault.Forbidden, "InsufficientScope", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.st.views
			th, err := e.svc.GetThread(ctx, tt.c, tt.id)
			if tt.code != "" {
				wantFault(t, err, tt.kind, tt.code)
				if tt.noView && e.st.views != before {
					t.Errorf("the store was read for a request refused up front")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if th.ID != tt.id || th.Topic != tt.topic {
				t.Errorf("thread = %s %q; want %s %q", th.ID, th.Topic, tt.id, tt.topic)
			}
		})
	}
}

func TestGetThreadStoreError(t *testing.T) {
	e := newEnv()
	th := seedThread(e, "t", t0, me)
	boom := errors.New("boom")
	e.st.viewErr = boom
	if _, err := e.svc.GetThread(context.Background(), chatCaller, th.ID); !errors.Is(err, boom) {
		t.Fatalf("GetThread() = %v; want %v", err, boom)
	}
}

// TestScopeTable checks reference/acs-chat.md §3.4 for the thread operations.
func TestScopeTable(t *testing.T) {
	ctx := context.Background()
	type op struct {
		name string
		run  func(e *env, c chat.Caller, threadID string) error
	}
	ops := []op{
		{"create", func(e *env, c chat.Caller, _ string) error {
			_, err := e.svc.CreateThread(ctx, c, chat.CreateThreadInput{Topic: "t"})
			return err
		}},
		{"update", func(e *env, c chat.Caller, id string) error {
			return e.svc.UpdateThread(ctx, c, id, chat.ThreadPatch{Topic: ptr("new")})
		}},
		{"delete", func(e *env, c chat.Caller, id string) error { return e.svc.DeleteThread(ctx, c, id) }},
		{"get", func(e *env, c chat.Caller, id string) error { _, err := e.svc.GetThread(ctx, c, id); return err }},
		{"list", func(e *env, c chat.Caller, _ string) error {
			_, err := e.svc.ListThreads(ctx, c, chat.ThreadQuery{})
			return err
		}},
	}
	allowed := map[string]map[string]bool{
		"chat":              {"create": true, "update": true, "delete": true, "get": true, "list": true},
		"chat.join":         {"get": true, "list": true},
		"chat.join.limited": {"get": true, "list": true},
		"voip":              {},
		"voip.join":         {},
		"":                  {},
	}
	for scope, ok := range allowed {
		for _, o := range ops {
			t.Run(o.name+" with "+scope, func(t *testing.T) {
				e := newEnv()
				th := seedThread(e, "t", t0.Add(-time.Hour), me)
				c := caller()
				if scope != "" {
					c = caller(scope)
				}
				err := o.run(e, c, th.ID)
				if ok[o.name] {
					if err != nil {
						t.Fatalf("%s with %q = %v; want success", o.name, scope, err)
					}
					return
				}
				wantFault(t, err, fault.Forbidden, "InsufficientScope")
				if len(e.st.creates)+len(e.st.changes)+len(e.st.deletes) != 0 {
					t.Errorf("a refused %s wrote to the store", o.name)
				}
			})
		}
	}
	// Several scopes: any allowed one is enough.
	e := newEnv()
	if _, err := e.svc.CreateThread(ctx, caller("voip", "chat"), chat.CreateThreadInput{Topic: "t"}); err != nil {
		t.Errorf("create with [voip chat] = %v", err)
	}
}

func TestUpdateThread(t *testing.T) {
	ctx := context.Background()
	setup := func(meta map[string]string) (*env, chat.Thread) {
		e := newEnv()
		th := seedThread(e, "old", t0.Add(-time.Hour), me, alice)
		th.Metadata = meta
		th.Seq = 7
		th.Rev = 3
		e.st.setThread(th)
		return e, th
	}

	t.Run("topic change writes topicUpdated at seq+1", func(t *testing.T) {
		e, th := setup(nil)
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("new topic")}); err != nil {
			t.Fatal(err)
		}
		if len(e.st.changes) != 1 {
			t.Fatalf("changes = %d; want 1", len(e.st.changes))
		}
		c := e.st.changes[0]
		if c.ThreadID != th.ID || c.ExpectRev != 3 || c.ExpectSeq != 7 || c.Topic != "new topic" || !c.At.Equal(t0) {
			t.Errorf("change = %+v", c)
		}
		m := c.Message
		if m == nil {
			t.Fatal("no system message")
		}
		if m.Seq != 8 || m.Type != chat.TypeTopicUpdated || m.Topic != "new topic" || m.InitiatorID != me || !m.CreatedOn.Equal(t0) || m.Version != t0.UnixMilli() {
			t.Errorf("message = %+v; want topicUpdated seq 8", *m)
		}
		got := e.st.thread(th.ID)
		if got.Topic != "new topic" || got.Seq != 8 || !got.LastMessageAt.Equal(t0) {
			t.Errorf("stored thread = %+v", got)
		}
	})

	t.Run("metadata-only change writes no message", func(t *testing.T) {
		e, th := setup(map[string]string{"a": "1"})
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Metadata: map[string]*string{"b": ptr("2")}}); err != nil {
			t.Fatal(err)
		}
		if len(e.st.changes) != 1 || e.st.changes[0].Message != nil {
			t.Fatalf("changes = %+v; want one change without a message", e.st.changes)
		}
		if e.st.changes[0].Topic != "old" {
			t.Errorf("topic in change = %q; want it kept", e.st.changes[0].Topic)
		}
	})

	metaTests := []struct {
		name  string
		cur   map[string]string
		patch chat.ThreadPatch
		want  map[string]string
		write bool
	}{
		{"set a key", map[string]string{"a": "1"}, chat.ThreadPatch{Metadata: map[string]*string{"b": ptr("2")}}, map[string]string{"a": "1", "b": "2"}, true},
		{"replace a key", map[string]string{"a": "1"}, chat.ThreadPatch{Metadata: map[string]*string{"a": ptr("9")}}, map[string]string{"a": "9"}, true},
		{"remove a key with nil", map[string]string{"a": "1", "b": "2"}, chat.ThreadPatch{Metadata: map[string]*string{"a": nil}}, map[string]string{"b": "2"}, true},
		{"remove the last key", map[string]string{"a": "1"}, chat.ThreadPatch{Metadata: map[string]*string{"a": nil}}, nil, true},
		{"remove a missing key", map[string]string{"a": "1"}, chat.ThreadPatch{Metadata: map[string]*string{"zz": nil}}, map[string]string{"a": "1"}, false},
		{"clear", map[string]string{"a": "1", "b": "2"}, chat.ThreadPatch{ClearMetadata: true}, nil, true},
		{"clear then set", map[string]string{"a": "1"}, chat.ThreadPatch{ClearMetadata: true, Metadata: map[string]*string{"c": ptr("3")}}, map[string]string{"c": "3"}, true},
		{"clear nothing", nil, chat.ThreadPatch{ClearMetadata: true}, nil, false},
		{"same value", map[string]string{"a": "1"}, chat.ThreadPatch{Metadata: map[string]*string{"a": ptr("1")}}, map[string]string{"a": "1"}, false},
		{"empty patch", map[string]string{"a": "1"}, chat.ThreadPatch{}, map[string]string{"a": "1"}, false},
		{"same topic", map[string]string{"a": "1"}, chat.ThreadPatch{Topic: ptr("old")}, map[string]string{"a": "1"}, false},
		{"empty map stored, nothing patched", map[string]string{}, chat.ThreadPatch{Metadata: map[string]*string{}}, nil, false},
	}
	for _, tt := range metaTests {
		t.Run("metadata: "+tt.name, func(t *testing.T) {
			e, th := setup(tt.cur)
			if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, tt.patch); err != nil {
				t.Fatal(err)
			}
			if !tt.write {
				if len(e.st.changes) != 0 {
					t.Fatalf("a no-change patch wrote %+v", e.st.changes)
				}
				return
			}
			if len(e.st.changes) != 1 {
				t.Fatalf("changes = %d; want 1", len(e.st.changes))
			}
			c := e.st.changes[0]
			if !maps.Equal(c.Metadata, tt.want) || (tt.want == nil) != (len(c.Metadata) == 0) {
				t.Errorf("metadata = %v; want %v", c.Metadata, tt.want)
			}
			if c.Message != nil {
				t.Errorf("a metadata change wrote a system message")
			}
		})
	}

	t.Run("merged metadata over the limit", func(t *testing.T) {
		e, th := setup(map[string]string{"a": strings.Repeat("x", 600)})
		err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Metadata: map[string]*string{"b": ptr(strings.Repeat("y", 600))}})
		wantFault(t, err, fault.BadRequest, "MetadataTooLarge")
		if len(e.st.changes) != 0 {
			t.Error("an oversized patch was written")
		}
	})

	t.Run("retention set and cleared", func(t *testing.T) {
		e, th := setup(nil)
		ret := chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 60}
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Retention: &ret}); err != nil {
			t.Fatal(err)
		}
		if got := e.st.thread(th.ID).Retention; got != ret {
			t.Errorf("retention = %+v; want %+v", got, ret)
		}
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Retention: &chat.Retention{}}); err != nil {
			t.Fatal(err)
		}
		if got := e.st.thread(th.ID).Retention; got != (chat.Retention{}) {
			t.Errorf("retention after null = %+v; want none", got)
		}
		if len(e.st.changes) != 2 {
			t.Errorf("changes = %d; want 2", len(e.st.changes))
		}
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Retention: &chat.Retention{}}); err != nil || len(e.st.changes) != 2 {
			t.Errorf("clearing an absent retention = %v, %d changes; want no write", err, len(e.st.changes))
		}
	})

	t.Run("ErrRaced is retried with a fresh read", func(t *testing.T) {
		e, th := setup(nil)
		calls := 0
		e.st.updateHook = func(c chat.ThreadChange) error {
			calls++
			if calls == 1 {
				// A message was sent concurrently: the thread moved on.
				cur := e.st.threads[c.ThreadID]
				cur.Seq++
				cur.LastMessageAt = t0
				e.st.threads[c.ThreadID] = cur
				return chat.ErrRaced
			}
			return nil
		}
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("new")}); err != nil {
			t.Fatalf("UpdateThread() = %v; want success on the retry", err)
		}
		if len(e.st.changes) != 2 {
			t.Fatalf("store calls = %d; want 2", len(e.st.changes))
		}
		second := e.st.changes[1]
		if second.ExpectSeq != 8 || second.Message == nil || second.Message.Seq != 9 {
			t.Errorf("retry = ExpectSeq %d, message %+v; want ExpectSeq 8, seq 9", second.ExpectSeq, second.Message)
		}
		if got := e.st.thread(th.ID); got.Topic != "new" || got.Seq != 9 {
			t.Errorf("stored thread = %+v", got)
		}
	})

	t.Run("always raced gives up with 503", func(t *testing.T) {
		e, th := setup(nil)
		e.st.updateHook = func(chat.ThreadChange) error { return chat.ErrRaced }
		err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("new")})
		fe := wantFault(t, err, fault.Unavailable, fault.CodeUnavailable)
		if fe.RetryAfter <= 0 {
			t.Errorf("RetryAfter = %v; want > 0", fe.RetryAfter)
		}
		if n := len(e.st.changes); n < 2 || n > 20 {
			t.Errorf("attempts = %d; want a small bounded number of retries", n)
		}
	})

	t.Run("other store errors are not retried", func(t *testing.T) {
		e, th := setup(nil)
		boom := errors.New("boom")
		e.st.updateHook = func(chat.ThreadChange) error { return boom }
		if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("new")}); !errors.Is(err, boom) {
			t.Fatalf("UpdateThread() = %v; want %v", err, boom)
		}
		if len(e.st.changes) != 1 {
			t.Errorf("attempts = %d; want 1", len(e.st.changes))
		}
	})

	refusals := []struct {
		name  string
		prep  func(e *env, th chat.Thread) string
		c     chat.Caller
		patch chat.ThreadPatch
		kind  fault.Kind
		code  string
	}{
		{"removed participant", func(e *env, th chat.Thread) string {
			removeParticipant(e, th.ID, me, t0.Add(-time.Minute))
			return th.ID
		}, chatCaller, chat.ThreadPatch{Topic: ptr("x")}, fault.Forbidden, "ParticipantRemoved"},
		{"non-participant", func(e *env, th chat.Thread) string {
			return seedThread(e, "theirs", t0, alice, bob).ID
		}, chatCaller, chat.ThreadPatch{Topic: ptr("x")}, fault.Forbidden, "NotAParticipant"},
		{"deleted thread", func(e *env, th chat.Thread) string {
			th.DeletedOn = t0.Add(-time.Second)
			e.st.setThread(th)
			return th.ID
		}, chatCaller, chat.ThreadPatch{Topic: ptr("x")}, fault.NotFound, "ThreadDeleted"},
		{"unknown thread", func(*env, chat.Thread) string { return chat.NewThreadID(t0) }, chatCaller, chat.ThreadPatch{Topic: ptr("x")}, fault.NotFound, "ThreadNotFound"},
		{"empty topic", func(_ *env, th chat.Thread) string { return th.ID }, chatCaller, chat.ThreadPatch{Topic: ptr("  ")}, fault.BadRequest, "InvalidTopic"},
		{"251-rune topic", func(_ *env, th chat.Thread) string { return th.ID }, chatCaller, chat.ThreadPatch{Topic: ptr(strings.Repeat("ü", 251))}, fault.BadRequest, "InvalidTopic"},
		{"retention 29", func(_ *env, th chat.Thread) string { return th.ID }, chatCaller, chat.ThreadPatch{Retention: &chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 29}}, fault.BadRequest, "InvalidRetentionPolicy"},
		{"retention 91", func(_ *env, th chat.Thread) string { return th.ID }, chatCaller, chat.ThreadPatch{Retention: &chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 91}}, fault.BadRequest, "InvalidRetentionPolicy"},
		{"chat.join scope", func(_ *env, th chat.Thread) string { return th.ID }, caller("chat.join"), chat.ThreadPatch{Topic: ptr("x")}, fault.Forbidden, "InsufficientScope"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			e, th := setup(nil)
			id := tt.prep(e, th)
			err := e.svc.UpdateThread(ctx, tt.c, id, tt.patch)
			wantFault(t, err, tt.kind, tt.code)
			if len(e.st.changes) != 0 {
				t.Errorf("a refused update wrote %+v", e.st.changes)
			}
		})
	}
}

func TestDeleteThread(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	th := seedThread(e, "t", t0.Add(-time.Hour), me, alice)
	e.clock.Advance(time.Minute)
	if err := e.svc.DeleteThread(ctx, chatCaller, th.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.st.thread(th.ID).DeletedOn; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("DeletedOn = %v; want %v", got, t0.Add(time.Minute))
	}
	e.clock.Advance(time.Minute)
	if err := e.svc.DeleteThread(ctx, chatCaller, th.ID); err != nil {
		t.Fatalf("second delete = %v; want success", err)
	}
	if got := e.st.thread(th.ID).DeletedOn; !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("DeletedOn moved to %v on the second delete", got)
	}
	if len(e.st.deletes) != 1 {
		t.Errorf("store deletes = %d; want 1", len(e.st.deletes))
	}
	// Another participant deleting it again also succeeds.
	if err := e.svc.DeleteThread(ctx, chat.Caller{UserID: alice, Scopes: []string{"chat"}}, th.ID); err != nil {
		t.Errorf("delete by another participant = %v", err)
	}
	_, err := e.svc.GetThread(ctx, chatCaller, th.ID)
	wantFault(t, err, fault.NotFound, "ThreadDeleted")

	// Refusals.
	theirs := seedThread(e, "theirs", t0, alice)
	wantFault(t, e.svc.DeleteThread(ctx, chatCaller, theirs.ID), fault.Forbidden, "NotAParticipant")
	wantFault(t, e.svc.DeleteThread(ctx, chatCaller, chat.NewThreadID(t0)), fault.NotFound, "ThreadNotFound")
	left := seedThread(e, "left", t0, alice, me)
	removeParticipant(e, left.ID, me, t0)
	wantFault(t, e.svc.DeleteThread(ctx, chatCaller, left.ID), fault.Forbidden, "ParticipantRemoved")
	if len(e.st.deletes) != 1 {
		t.Errorf("store deletes = %d after refusals; want 1", len(e.st.deletes))
	}
}

// --- ListThreads ---

func ids(sums []chat.ThreadSummary) []string {
	out := make([]string, len(sums))
	for i, s := range sums {
		out[i] = s.ID
	}
	return out
}

// expectedOrder sorts independently: newest activity (ms) first, then id
// descending, the order the continuation cursor walks.
func expectedOrder(ths []chat.Thread) []string {
	s := slices.Clone(ths)
	slices.SortFunc(s, func(a, b chat.Thread) int {
		if a.Activity().UnixMilli() != b.Activity().UnixMilli() {
			if a.Activity().UnixMilli() > b.Activity().UnixMilli() {
				return -1
			}
			return 1
		}
		return strings.Compare(b.ID, a.ID)
	})
	out := make([]string, len(s))
	for i, t := range s {
		out[i] = t.ID
	}
	return out
}

func TestListThreadsOrder(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	a := seedThread(e, "a", t0.Add(-5*time.Hour), me)
	b := seedThread(e, "b", t0.Add(-4*time.Hour), me, alice)
	c := seedThread(e, "c", t0.Add(-3*time.Hour), alice, me)
	// b had a message after c was created.
	bb := e.st.thread(b.ID)
	bb.LastMessageAt = t0.Add(-time.Hour)
	e.st.setThread(bb)
	// Two threads with the same activity.
	tie1 := seedThread(e, "tie1", t0.Add(-2*time.Hour), me)
	tie2 := seedThread(e, "tie2", t0.Add(-2*time.Hour), me)
	// Not mine.
	seedThread(e, "other", t0.Add(-time.Minute), alice)

	page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	hi, lo := tie1.ID, tie2.ID
	if hi < lo {
		hi, lo = lo, hi
	}
	want := []string{b.ID, hi, lo, c.ID, a.ID}
	if got := ids(page.Threads); !slices.Equal(got, want) {
		t.Errorf("order = %v; want %v", got, want)
	}
	if page.Cursor != "" {
		t.Errorf("cursor = %q on a single page", page.Cursor)
	}
	first := page.Threads[0]
	if first.Topic != "b" || !first.Activity.Equal(t0.Add(-time.Hour)) || !first.DeletedOn.IsZero() {
		t.Errorf("first = %+v", first)
	}
}

func TestListThreadsRemovedAndDeleted(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	removedAt := t0.Add(-3 * time.Hour)
	left := seedThread(e, "left", t0.Add(-5*time.Hour), alice, me)
	l := e.st.thread(left.ID)
	l.LastMessageAt = t0.Add(-time.Minute) // activity after my removal
	e.st.setThread(l)
	removeParticipant(e, left.ID, me, removedAt)
	mid := seedThread(e, "mid", t0.Add(-2*time.Hour), me)
	deleted := seedThread(e, "deleted", t0.Add(-4*time.Hour), me)
	d := e.st.thread(deleted.ID)
	d.DeletedOn = t0.Add(-10 * time.Minute)
	e.st.setThread(d)
	expired := seedThread(e, "expired", t0.Add(-40*24*time.Hour), me)
	x := e.st.thread(expired.ID)
	x.Retention = chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
	e.st.setThread(x)

	page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	// The removed thread is capped at the removal, so it sorts after mid.
	want := []string{mid.ID, left.ID, deleted.ID, expired.ID}
	if got := ids(page.Threads); !slices.Equal(got, want) {
		t.Fatalf("order = %v; want %v", got, want)
	}
	byID := map[string]chat.ThreadSummary{}
	for _, s := range page.Threads {
		byID[s.ID] = s
	}
	if got := byID[left.ID].Activity; !got.Equal(removedAt) {
		t.Errorf("removed thread activity = %v; want capped at %v", got, removedAt)
	}
	if got := byID[deleted.ID].DeletedOn; !got.Equal(t0.Add(-10 * time.Minute)) {
		t.Errorf("deleted thread DeletedOn = %v", got)
	}
	if got := byID[expired.ID].DeletedOn; !got.Equal(t0.Add(-40 * 24 * time.Hour).Add(30 * 24 * time.Hour)) {
		t.Errorf("expired thread DeletedOn = %v; want creation + 30 days", got)
	}

	// Alice was not removed: she sees the thread's real activity.
	page, err = e.svc.ListThreads(ctx, chat.Caller{UserID: alice, Scopes: []string{"chat.join"}}, chat.ThreadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Threads) != 1 || !page.Threads[0].Activity.Equal(t0.Add(-time.Minute)) {
		t.Errorf("alice's list = %+v", page.Threads)
	}
}

func TestListThreadsStartTime(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	old := seedThread(e, "old", t0.Add(-3*time.Hour), me)
	edge := seedThread(e, "edge", t0.Add(-2*time.Hour), me)
	recent := seedThread(e, "recent", t0.Add(-time.Hour), me)
	left := seedThread(e, "left", t0.Add(-5*time.Hour), alice, me)
	l := e.st.thread(left.ID)
	l.LastMessageAt = t0.Add(-time.Minute)
	e.st.setThread(l)
	removeParticipant(e, left.ID, me, t0.Add(-4*time.Hour)) // capped before the start time

	page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{StartTime: t0.Add(-2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(page.Threads), []string{recent.ID, edge.ID}; !slices.Equal(got, want) {
		t.Errorf("with startTime = %v; want %v (old %s excluded)", got, want, old.ID)
	}
}

func TestListThreadsPageSize(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	for i := 0; i < 205; i++ {
		seedThread(e, fmt.Sprint(i), t0.Add(-time.Duration(i+1)*time.Minute), me)
	}
	tests := []struct {
		size int
		want int
		code string
	}{
		{0, 20, ""},
		{1, 1, ""},
		{50, 50, ""},
		{200, 200, ""},
		{201, 0, "InvalidPageSize"},
		{-1, 0, "InvalidPageSize"},
		{1 << 30, 0, "InvalidPageSize"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.size), func(t *testing.T) {
			page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: tt.size})
			if tt.code != "" {
				fe := wantFault(t, err, fault.BadRequest, tt.code)
				if fe.Target != "maxPageSize" {
					t.Errorf("target = %q", fe.Target)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Threads) != tt.want || page.Cursor == "" {
				t.Errorf("page of %d with cursor %q; want %d and a cursor", len(page.Threads), page.Cursor, tt.want)
			}
		})
	}
}

func TestListThreadsPagingIsComplete(t *testing.T) {
	ctx := context.Background()
	for _, size := range []int{1, 3, 7, 10, 46, 47, 48} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			e := newEnv()
			var all []chat.Thread
			for i := 0; i < 47; i++ {
				// Only 6 distinct activity times: plenty of ties.
				th := seedThread(e, fmt.Sprint(i), t0.Add(-time.Duration(i%6)*time.Minute-time.Hour), me)
				all = append(all, th)
			}
			want := expectedOrder(all)
			var got []string
			cursor := ""
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: size, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Threads) > size {
					t.Fatalf("page has %d threads; max %d", len(page.Threads), size)
				}
				got = append(got, ids(page.Threads)...)
				if page.Cursor == "" {
					break
				}
				if len(page.Threads) != size {
					t.Errorf("a non-final page has %d threads; want %d", len(page.Threads), size)
				}
				cursor = page.Cursor
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged order differs from the full order:\n got  %v\n want %v", got, want)
			}
		})
	}
}

func TestListThreadsSnapshot(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	var all []chat.Thread
	for i := 0; i < 10; i++ {
		all = append(all, seedThread(e, fmt.Sprint(i), t0.Add(-time.Duration(i+1)*time.Minute), me))
	}
	want := expectedOrder(all)

	p1, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p1.Threads), want[:4]) {
		t.Fatalf("page 1 = %v; want %v", ids(p1.Threads), want[:4])
	}

	// After page 1: a page-1 thread gets a message, and a new thread appears.
	e.clock.Advance(30 * time.Second)
	bumped := e.st.thread(want[0])
	bumped.LastMessageAt = e.clock.Now()
	bumped.Seq++
	e.st.setThread(bumped)
	bumped2 := e.st.thread(want[3])
	bumped2.LastMessageAt = e.clock.Now()
	e.st.setThread(bumped2)
	fresh := seedThread(e, "fresh", e.clock.Now(), me)

	p2, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 4, Cursor: p1.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p2.Threads); !slices.Equal(got, want[4:8]) {
		t.Errorf("page 2 = %v; want %v (no repeats, no shift)", got, want[4:8])
	}
	p3, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 4, Cursor: p2.Cursor})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(p3.Threads); !slices.Equal(got, want[8:]) || p3.Cursor != "" {
		t.Errorf("page 3 = %v (cursor %q); want %v and no cursor", got, p3.Cursor, want[8:])
	}

	// A fresh listing shows the new activity at the top.
	top, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	gotTop := ids(top.Threads)
	slices.Sort(gotTop)
	wantTop := []string{want[0], want[3], fresh.ID}
	slices.Sort(wantTop)
	if !slices.Equal(gotTop, wantTop) {
		t.Errorf("fresh listing top 3 = %v; want %v", ids(top.Threads), wantTop)
	}
}

func TestListThreadsBadCursor(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	for i := 0; i < 3; i++ {
		seedThread(e, fmt.Sprint(i), t0.Add(-time.Duration(i+1)*time.Minute), me)
	}
	first, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 1})
	if err != nil || first.Cursor == "" {
		t.Fatalf("page 1 = %+v, %v; want a cursor", first, err)
	}
	real := first.Cursor
	raw, err := base64.RawURLEncoding.DecodeString(real)
	if err != nil {
		t.Fatalf("the cursor is not base64url: %v", err)
	}
	reencode := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	tests := map[string]string{
		"garbage":                "garbage!",
		"percent signs":          "%%%",
		"not base64 at all":      "a b c",
		"padded":                 real + "==",
		"truncated":              real[:len(real)/2],
		"prefixed":               "AAAA" + real,
		"hello":                  reencode([]byte("hello")),
		"last byte dropped":      reencode(raw[:len(raw)-1]),
		"thread id cut in half":  reencode(raw[:len(raw)-20]),
		"standard base64":        base64.StdEncoding.EncodeToString(append(raw, 0xfb, 0xff)),
		"separators removed":     reencode([]byte(strings.ReplaceAll(string(raw), "|", ""))),
		"first byte changed":     reencode(append([]byte{'x'}, raw[1:]...)),
		"trailing field dropped": reencode(raw[:strings.LastIndexByte(string(raw), '|')]),
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{Cursor: c})
			fe := wantFault(t, err, fault.BadRequest, "InvalidContinuationToken")
			if fe.Target != "syncState" {
				t.Errorf("target = %q", fe.Target)
			}
		})
	}
	// The real cursor still works.
	if _, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{PageSize: 1, Cursor: real}); err != nil {
		t.Errorf("real cursor refused: %v", err)
	}
}

func TestListThreadsSkipsUncommitted(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	committed := seedThread(e, "ok", t0.Add(-time.Hour), me)
	// A creation that stopped part-way: participants but no META.
	e.st.createErr = errors.New("crash")
	_, _ = e.svc.CreateThread(ctx, chatCaller, chat.CreateThreadInput{Topic: "half"})
	e.st.createErr = nil
	half := e.st.creates[0].Thread.ID
	e.st.mu.Lock()
	e.st.parts[half] = map[string]chat.Participant{me: {UserID: me, JoinedOn: t0}}
	e.st.mu.Unlock()

	var asked []string
	e.st.threadsHook = func(ids []string) { asked = slices.Clone(ids) }
	page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(asked, half) {
		t.Fatalf("Threads() was asked %v; the harness did not list the uncommitted membership", asked)
	}
	if got := ids(page.Threads); !slices.Equal(got, []string{committed.ID}) {
		t.Errorf("list = %v; want only %s", got, committed.ID)
	}
}

func TestListThreadsEmptyAndErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv()
	page, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{})
	if err != nil || len(page.Threads) != 0 || page.Cursor != "" {
		t.Errorf("empty list = %+v, %v", page, err)
	}
	boom := errors.New("boom")
	e.st.membershipsErr = boom
	if _, err := e.svc.ListThreads(ctx, chatCaller, chat.ThreadQuery{}); !errors.Is(err, boom) {
		t.Errorf("ListThreads() = %v; want %v", err, boom)
	}
}
