package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/partner"
)

const testRetention = 24 * time.Hour

type dispatchRig struct {
	clock   *testClock
	roster  *fakeRoster
	feed    *fakeFeed
	conns   *fakeConns
	pusher  *fakePusher
	metrics *fakeMetrics
	log     *opLog
	d       *Dispatcher
}

// newDispatchRig serves occThread with occRoster, the clock at now.
func newDispatchRig(now time.Time) *dispatchRig {
	r := &dispatchRig{clock: newTestClock(now), roster: newFakeRoster(), feed: newFakeFeed(), pusher: newFakePusher(), metrics: &fakeMetrics{}, log: &opLog{}}
	r.conns = newFakeConns(r.clock)
	r.feed.log, r.conns.log, r.pusher.log = r.log, r.log, r.log
	th := occThreadState()
	r.roster.set(&th, occRoster()...)
	r.d = &Dispatcher{Roster: r.roster, Feed: r.feed, Connections: r.conns, Pusher: r.pusher, Retention: testRetention, Concurrency: 4, Now: r.clock.Now, Metrics: r.metrics}
	return r
}

func (r *dispatchRig) connect(user string, conns ...string) {
	for _, c := range conns {
		_ = r.conns.Add(context.Background(), user, c, r.clock.Now().Add(time.Hour))
	}
}

func (r *dispatchRig) dispatch(t *testing.T, changes ...chat.Change) {
	t.Helper()
	n, err := r.d.Dispatch(context.Background(), changes)
	if err != nil || n != len(changes) {
		t.Fatalf("Dispatch = %d, %v; want %d, nil", n, err, len(changes))
	}
}

func occurrenceOf(t *testing.T, ch chat.Change) Occurrence {
	t.Helper()
	th := occThreadState()
	os := occurrences(ch, &th, occRoster())
	if len(os) != 1 {
		t.Fatalf("%d occurrences", len(os))
	}
	return os[0]
}

func TestDispatchFeedBeforePush(t *testing.T) {
	m5 := text5()
	r := newDispatchRig(m5.CreatedOn)
	r.connect(uAlice, "a1", "a2")
	r.connect(uBob, "b1")
	r.connect(uCarol, "c1")
	r.connect(uErin, "e1")
	th := occThreadState()
	up := th
	up.Topic, up.Rev, up.UpdatedOn = "x", 2, m5.CreatedOn
	changes := []chat.Change{
		msgChange(m5, nil),
		{ThreadID: occThread, Receipt: &chat.Receipt{UserID: uBob, Seq: 5, ReadOn: m5.CreatedOn, MessageCreatedOn: m5.CreatedOn}},
		{ThreadID: occThread, Thread: &up, OldThread: &th},
	}
	r.dispatch(t, changes...)

	ops := r.log.all()
	for _, ch := range changes {
		o := occurrenceOf(t, ch)
		firstPush, pushes := -1, 0
		for i, op := range ops {
			if strings.HasPrefix(op, "push ") && strings.HasSuffix(op, " "+o.ID) {
				pushes++
				if firstPush < 0 {
					firstPush = i
				}
			}
		}
		if pushes == 0 {
			t.Fatalf("%s: never pushed; ops %v", o.Type, ops)
		}
		written := map[string]bool{}
		for i, op := range ops {
			f := strings.Fields(op)
			if f[0] != "append" || f[1] != o.ID {
				continue
			}
			if i > firstPush {
				t.Errorf("%s: feed append at op %d after the first push at %d: %v", o.Type, i, firstPush, ops)
			}
			for _, u := range strings.Split(f[2], ",") {
				written[u] = true
			}
		}
		for _, u := range o.Recipients {
			if !written[u] {
				t.Errorf("%s: %s not in the feed before the push; ops %v", o.Type, u, ops)
			}
		}
	}
}

