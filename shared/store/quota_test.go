package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/ratelimit"
	"github.com/threadline/threadline/shared/store"
)

// ACS's limit on send, update and delete message: 10 per 10 s, 30 a minute.
var messagesQuota = chat.Quota{Name: "m", Windows: []ratelimit.Window{
	{Span: 10 * time.Second, Max: 10}, {Span: time.Minute, Max: 30},
}}

// minuteStart is the start of the current minute: every window of the
// tests below is computed from the times passed in, not from the clock.
func minuteStart() time.Time { return time.Now().Truncate(time.Minute) }

// twin is a second "process": the same table, its own cache.
func twin(s *store.Store) *store.Store { return &store.Store{DB: s.DB, Table: s.Table} }

func wantQuotaExceeded(t *testing.T, err error, wait time.Duration) {
	t.Helper()
	var qe *chat.QuotaExceeded
	if !errors.As(err, &qe) {
		t.Fatalf("err = %v, want QuotaExceeded", err)
	}
	if qe.Wait != wait {
		t.Errorf("wait %v, want %v", qe.Wait, wait)
	}
}

// TestQuotaIsExactAcrossProcesses: two stores with separate caches hammer
// one thread. In each 10 s window exactly 10 sends get a sequence id until
// the minute's 30 are spent; the rest are refused with the time to the end
// of the full window, and no refused send consumes a sequence id.
func TestQuotaIsExactAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	a := newStore(t, nil)
	procs := []*store.Store{a, twin(a)}
	d := draft(1)
	if err := a.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	base := minuteStart()
	var seqs []int64
	windows := []struct {
		at   time.Duration // into the minute
		ok   int
		wait time.Duration // of every refusal
	}{
		{1 * time.Second, 10, 9 * time.Second},
		{12 * time.Second, 10, 8 * time.Second},
		{29 * time.Second, 10, 31 * time.Second}, // its 10 fill the minute too
		{30 * time.Second, 0, 30 * time.Second},  // the minute is full
		{55 * time.Second, 0, 5 * time.Second},
		{61 * time.Second, 10, 9 * time.Second}, // a new minute
	}
	for _, w := range windows {
		at := base.Add(w.at)
		var mu sync.Mutex
		var wg sync.WaitGroup
		ok := 0
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(s *store.Store) {
				defer wg.Done()
				for i := 0; i < 6; i++ {
					th, err := s.NextSeq(ctx, d.Thread.ID, at, messagesQuota)
					var qe *chat.QuotaExceeded
					mu.Lock()
					switch {
					case err == nil:
						ok++
						seqs = append(seqs, th.Seq)
					case errors.As(err, &qe):
						if qe.Wait != w.wait {
							t.Errorf("at %v: refused with wait %v, want %v", w.at, qe.Wait, w.wait)
						}
					default:
						t.Errorf("at %v: %v", w.at, err)
					}
					mu.Unlock()
				}
			}(procs[g%2])
		}
		wg.Wait()
		if ok != w.ok {
			t.Errorf("at %v: %d of 24 admitted, want exactly %d", w.at, ok, w.ok)
		}
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != int64(3+i) {
			t.Fatalf("sequence ids %v are not gapless from 3", seqs)
		}
	}
	v, err := a.ThreadView(ctx, d.Thread.ID, d.Participants[0].UserID)
	if err != nil || v.Thread.Seq != int64(2+len(seqs)) {
		t.Errorf("thread seq %+v, %v; want %d", v.Thread, err, 2+len(seqs))
	}
}

