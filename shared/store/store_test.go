package store_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/ddblocal"
	"github.com/threadline/threadline/local/samtemplate"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/store"
)

// These tests run against the real DynamoDB Local, with tables made from
// template.yaml's own definitions.

var (
	ddb    *ddblocal.Server
	client *dynamodb.Client
	tpl    *samtemplate.Template
	seq    atomic.Int64
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := ddblocal.DefaultDir()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		ddb, err = ddblocal.Start(ctx, ddblocal.Options{Dir: dir})
		cancel()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "store tests need DynamoDB Local (run `make deps`):", err)
		return 1
	}
	defer ddb.Close()
	client = local.NewDynamoDB(ddb.Endpoint)
	root, err := local.RepoRoot()
	if err == nil {
		tpl, err = samtemplate.Load(filepath.Join(root, "template.yaml"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// newStore makes fresh tables and a store on them.
func newStore(t *testing.T, wrap func(store.DB) store.DB) *store.Store {
	t.Helper()
	names, err := local.EnsureTables(context.Background(), client, tpl, fmt.Sprintf("s%d_", seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	var db store.DB = client
	if wrap != nil {
		db = wrap(db)
	}
	return &store.Store{DB: db, Table: names["ChatTable"]}
}

func draft(n int) chat.ThreadDraft {
	now := time.UnixMilli(time.Now().UnixMilli()).UTC()
	id := chat.NewThreadID(now)
	var ps []chat.Participant
	for i := 0; i < n; i++ {
		ps = append(ps, chat.Participant{UserID: fmt.Sprintf("8:acs:00000000-0000-0000-0000-000000000000_%d", i), DisplayName: fmt.Sprintf("u%d", i), JoinedOn: now})
	}
	return chat.ThreadDraft{
		Thread:       chat.Thread{ID: id, Topic: "t", CreatedOn: now, CreatedBy: ps[0].UserID, LastMessageAt: now, Seq: 2, Metadata: map[string]string{"a": "b"}},
		Participants: ps,
		Messages: []chat.Message{
			{Seq: 1, Type: chat.TypeParticipantAdded, Participants: ps, InitiatorID: ps[0].UserID, CreatedOn: now, Version: now.UnixMilli()},
			{Seq: 2, Type: chat.TypeTopicUpdated, Topic: "t", InitiatorID: ps[0].UserID, CreatedOn: now, Version: now.UnixMilli()},
		},
	}
}

func TestThreadRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	d := draft(200) // more than 25: several BatchWriteItem calls
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	// A resumed creation writes the same items again without error.
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatalf("resumed create: %v", err)
	}
	v, err := s.ThreadView(ctx, d.Thread.ID, d.Participants[150].UserID)
	if err != nil {
		t.Fatal(err)
	}
	if v.Thread == nil || v.Participant == nil || v.Thread.Topic != "t" || v.Thread.Seq != 2 || v.Thread.Metadata["a"] != "b" ||
		!v.Thread.CreatedOn.Equal(d.Thread.CreatedOn) || v.Participant.DisplayName != "u150" {
		t.Fatalf("view = %+v / %+v", v.Thread, v.Participant)
	}
	outsider, err := s.ThreadView(ctx, d.Thread.ID, "8:acs:nobody")
	if err != nil || outsider.Thread == nil || outsider.Participant != nil {
		t.Errorf("outsider view = %+v, %v", outsider, err)
	}
	for _, p := range []int{0, 199} {
		ms, err := s.Memberships(ctx, d.Participants[p].UserID)
		if err != nil || len(ms) != 1 || ms[0].ThreadID != d.Thread.ID {
			t.Errorf("memberships of %d = %+v, %v", p, ms, err)
		}
	}
	got, err := s.Threads(ctx, []string{d.Thread.ID, chat.NewThreadID(time.Now())})
	if err != nil || len(got) != 1 || got[d.Thread.ID].Topic != "t" {
		t.Errorf("Threads = %+v, %v", got, err)
	}
}

func TestUpdateThreadIsConditional(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	d := draft(2)
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	msg := &chat.Message{Seq: 3, Type: chat.TypeTopicUpdated, Topic: "new", InitiatorID: d.Thread.CreatedBy, CreatedOn: now, Version: now.UnixMilli()}
	// A stale revision or sequence id loses the race and changes nothing.
	for _, c := range []chat.ThreadChange{
		{ThreadID: d.Thread.ID, ExpectRev: 5, ExpectSeq: 2, Topic: "new", Message: msg, At: now},
		{ThreadID: d.Thread.ID, ExpectRev: 0, ExpectSeq: 1, Topic: "new", Message: msg, At: now},
		{ThreadID: d.Thread.ID, ExpectRev: 9, Topic: "new", At: now},
	} {
		if err := s.UpdateThread(ctx, c); !errors.Is(err, chat.ErrRaced) {
			t.Errorf("stale change %+v: %v, want ErrRaced", c, err)
		}
	}
	if err := s.UpdateThread(ctx, chat.ThreadChange{ThreadID: d.Thread.ID, ExpectRev: 0, ExpectSeq: 2, Topic: "new", Message: msg,
		Retention: chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}, At: now}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.ThreadView(ctx, d.Thread.ID, d.Thread.CreatedBy)
	if v.Thread.Topic != "new" || v.Thread.Seq != 3 || v.Thread.Rev != 1 || v.Thread.Metadata != nil || v.Thread.Retention.Days != 30 {
		t.Errorf("after update: %+v", v.Thread)
	}
	if err := s.MarkThreadDeleted(ctx, d.Thread.ID, now, d.Thread.CreatedBy); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkThreadDeleted(ctx, d.Thread.ID, now.Add(time.Hour), d.Thread.CreatedBy); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	v, _ = s.ThreadView(ctx, d.Thread.ID, d.Thread.CreatedBy)
	if v.Thread.DeletedOn.UnixMilli() != now.UnixMilli() {
		t.Errorf("deletedOn = %v, want the first deletion %v", v.Thread.DeletedOn, now)
	}
	// A deleted thread takes no more changes.
	if err := s.UpdateThread(ctx, chat.ThreadChange{ThreadID: d.Thread.ID, ExpectRev: 1, Topic: "x", At: now}); !errors.Is(err, chat.ErrRaced) {
		t.Errorf("update of a deleted thread: %v", err)
	}
}

func TestIdentitiesAndKeys(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	a, b := "8:acs:r_a", "8:acs:r_b"
	for _, id := range []string{a, b} {
		if err := s.CreateIdentity(ctx, identity.Identity{ID: id, CreatedOn: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateIdentity(ctx, identity.Identity{ID: a}); err == nil {
		t.Error("creating an existing identity succeeded")
	}
	if err := s.RevokeTokens(ctx, a, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Identity(ctx, a)
	if err != nil || got == nil || got.TokenGen != 1 || got.RevokedOn.IsZero() {
		t.Errorf("after revoke: %+v, %v", got, err)
	}
	if err := s.DeleteIdentity(ctx, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeTokens(ctx, b, time.Now()); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("revoke a deleted identity: %v", err)
	}
	if err := s.RevokeTokens(ctx, "8:acs:r_none", time.Now()); !errors.Is(err, identity.ErrNoIdentity) {
		t.Errorf("revoke an unknown identity: %v", err)
	}
	if none, err := s.Identity(ctx, "8:acs:r_none"); none != nil || err != nil {
		t.Errorf("unknown identity = %+v, %v", none, err)
	}
	live, err := s.ExistingUsers(ctx, []string{a, b, "8:acs:r_none", a})
	if err != nil || len(live) != 1 || !live[a] {
		t.Errorf("ExistingUsers = %v, %v", live, err)
	}

	pub, _, _ := ed25519.GenerateKey(nil)
	for i := 0; i < 2; i++ {
		if err := s.PublishKey(ctx, "kid1", pub); err != nil {
			t.Fatalf("publish #%d: %v", i+1, err)
		}
	}
	k, err := s.PublicKey(ctx, "kid1")
	if err != nil || !k.Equal(pub) {
		t.Errorf("PublicKey = %x, %v", k, err)
	}
	if k, err := s.PublicKey(ctx, "nope"); k != nil || err != nil {
		t.Errorf("unknown key = %x, %v", k, err)
	}
}

func TestRequestLog(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	s := newStore(t, nil)
	s.Now = func() time.Time { return now }
	rec := chat.RequestRecord{Hash: "h1", ThreadID: "19:x@thread.v2", Created: now, Expires: now.Add(time.Hour)}
	if prior, err := s.Claim(ctx, "k", rec); prior != nil || err != nil {
		t.Fatalf("first claim: %+v, %v", prior, err)
	}
	prior, err := s.Claim(ctx, "k", chat.RequestRecord{Hash: "h2", ThreadID: "other", Expires: now.Add(time.Hour)})
	if err != nil || prior == nil || prior.Hash != "h1" || prior.ThreadID != rec.ThreadID || prior.Done {
		t.Fatalf("second claim: %+v, %v", prior, err)
	}
	if err := s.Complete(ctx, "k", []byte(`{"ok":1}`)); err != nil {
		t.Fatal(err)
	}
	prior, _ = s.Claim(ctx, "k", rec)
	if prior == nil || !prior.Done || string(prior.Result) != `{"ok":1}` {
		t.Errorf("after complete: %+v", prior)
	}
	// An expired record is replaced (TTL deletion is lazy; reads check expiry).
	now = now.Add(2 * time.Hour)
	if prior, err := s.Claim(ctx, "k", chat.RequestRecord{Hash: "h3", Expires: now.Add(time.Hour)}); prior != nil || err != nil {
		t.Errorf("claim after expiry: %+v, %v", prior, err)
	}
}

// flaky wraps the real client: BatchWriteItem returns half of each batch as
// unprocessed the first time, and every call can be made to throttle.
type flaky struct {
	store.DB
	unprocessed atomic.Int64
	throttle    atomic.Bool
}

func (f *flaky) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	if f.throttle.Load() {
		return nil, &smithy.GenericAPIError{Code: "ProvisionedThroughputExceededException", Message: "slow down"}
	}
	for table, reqs := range in.RequestItems {
		if len(reqs) > 1 {
			half := len(reqs) / 2
			out, err := f.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs[:half]}}, o...)
			if err != nil {
				return nil, err
			}
			f.unprocessed.Add(int64(len(reqs) - half))
			out.UnprocessedItems = map[string][]types.WriteRequest{table: reqs[half:]}
			return out, nil
		}
	}
	return f.DB.BatchWriteItem(ctx, in, o...)
}

func TestUnprocessedItemsAreRetriedAndThrottlingIsA503(t *testing.T) {
	ctx := context.Background()
	var f *flaky
	s := newStore(t, func(db store.DB) store.DB { f = &flaky{DB: db}; return f })
	d := draft(60)
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	if f.unprocessed.Load() == 0 {
		t.Fatal("the fault was never injected")
	}
	for _, p := range d.Participants {
		v, err := s.ThreadView(ctx, d.Thread.ID, p.UserID)
		if err != nil || v.Participant == nil {
			t.Fatalf("participant %s lost after unprocessed retries: %v", p.UserID, err)
		}
	}
	f.throttle.Store(true)
	err := s.CreateThread(ctx, draft(3))
	if fe, ok := fault.As(err); !ok || fe.Kind != fault.Unavailable || fe.RetryAfter <= 0 {
		t.Errorf("throttled write: %v, want a 503 fault with Retry-After", err)
	}
}

func TestRosterTransactionsKeepTheirInvariants(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	d := draft(3)
	d.Thread.Members = 3
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	newP := func(id string) chat.Participant { return chat.Participant{UserID: id, JoinedOn: now} }
	msg := func(seq int64) chat.Message {
		return chat.Message{Seq: seq, Type: chat.TypeParticipantAdded, InitiatorID: d.Thread.CreatedBy, CreatedOn: now, Version: now.UnixMilli()}
	}
	// The member count's condition refuses passing the limit, even when the
	// caller's own count was stale.
	err := s.AddParticipants(ctx, chat.RosterChange{ThreadID: d.Thread.ID, Add: []chat.Participant{newP("8:acs:r_x"), newP("8:acs:r_y")}, Message: msg(3), MaxMembers: 4})
	if !errors.Is(err, chat.ErrThreadFull) {
		t.Errorf("adding past the limit: %v, want ErrThreadFull", err)
	}
	// A user who is already a member makes the add lose the race.
	err = s.AddParticipants(ctx, chat.RosterChange{ThreadID: d.Thread.ID, Add: []chat.Participant{newP(d.Participants[1].UserID)}, Message: msg(3), MaxMembers: 250})
	if !errors.Is(err, chat.ErrRaced) {
		t.Errorf("adding a current member: %v, want ErrRaced", err)
	}
	// Nothing of either refused add was written.
	tt, ps, err := s.Roster(ctx, d.Thread.ID)
	if err != nil || tt.Members != 3 || len(ps) != 3 {
		t.Fatalf("roster after refused adds: %+v %d %v", tt, len(ps), err)
	}
	if err := s.AddParticipants(ctx, chat.RosterChange{ThreadID: d.Thread.ID, Add: []chat.Participant{newP("8:acs:r_x")}, Message: msg(3), MaxMembers: 4}); err != nil {
		t.Fatal(err)
	}
	rm := chat.RosterChange{ThreadID: d.Thread.ID, Remove: "8:acs:r_x", At: now, Message: chat.Message{Seq: 4, Type: chat.TypeParticipantRemoved, CreatedOn: now}}
	if err := s.RemoveParticipant(ctx, rm); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveParticipant(ctx, rm); !errors.Is(err, chat.ErrRaced) {
		t.Errorf("removing twice: %v, want ErrRaced", err)
	}
	tt, ps, _ = s.Roster(ctx, d.Thread.ID)
	if tt.Members != 3 || len(ps) != 4 {
		t.Errorf("after add and remove: members %d, items %d", tt.Members, len(ps))
	}
	for _, p := range ps {
		if p.UserID == "8:acs:r_x" && (p.Current() || p.RemovedSeq != 4) {
			t.Errorf("removed participant = %+v", p)
		}
	}
	if err := s.MarkThreadDeleted(ctx, d.Thread.ID, now, d.Thread.CreatedBy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextSeq(ctx, d.Thread.ID, now, chat.Quota{}); !errors.Is(err, chat.ErrThreadGone) {
		t.Errorf("NextSeq on a deleted thread: %v", err)
	}
	if err := s.AddParticipants(ctx, chat.RosterChange{ThreadID: d.Thread.ID, Add: []chat.Participant{newP("8:acs:r_z")}, Message: msg(5), MaxMembers: 250}); !errors.Is(err, chat.ErrThreadGone) {
		t.Errorf("adding to a deleted thread: %v", err)
	}
}

func TestMessagesRangeAndReceipts(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	d := draft(1)
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(time.Now().UnixMilli()).UTC()
	for i := 0; i < 30; i++ {
		th, err := s.NextSeq(ctx, d.Thread.ID, base, chat.Quota{})
		if err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Hour)
		if err := s.PutMessage(ctx, d.Thread.ID, chat.Message{Seq: th.Seq, Type: chat.TypeText, Body: fmt.Sprint(i), CreatedOn: at, Version: at.UnixMilli()}, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	// seq 3..32 hold messages 0..29, an hour apart.
	cases := []struct {
		name  string
		r     chat.MessageRange
		first int64
		n     int
	}{
		{"newest five", chat.MessageRange{Limit: 5}, 32, 5},
		{"before 10", chat.MessageRange{Before: 10, Limit: 100}, 9, 9},
		{"up to a removal at 20", chat.MessageRange{MaxSeq: 20, Limit: 3}, 20, 3},
		{"since the 25th hour", chat.MessageRange{Since: base.Add(25 * time.Hour), Limit: 100}, 32, 5},
		{"since and before", chat.MessageRange{Since: base.Add(25 * time.Hour), Before: 30, Limit: 100}, 29, 2},
	}
	for _, c := range cases {
		got, err := s.Messages(ctx, d.Thread.ID, c.r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != c.n || (c.n > 0 && got[0].Seq != c.first) {
			t.Errorf("%s: %d messages from %v, want %d from %d", c.name, len(got), seqsOf(got), c.n, c.first)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Seq >= got[i-1].Seq {
				t.Errorf("%s: not newest first: %v", c.name, seqsOf(got))
			}
		}
	}
	// Receipts only move forward.
	for _, seq := range []int64{10, 5, 12} {
		if err := s.PutReceipt(ctx, d.Thread.ID, chat.Receipt{UserID: "8:acs:r_u", Seq: seq, ReadOn: base}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Receipts(ctx, d.Thread.ID)
	if err != nil || len(rs) != 1 || rs[0].Seq != 12 {
		t.Errorf("receipts = %+v, %v", rs, err)
	}
}

func seqsOf(ms []chat.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// TestFeedAppendManyEntries: a dispatcher appends a whole stream batch at
// once; its chunks go in parallel, unprocessed items are retried, and an
// entry repeated in the batch does not fail the call.
func TestFeedAppendManyEntries(t *testing.T) {
	ctx := context.Background()
	names, err := local.EnsureTables(ctx, client, tpl, fmt.Sprintf("s%d_", seq.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{DB: client}
	r := &store.Realtime{DB: f, Connections: names["ConnectionsTable"], Feed: names["FeedTable"]}
	now := time.UnixMilli(time.Now().UnixMilli())
	const users, events = 30, 10
	var entries []realtime.FeedEntry
	for e := 0; e < events; e++ {
		for u := 0; u < users; u++ {
			entries = append(entries, realtime.FeedEntry{
				UserID: fmt.Sprintf("8:acs:r_%d", u), Pos: now.UnixMilli() + int64(e), EventID: fmt.Sprintf("e%d", e),
				Type: realtime.TypeMessageReceived, ThreadID: "t", At: now, Seq: int64(e + 1), Expires: now.Add(time.Hour),
			})
		}
	}
	entries = append([]realtime.FeedEntry{entries[3], entries[10]}, entries...) // repeats, in the same chunk as the originals
	if err := r.Append(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if f.unprocessed.Load() == 0 {
		t.Fatal("the fault was never injected")
	}
	for u := 0; u < users; u++ {
		got, err := r.Read(ctx, fmt.Sprintf("8:acs:r_%d", u), realtime.FeedKey{}, 100)
		if err != nil || len(got) != events {
			t.Fatalf("user %d: %d entries, %v; want %d", u, len(got), err, events)
		}
	}
	f.throttle.Store(true)
	if err := r.Append(ctx, entries); err == nil {
		t.Error("a throttled append succeeded")
	}
}