func TestDispatchFeedEntries(t *testing.T) {
	m5 := text5()
	r := newDispatchRig(m5.CreatedOn)
	th := occThreadState()
	up := th
	up.Topic, up.Rev, up.UpdatedOn, up.UpdatedBy = "x<y", 2, m5.CreatedOn, uBob
	r.dispatch(t, msgChange(m5, nil), chat.Change{ThreadID: occThread, Thread: &up, OldThread: &th})

	calls := r.feed.appendCalls()
	if len(calls) != 1 {
		t.Fatalf("%d appends, want 1 for the batch", len(calls))
	}
	msg, upd := occurrenceOf(t, msgChange(m5, nil)), occurrenceOf(t, chat.Change{ThreadID: occThread, Thread: &up, OldThread: &th})
	if n := len(calls[0]); n != len(msg.Recipients)+len(upd.Recipients) {
		t.Errorf("the append has %d entries, want %d", n, len(msg.Recipients)+len(upd.Recipients))
	}
	pos := m5.CreatedOn.UnixMilli()
	for _, want := range []Occurrence{msg, upd} {
		var users []string
		for _, e := range calls[0] {
			if e.EventID != want.ID {
				continue
			}
			users = append(users, e.UserID)
			if e.EventID != want.ID || e.Type != want.Type || e.ThreadID != occThread || !e.At.Equal(want.At) || e.Pos != pos {
				t.Errorf("%s entry = %+v", want.Type, e)
			}
			if !e.Expires.Equal(time.UnixMilli(pos).Add(testRetention)) {
				t.Errorf("%s expires %v, want %v", want.Type, e.Expires, time.UnixMilli(pos).Add(testRetention))
			}
			if isMessageEvent(want.Type) {
				if e.Seq != 5 || e.Data != nil {
					t.Errorf("message entry: Seq %d, Data %s; want a pointer to seq 5 and no data", e.Seq, e.Data)
				}
				continue
			}
			if e.Seq != 0 || len(e.Data) == 0 {
				t.Fatalf("thread entry: Seq %d, Data %s; want data and no seq", e.Seq, e.Data)
			}
			var d map[string]any
			if err := json.Unmarshal(e.Data, &d); err != nil {
				t.Fatalf("entry data %s: %v", e.Data, err)
			}
			if props, _ := d["properties"].(map[string]any); props["topic"] != "x<y" || rawID(d["updatedBy"]) != uBob {
				t.Errorf("entry data = %s", e.Data)
			}
			if _, ok := d["recipient"]; ok {
				t.Errorf("stored data has a recipient: %s", e.Data)
			}
		}
		if !slices.Equal(sortedCopy(users), sortedCopy(want.Recipients)) {
			t.Errorf("%s written for %v, want %v", want.Type, users, want.Recipients)
		}
	}
}

func TestDispatchPosition(t *testing.T) {
	at := occT0.Add(123456789 * time.Nanosecond)
	tests := []struct {
		name    string
		created time.Time
		age     time.Duration // of the change when dispatched
		ownTime bool          // positioned at the change's time, else now
	}{
		{"just now", at, 0, true},
		{"half a second old", at, 500 * time.Millisecond, true},
		{"exactly fresh", at, time.Second, true},
		{"just too old", at, time.Second + time.Millisecond, false},
		{"a backlog", at, 5 * time.Minute, false},
		{"no time", time.Time{}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := text5()
			m.CreatedOn = tc.created
			now := at.Add(tc.age)
			r := newDispatchRig(now)
			r.connect(uAlice, "a1")
			r.dispatch(t, msgChange(m, nil))
			want := now.UnixMilli()
			if tc.ownTime {
				want = tc.created.UnixMilli()
			}
			calls := r.feed.appendCalls()
			if len(calls) != 1 {
				t.Fatalf("%d appends, want 1", len(calls))
			}
			for _, e := range calls[0] {
				if e.Pos != want {
					t.Errorf("%s at %d, want %d (change at %v, now %v)", e.UserID, e.Pos, want, tc.created, now)
				}
				if !e.Expires.Equal(time.UnixMilli(want).Add(testRetention)) {
					t.Errorf("expires %v", e.Expires)
				}
			}
			frames := r.pusher.got("a1")
			if len(frames) != 1 {
				t.Fatalf("a1 got %d frames", len(frames))
			}
			k, live := mustDecodeCursor(t, decodeFrame(t, frames[0]).Cursor)
			if k.Pos != want || !live || k.EventID != calls[0][0].EventID {
				t.Errorf("pushed cursor %+v live=%v, want pos %d, live, id %s", k, live, want, calls[0][0].EventID)
			}
		})
	}
}