// TestQuotaCostsNoExtraRequest counts DynamoDB requests: a counted NextSeq
// is one UpdateItem when the guess is right (a quiet thread, or a window
// this process saw), two when another process moved the window on.
func TestQuotaCostsNoExtraRequest(t *testing.T) {
	ctx := context.Background()
	a := newStore(t, nil)
	b := twin(a)
	d := draft(1)
	if err := a.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	base := minuteStart()
	requests := func(s *store.Store, at time.Duration) (int, error) {
		ctx, rec := obs.WithRecorder(ctx)
		_, err := s.NextSeq(ctx, d.Thread.ID, base.Add(at), messagesQuota)
		return int(rec.Value(obs.DynamoDBRequests)), err
	}
	steps := []struct {
		name     string
		s        *store.Store
		at       time.Duration
		requests int
	}{
		{"a quiet thread, nothing cached", a, time.Second, 1},
		{"the same process, same window", a, 2 * time.Second, 1},
		{"another process that never saw the thread guesses a new window", b, 3 * time.Second, 2},
		{"which it now knows", b, 4 * time.Second, 1},
		{"the first process saw it too", a, 5 * time.Second, 1},
	}
	for _, st := range steps {
		n, err := requests(st.s, st.at)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if n != st.requests {
			t.Errorf("%s: %d DynamoDB requests, want %d", st.name, n, st.requests)
		}
	}
	// a knows windows (10 s #0, minute #0). At 11 s it guesses a new 10 s
	// window and the same minute: both right, one request.
	if n, err := requests(a, 11*time.Second); err != nil || n != 1 {
		t.Errorf("new 10 s window: %d requests, %v; want 1", n, err)
	}
	// b last saw 10 s window #0: at 12 s it guesses "new", wrong since a
	// started it, and corrects itself with a second request.
	if n, err := requests(b, 12*time.Second); err != nil || n != 2 {
		t.Errorf("stale process: %d requests, %v; want 2", n, err)
	}
	// A read of the thread (every write path reads it first, except send)
	// refreshes the guess: no wrong guess after it.
	c := twin(a)
	if _, err := c.ThreadView(ctx, d.Thread.ID, d.Participants[0].UserID); err != nil {
		t.Fatal(err)
	}
	if n, err := requests(c, 13*time.Second); err != nil || n != 1 {
		t.Errorf("after a read: %d requests, %v; want 1", n, err)
	}
	// Fill the window; a refusal known in advance is one request too.
	for i := 0; i < 10-3; i++ {
		if _, err := requests(a, 14*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	n, err := requests(a, 15*time.Second)
	wantQuotaExceeded(t, err, 5*time.Second)
	if n != 1 {
		t.Errorf("refusal: %d requests, want 1", n)
	}
	// The send path as a whole: SendCheck, NextSeq, PutMessage.
	ctx2, rec := obs.WithRecorder(ctx)
	if _, _, err := a.SendCheck(ctx2, d.Thread.ID, d.Participants[0].UserID, ""); err != nil {
		t.Fatal(err)
	}
	th, err := a.NextSeq(ctx2, d.Thread.ID, base.Add(21*time.Second), messagesQuota)
	if err != nil {
		t.Fatal(err)
	}
	at := base.Add(21 * time.Second)
	if err := a.PutMessage(ctx2, d.Thread.ID, chat.Message{Seq: th.Seq, Type: chat.TypeText, Body: "x", CreatedOn: at, Version: at.UnixMilli()}, "", nil); err != nil {
		t.Fatal(err)
	}
	if n := rec.Value(obs.DynamoDBRequests); n != 3 {
		t.Errorf("send path: %v DynamoDB requests, want 3", n)
	}
}

// TestQuotasAreIndependent: each quota has its own counters on the thread.
func TestQuotasAreIndependent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, nil)
	d := draft(1)
	if err := s.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	at := minuteStart().Add(time.Second)
	one := func(name string) chat.Quota {
		return chat.Quota{Name: name, Windows: []ratelimit.Window{{Span: 10 * time.Second, Max: 1}}}
	}
	if _, err := s.NextSeq(ctx, d.Thread.ID, at, one("m")); err != nil {
		t.Fatal(err)
	}
	_, err := s.NextSeq(ctx, d.Thread.ID, at, one("m"))
	wantQuotaExceeded(t, err, 9*time.Second)
	if _, err := s.NextSeq(ctx, d.Thread.ID, at, one("p")); err != nil {
		t.Errorf("another quota: %v", err)
	}
	if _, err := s.NextSeq(ctx, d.Thread.ID, at, chat.Quota{}); err != nil {
		t.Errorf("no quota: %v", err)
	}
	// A deleted thread is gone, whatever its counters say.
	if err := s.MarkThreadDeleted(ctx, d.Thread.ID, at, d.Thread.CreatedBy); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NextSeq(ctx, d.Thread.ID, at, one("m")); !errors.Is(err, chat.ErrThreadGone) {
		t.Errorf("deleted thread: %v, want ErrThreadGone", err)
	}
	if _, err := s.NextSeq(ctx, chat.NewThreadID(at), at, one("m")); !errors.Is(err, chat.ErrThreadGone) {
		t.Errorf("missing thread: %v, want ErrThreadGone", err)
	}
}

// TestUpdateThreadQuota: update thread's 5 per 10 s, counted in the
// property update itself (both the plain update and the transaction with a
// topicUpdated message), exact across processes, refusals writing nothing.
func TestUpdateThreadQuota(t *testing.T) {
	ctx := context.Background()
	a := newStore(t, nil)
	b := twin(a)
	d := draft(1)
	if err := a.CreateThread(ctx, d); err != nil {
		t.Fatal(err)
	}
	q := chat.Quota{Name: "t", Windows: []ratelimit.Window{{Span: 10 * time.Second, Max: 5}}}
	at := minuteStart().Add(2 * time.Second)
	rev, seq := int64(0), int64(2)
	update := func(s *store.Store, withMessage bool) error {
		c := chat.ThreadChange{ThreadID: d.Thread.ID, ExpectRev: rev, ExpectSeq: seq, Topic: "t", At: at, Quota: q}
		if withMessage {
			c.Message = &chat.Message{Seq: seq + 1, Type: chat.TypeTopicUpdated, Topic: "t", CreatedOn: at, Version: at.UnixMilli()}
		}
		err := s.UpdateThread(ctx, c)
		if err == nil {
			rev++
			if withMessage {
				seq++
			}
		}
		return err
	}
	// Alternate processes and both write paths: every other call guesses
	// wrong first and must still count exactly once.
	for i := 0; i < 5; i++ {
		if err := update([]*store.Store{a, b}[i%2], i%3 == 0); err != nil {
			t.Fatalf("update %d: %v", i+1, err)
		}
	}
	for i, withMessage := range []bool{false, true} {
		wantQuotaExceeded(t, update([]*store.Store{a, b}[i], withMessage), 8*time.Second)
	}
	v, err := a.ThreadView(ctx, d.Thread.ID, d.Participants[0].UserID)
	if err != nil || v.Thread.Rev != 5 || v.Thread.Seq != seq {
		t.Fatalf("after refusals: rev %d seq %d (%v), want 5 and %d", v.Thread.Rev, v.Thread.Seq, err, seq)
	}
	// A stale revision is still a lost race, not a refusal, even when full.
	rev--
	if err := update(a, false); !errors.Is(err, chat.ErrRaced) {
		t.Errorf("stale revision: %v, want ErrRaced", err)
	}
	rev++
	at = at.Add(10 * time.Second)
	if err := update(b, true); err != nil {
		t.Errorf("next window: %v", err)
	}
}