func TestDispatchSlowFeedWrite(t *testing.T) {
	tests := []struct {
		name    string
		age     time.Duration // of the change when dispatched
		delay   time.Duration // the first append's duration
		rewrite bool
	}{
		{"fresh, quick", 0, 0, false},
		{"fresh, slowish", 0, 900 * time.Millisecond, false},
		{"fresh, slow", 0, 1200 * time.Millisecond, true},
		{"fresh but not new, slowish", 800 * time.Millisecond, 300 * time.Millisecond, true},
		{"old, quick", 5 * time.Second, 500 * time.Millisecond, false},
		{"old, slow", 5 * time.Second, 1100 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := text5()
			start := m.CreatedOn.Add(tc.age)
			r := newDispatchRig(start)
			r.connect(uBob, "b1")
			r.feed.hook = func(call int, _ []FeedEntry) error {
				if call == 0 {
					r.clock.Advance(tc.delay)
				}
				return nil
			}
			r.dispatch(t, msgChange(m, nil))
			first := m.CreatedOn.UnixMilli()
			if tc.age > fresh {
				first = start.UnixMilli()
			}
			calls := r.feed.appendCalls()
			wantCalls := 1
			if tc.rewrite {
				wantCalls = 2
			}
			if len(calls) != wantCalls {
				t.Fatalf("%d appends, want %d", len(calls), wantCalls)
			}
			id := calls[0][0].EventID
			lastPos := first
			for i, c := range calls {
				want := first
				if i == 1 {
					want = start.Add(tc.delay).UnixMilli()
				}
				lastPos = want
				if len(c) != 3 {
					t.Errorf("append %d has %d entries, want 3", i, len(c))
				}
				for _, e := range c {
					if e.Pos != want || e.EventID != id {
						t.Errorf("append %d: %s at %d id %s; want %d, %s", i, e.UserID, e.Pos, e.EventID, want, id)
					}
				}
			}
			if got := r.feed.stored(uBob); len(got) != wantCalls {
				t.Errorf("bob's feed has %d entries, want %d", len(got), wantCalls)
			}
			frames := r.pusher.got("b1")
			if len(frames) != 1 {
				t.Fatalf("b1 got %d frames, want 1", len(frames))
			}
			if k, _ := mustDecodeCursor(t, decodeFrame(t, frames[0]).Cursor); k.Pos != lastPos {
				t.Errorf("pushed cursor at %d, want the last position %d", k.Pos, lastPos)
			}
		})
	}
}

func TestDispatchPushes(t *testing.T) {
	m5 := text5()
	r := newDispatchRig(m5.CreatedOn)
	r.connect(uAlice, "a1", "a2")
	r.connect(uBob, "b1")
	r.connect(uDave, "d1") // removed before the message
	r.connect(uErin, "e1") // shares history from after it
	r.dispatch(t, msgChange(m5, nil))
	o := occurrenceOf(t, msgChange(m5, nil))

	if lk := r.conns.lookups; len(lk) != 1 || !slices.Equal(sortedCopy(lk[0]), sortedCopy(o.Recipients)) {
		t.Errorf("lookups = %v, want one for %v", lk, o.Recipients)
	}
	for conn, user := range map[string]string{"a1": uAlice, "a2": uAlice, "b1": uBob} {
		frames := r.pusher.got(conn)
		if len(frames) != 1 {
			t.Errorf("%s got %d frames, want 1", conn, len(frames))
			continue
		}
		f := decodeFrame(t, frames[0])
		if f.ID != o.ID || f.Type != TypeMessageReceived || f.ThreadID != occThread || f.OccurredOn != "2026-03-01T10:30:00.0000000Z" {
			t.Errorf("%s frame = %s", conn, frames[0])
		}
		if rawID(f.Data["recipient"]) != user {
			t.Errorf("%s: recipient %v, want %s", conn, f.Data["recipient"], user)
		}
		if f.Data["message"] != m5.Body || f.Data["sequenceId"] != "5" || rawID(f.Data["sender"]) != uAlice {
			t.Errorf("%s data = %v", conn, f.Data)
		}
		k, live := mustDecodeCursor(t, f.Cursor)
		if k != (FeedKey{Pos: m5.CreatedOn.UnixMilli(), EventID: o.ID}) || !live {
			t.Errorf("%s cursor = %+v live %v", conn, k, live)
		}
	}
	for _, conn := range []string{"d1", "e1"} {
		if n := len(r.pusher.got(conn)); n != 0 {
			t.Errorf("%s (not a recipient) got %d frames", conn, n)
		}
	}
	if r.metrics.get("PushesDelivered") != 3 || r.metrics.get("FeedWrites") != 3 || r.metrics.get("FanoutRecipients") != 3 {
		t.Errorf("metrics = %v", r.metrics.counts)
	}
}

func TestDispatchPushFailures(t *testing.T) {
	m5 := text5()
	r := newDispatchRig(m5.CreatedOn)
	r.connect(uAlice, "a1", "a2", "a3")
	r.connect(uBob, "b1")
	r.connect(uCarol, "c1")
	r.pusher.gone["a1"] = true
	r.pusher.gone["c1"] = true
	r.pusher.fail["a2"] = errors.New("throttled")
	r.dispatch(t, msgChange(m5, nil))

	if got := sortedCopy(r.conns.removals()); !slices.Equal(got, []string{uAlice + "/a1", uCarol + "/c1"}) {
		t.Errorf("removed %v, want alice/a1 and carol/c1", got)
	}
	for name, want := range map[string]float64{"PushesDelivered": 2, "PushesGone": 2, "PushesFailed": 1, "FeedWrites": 3, "FanoutRecipients": 3} {
		if got := r.metrics.get(name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if len(r.pusher.got("a3")) != 1 || len(r.pusher.got("b1")) != 1 {
		t.Errorf("a3, b1 got %d, %d frames", len(r.pusher.got("a3")), len(r.pusher.got("b1")))
	}

	// The next event is not pushed to the forgotten connections.
	m6 := text5()
	m6.Seq = 6
	r.dispatch(t, msgChange(m6, nil))
	if r.pusher.attempts["a1"] != 1 || r.pusher.attempts["c1"] != 1 || r.pusher.attempts["a2"] != 2 {
		t.Errorf("push attempts = %v", r.pusher.attempts)
	}
}

func TestDispatchLargeFrame(t *testing.T) {
	// Measure a frame, then size bodies so the frame is exactly at the limit
	// and one byte over it.
	frameLen := func(body string) (int, []byte) {
		m := text5()
		m.Body = body
		r := newDispatchRig(m.CreatedOn)
		r.connect(uBob, "b1")
		r.dispatch(t, msgChange(m, nil))
		fs := r.pusher.got("b1")
		if len(fs) != 1 {
			t.Fatalf("b1 got %d frames", len(fs))
		}
		if e := r.feed.stored(uBob); len(e) != 1 || e[0].Seq != 5 || e[0].Data != nil {
			t.Errorf("feed entry = %+v, want a pointer", e)
		}
		return len(fs[0]), fs[0]
	}
	base, _ := frameLen("x")
	atLimit := strings.Repeat("x", 1+MaxPushFrame-base)
	if n, b := frameLen(atLimit); n != MaxPushFrame || decodeFrame(t, b).Data["message"] != atLimit {
		t.Errorf("a frame at the limit: %d bytes, message kept %v", n, decodeFrame(t, b).Data["message"] == atLimit)
	}
	tests := map[string]string{
		"one byte over": atLimit + "x",
		"escaping":      strings.Repeat(`"`, 20*1024), // 20 KB of text, 40 KB of JSON
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			n, b := frameLen(body)
			if n > MaxPushFrame {
				t.Errorf("pushed %d bytes", n)
			}
			f := decodeFrame(t, b)
			if _, has := f.Data["message"]; has {
				t.Errorf("the message is still there")
			}
			if f.Data["contentOmitted"] != true {
				t.Errorf("contentOmitted = %v", f.Data["contentOmitted"])
			}
			if f.Data["sequenceId"] != "5" || f.Data["id"] != chat.MessageID(occThread, 5) || rawID(f.Data["recipient"]) != uBob || f.ID == "" || f.Cursor == "" {
				t.Errorf("frame = %s", b)
			}
			if md, _ := f.Data["metadata"].(map[string]any); md["m"] != "1" {
				t.Errorf("metadata = %v", f.Data["metadata"])
			}
		})
	}
	_, small := frameLen("hi")
	if f := decodeFrame(t, small); f.Data["message"] != "hi" || f.Data["contentOmitted"] != nil {
		t.Errorf("small frame = %s", small)
	}
}

// TestDispatchErrors: Dispatch returns the first change it could not
// deliver; every change before it is in the feed, and a thread's changes
// after its failure are not delivered out of order.
func TestDispatchErrors(t *testing.T) {
	msg := func(seq int64) chat.Message {
		m := text5()
		m.Seq = seq
		return m
	}
	boom, bang := errors.New("boom"), errors.New("bang")
	other := chat.NewThreadID(occT0.Add(time.Minute))
	m7 := msg(7)
	// 0: A5, 1: A6, 2: B7, 3: A7, 4: B8
	changes := []chat.Change{msgChange(msg(5), nil), msgChange(msg(6), nil), {ThreadID: other, Message: &m7}, msgChange(msg(7), nil), {ThreadID: other, Message: ptr(msg(8))}}
	ids := make([]string, len(changes))
	for i, ch := range changes {
		ids[i] = occurrenceOf(t, ch).ID
	}
	rig := func(errs map[string]error) *dispatchRig {
		r := newDispatchRig(occT0.Add(30 * time.Minute))
		oth := occThreadState()
		oth.ID = other
		r.roster.set(&oth, occRoster()...)
		r.connect(uBob, "b1")
		r.feed.hook = failing(errs)
		return r
	}
	inFeed := func(r *dispatchRig, i int) bool {
		for _, e := range r.feed.stored(uBob) {
			if e.EventID == ids[i] {
				return true
			}
		}
		return false
	}
	pushed := func(r *dispatchRig, i int) bool {
		for _, f := range r.pusher.got("b1") {
			if decodeFrame(t, f).ID == ids[i] {
				return true
			}
		}
		return false
	}

	// The batch's entries go in one append: when it fails, which were
	// written is unknown, so the first change with an event is reported and
	// nothing is pushed.
	t.Run("feed append", func(t *testing.T) {
		r := rig(map[string]error{ids[1]: boom})
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0, boom", n, err)
		}
		if inFeed(r, 1) || pushed(r, 1) {
			t.Errorf("the failed change was delivered")
		}
		if inFeed(r, 3) || pushed(r, 3) {
			t.Errorf("change 3 delivered after its thread's change 1 failed")
		}
		if got := len(r.pusher.got("b1")); got != 0 {
			t.Errorf("pushed %d frames after a failed feed write", got)
		}
	})
	t.Run("failures in two threads", func(t *testing.T) {
		for _, errs := range []map[string]error{{ids[3]: boom, ids[2]: bang}, {ids[2]: bang, ids[4]: boom}} {
			r := rig(errs)
			n, err := r.d.Dispatch(context.Background(), changes)
			if n != 0 || (!errors.Is(err, bang) && !errors.Is(err, boom)) {
				t.Errorf("Dispatch = %d, %v; want 0 and one of the failures", n, err)
			}
			if len(r.pusher.got("b1")) != 0 {
				t.Errorf("pushed after a failed feed write")
			}
		}
	})
	t.Run("roster", func(t *testing.T) {
		r := rig(nil)
		r.roster.errs[other] = boom
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 2 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 2, boom", n, err)
		}
		if !inFeed(r, 0) || !inFeed(r, 1) {
			t.Errorf("changes before the failure are not all in the feed")
		}
		if inFeed(r, 2) || inFeed(r, 4) {
			t.Errorf("a change of the thread whose roster failed was delivered")
		}
	})
}

func TestDispatchRosterOncePerThread(t *testing.T) {
	m5 := text5()
	other := chat.NewThreadID(occT0.Add(time.Minute))
	r := newDispatchRig(m5.CreatedOn)
	oth := occThreadState()
	oth.ID = other
	r.roster.set(&oth, occRoster()...)
	var changes []chat.Change
	for seq := int64(5); seq < 9; seq++ {
		m := text5()
		m.Seq = seq
		changes = append(changes, msgChange(m, nil), chat.Change{ThreadID: other, Message: &m})
	}
	r.dispatch(t, changes...)
	if r.roster.calls[occThread] != 1 || r.roster.calls[other] != 1 {
		t.Errorf("roster reads = %v, want one per thread", r.roster.calls)
	}
	calls := r.feed.appendCalls()
	if len(calls) != 1 {
		t.Fatalf("%d appends, want 1 for the batch", len(calls))
	}
	events := map[string]bool{}
	for _, e := range calls[0] {
		events[e.EventID] = true
	}
	if len(events) != 8 {
		t.Errorf("the append writes %d events, want 8", len(events))
	}
	// The next batch reads rosters afresh.
	r.dispatch(t, changes[0])
	if r.roster.calls[occThread] != 2 {
		t.Errorf("roster reads = %v after a second batch", r.roster.calls)
	}
}

func TestDispatchNoRecipients(t *testing.T) {
	m5 := text5()
	r := newDispatchRig(m5.CreatedOn)
	th := occThreadState()
	r.roster.set(&th) // nobody
	r.dispatch(t, msgChange(m5, nil))
	if n := len(r.feed.appendCalls()); n != 0 {
		t.Errorf("%d appends for no recipients", n)
	}
	if len(r.conns.lookups) != 0 {
		t.Errorf("looked up connections for no recipients")
	}
}

// TestDispatchOrdersNewMessagesBySequence: concurrent senders commit their
// messages out of sequenceId order; within a run of new messages the
// dispatcher delivers them in sequenceId order, never moving one past an
// edit or property change, and a failure reports the lowest index not yet
// delivered.
func TestDispatchOrdersNewMessagesBySequence(t *testing.T) {
	msg := func(seq int64) chat.Message {
		m := text5()
		m.Seq = seq
		return m
	}
	edited := func(seq int64) chat.Change {
		old, m := msg(seq), msg(seq)
		m.Body = "edited"
		m.EditedOn = occT0.Add(31 * time.Minute)
		m.Version = m.EditedOn.UnixMilli()
		return msgChange(m, &old)
	}
	th := occThreadState()
	counter := th
	counter.Seq++ // the sequence counter's own update emits nothing
	tests := []struct {
		name    string
		changes []chat.Change
		want    []int // delivery order, by index into changes
	}{
		{"in order already", []chat.Change{msgChange(msg(5), nil), msgChange(msg(6), nil)}, []int{0, 1}},
		{"swapped", []chat.Change{msgChange(msg(6), nil), msgChange(msg(5), nil)}, []int{1, 0}},
		{"three, reversed, a counter update between",
			[]chat.Change{msgChange(msg(7), nil), {ThreadID: occThread, Thread: &counter, OldThread: &th}, msgChange(msg(6), nil), msgChange(msg(5), nil)},
			[]int{3, 1, 2, 0}},
		{"an edit ends the run",
			[]chat.Change{msgChange(msg(6), nil), edited(6), msgChange(msg(5), nil)},
			[]int{0, 1, 2}},
		{"runs on both sides of an edit",
			[]chat.Change{msgChange(msg(6), nil), msgChange(msg(5), nil), edited(5), msgChange(msg(8), nil), msgChange(msg(7), nil)},
			[]int{1, 0, 2, 4, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newDispatchRig(occT0.Add(30 * time.Minute))
			r.connect(uBob, "b1")
			r.dispatch(t, tc.changes...)
			var got []string
			for _, f := range r.pusher.got("b1") {
				got = append(got, decodeFrame(t, f).ID)
			}
			var want []string
			for _, i := range tc.want {
				if os := occurrences(tc.changes[i], &th, occRoster()); len(os) > 0 {
					want = append(want, os[0].ID)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("pushed %v, want %v", got, want)
			}
		})
	}

	t.Run("a failure reports the lowest undelivered index", func(t *testing.T) {
		changes := []chat.Change{msgChange(msg(6), nil), msgChange(msg(5), nil)}
		r := newDispatchRig(occT0.Add(30 * time.Minute))
		failingID := occurrenceOf(t, changes[0]).ID // seq 6: delivered second, after 5 (index 1)
		boom := errors.New("boom")
		r.feed.hook = failing(map[string]error{failingID: boom})
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0 (index 0 undelivered), boom", n, err)
		}
	})
}

// batchRig serves n threads with occRoster, bob connected as b1, and two
// new messages per thread (sequence ids swapped), the changes of the
// threads interleaved.
func batchRig(t *testing.T, n int) (*dispatchRig, *fakePartners, []chat.Change, []string) {
	t.Helper()
	r := newDispatchRig(occT0.Add(30 * time.Minute))
	p := &fakePartners{}
	r.d.Partners = p
	r.connect(uBob, "b1")
	threads := make([]string, n)
	for k := range threads {
		th := occThreadState()
		th.ID = chat.NewThreadID(occT0.Add(time.Duration(k) * time.Minute))
		threads[k] = th.ID
		r.roster.set(&th, occRoster()...)
	}
	var changes []chat.Change
	for _, seq := range []int64{6, 5} {
		for _, id := range threads {
			m := text5()
			m.Seq = seq
			changes = append(changes, chat.Change{ThreadID: id, Message: &m})
		}
	}
	return r, p, changes, threads
}

// TestDispatchBatchCalls: a batch costs one feed append, one connection
// lookup and one partner publish however many threads it spans, and each
// thread's events still reach a connection in order.
func TestDispatchBatchCalls(t *testing.T) {
	const n = 10
	r, p, changes, threads := batchRig(t, n)
	r.dispatch(t, changes...)
	if got := len(r.feed.appendCalls()); got != 1 {
		t.Errorf("%d appends, want 1", got)
	}
	if got := len(r.conns.lookups); got != 1 {
		t.Errorf("%d lookups, want 1", got)
	}
	if got := len(p.calls); got != 1 {
		t.Fatalf("%d publishes, want 1", got)
	}
	for _, id := range threads {
		if r.roster.calls[id] != 1 {
			t.Errorf("roster of %s read %d times", id, r.roster.calls[id])
		}
	}
	published := map[string]bool{}
	for _, e := range p.calls[0] {
		published[e.ID] = true
	}
	for _, ch := range changes {
		for _, e := range partner.Events(ch, occRoster(), false) {
			if !published[e.ID] {
				t.Errorf("partner event %s not published", e.ID)
			}
		}
	}
	seqs := map[string][]string{}
	for _, f := range r.pusher.got("b1") {
		fr := decodeFrame(t, f)
		seqs[fr.ThreadID] = append(seqs[fr.ThreadID], fr.Data["sequenceId"].(string))
	}
	for _, id := range threads {
		if !slices.Equal(seqs[id], []string{"5", "6"}) {
			t.Errorf("b1 got %s's messages %v, want [5 6]", id, seqs[id])
		}
	}
	if got := r.metrics.get("FeedWrites"); got != float64(len(changes)*3) {
		t.Errorf("FeedWrites = %v, want %d", got, len(changes)*3)
	}
	if got := r.metrics.get("PushesDelivered"); got != float64(len(changes)) {
		t.Errorf("PushesDelivered = %v, want %d", got, len(changes))
	}
}

// TestDispatchBatchFailures: a failed step of the batched delivery reports
// the first change it may have left undelivered, and every change before
// it is delivered.
func TestDispatchBatchFailures(t *testing.T) {
	boom := errors.New("boom")
	t.Run("append", func(t *testing.T) {
		r, p, changes, _ := batchRig(t, 3)
		r.feed.hook = func(int, []FeedEntry) error { return boom }
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0, boom", n, err)
		}
		if got := r.pusher.count(); got != 0 {
			t.Errorf("%d pushes after a failed feed write", got)
		}
		if len(p.calls) != 0 {
			t.Errorf("published the events of undelivered changes: %v", p.calls)
		}
	})
	t.Run("late rewrite", func(t *testing.T) {
		r, p, changes, _ := batchRig(t, 3)
		r.feed.hook = func(call int, _ []FeedEntry) error {
			if call == 0 {
				r.clock.Advance(Settle) // late: every event is written again
				return nil
			}
			return boom
		}
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0, boom", n, err)
		}
		if got := len(r.feed.appendCalls()); got != 2 {
			t.Errorf("%d appends, want 2", got)
		}
		if got := r.pusher.count(); got != 0 {
			t.Errorf("%d pushes at positions a reader may have passed", got)
		}
		if len(p.calls) != 0 {
			t.Errorf("published the events of undelivered changes")
		}
	})
	t.Run("lookup", func(t *testing.T) {
		r, _, changes, _ := batchRig(t, 3)
		r.conns.lookupErr = boom
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0, boom", n, err)
		}
	})
	t.Run("publish", func(t *testing.T) {
		r, p, changes, _ := batchRig(t, 3)
		p.err = boom
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 0 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 0, boom", n, err)
		}
		if got := r.pusher.count(); got != len(changes) {
			t.Errorf("%d pushes, want %d: the events are in the feed", got, len(changes))
		}
	})
	t.Run("roster", func(t *testing.T) {
		// Changes before the failed thread's first are fully delivered;
		// the other threads' too, though they come again on the retry.
		r, p, changes, threads := batchRig(t, 3)
		r.roster.errs[threads[1]] = boom
		n, err := r.d.Dispatch(context.Background(), changes)
		if n != 1 || !errors.Is(err, boom) {
			t.Fatalf("Dispatch = %d, %v; want 1, boom", n, err)
		}
		if len(p.calls) != 1 || len(p.calls[0]) == 0 {
			t.Fatalf("publishes = %v", p.calls)
		}
		first := partner.Events(changes[0], occRoster(), false)
		if len(first) == 0 || !slices.ContainsFunc(p.calls[0], func(e partner.Event) bool { return e.ID == first[0].ID }) {
			t.Errorf("change 0's partner events not published")
		}
		for _, f := range r.pusher.got("b1") {
			if decodeFrame(t, f).ThreadID == threads[1] {
				t.Errorf("pushed an event of the thread whose roster failed")
			}
		}
		if got := r.pusher.count(); got != 4 {
			t.Errorf("%d pushes, want 4 (two threads, two messages each)", got)
		}
	})
}
