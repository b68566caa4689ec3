package chat_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/ratelimit"
)

// rateEnv is a msgEnv with rate limits at scale, the fixture thread (me and
// bob) and the clock at t0, the start of a minute.
func rateEnv(scale float64) (*msgEnv, chat.Thread) {
	e := newMsgEnv()
	e.svc.Rates = chat.RateLimits{Scale: scale, Limiter: ratelimit.NewLimiter(0)}
	return e, chatFixture(e, me, bob)
}

type rateOp func(e *msgEnv, th chat.Thread, caller chat.Caller, i int) error

var (
	opCreateThread rateOp = func(e *msgEnv, _ chat.Thread, c chat.Caller, _ int) error {
		_, err := e.svc.CreateThread(ctx, c, chat.CreateThreadInput{Topic: "t"})
		return err
	}
	opSend rateOp = func(e *msgEnv, th chat.Thread, c chat.Caller, i int) error {
		_, err := e.svc.SendMessage(ctx, c, th.ID, chat.SendMessageInput{Content: fmt.Sprint("m", i)})
		return err
	}
	opGetThread rateOp = func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
		_, err := e.svc.GetThread(ctx, c, th.ID)
		return err
	}
	opListThreads rateOp = func(e *msgEnv, _ chat.Thread, c chat.Caller, _ int) error {
		_, err := e.svc.ListThreads(ctx, c, chat.ThreadQuery{})
		return err
	}
	opTyping rateOp = func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
		return e.svc.SendTyping(ctx, c, th.ID, "")
	}
)

func wantThrottled(t *testing.T, err error, retryAfter time.Duration) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.TooManyRequests || fe.Code != fault.CodeTooManyRequests {
		t.Fatalf("err = %v; want a 429 TooManyRequests", err)
	}
	if fe.RetryAfter != retryAfter {
		t.Errorf("Retry-After %v, want %v", fe.RetryAfter, retryAfter)
	}
	if !strings.Contains(fe.Message, "Retry after") {
		t.Errorf("message %q does not say when to retry", fe.Message)
	}
}

// TestRateLimitsPerOperation runs each operation up to its 10-second limit,
// then once more: the extra request is a 429 until the window ends, and the
// next window admits it again.
func TestRateLimitsPerOperation(t *testing.T) {
	msgID := func(th chat.Thread, seq int64) string { return chat.MessageID(th.ID, seq) }
	cases := []struct {
		name  string
		limit int
		op    rateOp
	}{
		{"create thread", 10, opCreateThread},
		{"delete thread", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			return e.svc.DeleteThread(ctx, c, th.ID) // repeats succeed, and count
		}},
		{"get thread", 50, opGetThread},
		{"get thread and list threads share a budget", 50, func(e *msgEnv, th chat.Thread, c chat.Caller, i int) error {
			if i%2 == 0 {
				return opGetThread(e, th, c, i)
			}
			return opListThreads(e, th, c, i)
		}},
		{"update thread (counted on the thread)", 5, func(e *msgEnv, th chat.Thread, c chat.Caller, i int) error {
			return e.svc.UpdateThread(ctx, c, th.ID, chat.ThreadPatch{Topic: ptr(fmt.Sprint("topic ", i))})
		}},
		{"update thread that changes nothing (counted in memory)", 5, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			return e.svc.UpdateThread(ctx, c, th.ID, chat.ThreadPatch{Topic: ptr("topic")})
		}},
		{"add and remove participants (counted on the thread)", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, i int) error {
			if i%2 == 0 {
				_, err := e.svc.AddParticipants(ctx, c, th.ID, []chat.NewParticipant{{UserID: alice}}, nil)
				return err
			}
			return e.svc.RemoveParticipant(ctx, c, th.ID, alice)
		}},
		{"add participants already there (counted in memory)", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			_, err := e.svc.AddParticipants(ctx, c, th.ID, []chat.NewParticipant{{UserID: bob}}, nil)
			return err
		}},
		{"send message (counted on the thread)", 10, opSend},
		{"update and delete message share a budget", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, i int) error {
			if i%2 == 0 {
				return e.svc.UpdateMessage(ctx, c, th.ID, msgID(th, 3), chat.MessagePatch{Content: ptr(fmt.Sprint("v", i))})
			}
			return e.svc.DeleteMessage(ctx, c, th.ID, msgID(th, 5))
		}},
		{"get message", 50, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			_, err := e.svc.GetMessage(ctx, c, th.ID, msgID(th, 4))
			return err
		}},
		{"list messages", 50, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			_, err := e.svc.ListMessages(ctx, c, th.ID, chat.MessageQuery{})
			return err
		}},
		{"list participants", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			_, err := e.svc.ListParticipants(ctx, c, th.ID, chat.RosterQuery{})
			return err
		}},
		{"list read receipts", 5, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			_, err := e.svc.ListReadReceipts(ctx, c, th.ID, chat.RosterQuery{})
			return err
		}},
		{"send read receipt", 10, func(e *msgEnv, th chat.Thread, c chat.Caller, _ int) error {
			return e.svc.SendReadReceipt(ctx, c, th.ID, msgID(th, 4))
		}},
		{"send typing notification", 5, opTyping},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, th := rateEnv(1)
			e.clock.t = t0.Add(2 * time.Second)
			for i := 0; i < c.limit; i++ {
				if err := c.op(e, th, chatCaller, i); err != nil {
					t.Fatalf("request %d of %d: %v", i+1, c.limit, err)
				}
			}
			wantThrottled(t, c.op(e, th, chatCaller, c.limit), 8*time.Second)
			e.clock.t = t0.Add(10 * time.Second)
			if err := c.op(e, th, chatCaller, c.limit+1); err != nil {
				t.Errorf("in the next window: %v", err)
			}
		})
	}
}

func TestRateLimitScopes(t *testing.T) {
	t.Run("per user in a thread, and per thread", func(t *testing.T) {
		// Typing: 5 per user in a thread, 10 per thread.
		e, th := rateEnv(1)
		users := []string{me, bob}
		for _, u := range users {
			for i := 0; i < 5; i++ {
				if err := opTyping(e, th, as(u, "chat"), i); err != nil {
					t.Fatalf("%s typing %d: %v", u, i, err)
				}
			}
			wantThrottled(t, opTyping(e, th, as(u, "chat"), 5), 10*time.Second)
		}
		// The thread's 10 are spent: a third member is refused too.
		e.mc.setParticipant(th.ID, chat.Participant{UserID: carol, JoinedOn: base})
		wantThrottled(t, opTyping(e, th, as(carol, "chat"), 0), 10*time.Second)
		// Another thread is not affected.
		th2 := seedThread(e.env, "other", base, me)
		if err := opTyping(e, th2, chatCaller, 0); err != nil {
			t.Errorf("another thread: %v", err)
		}
	})
	t.Run("per user", func(t *testing.T) {
		e, th := rateEnv(1)
		for i := 0; i < 10; i++ {
			if err := opCreateThread(e, th, chatCaller, i); err != nil {
				t.Fatal(err)
			}
		}
		wantThrottled(t, opCreateThread(e, th, chatCaller, 10), 10*time.Second)
		if err := opCreateThread(e, th, as(bob, "chat"), 0); err != nil {
			t.Errorf("another user: %v", err)
		}
	})
}

func TestRateLimitMinuteWindowAndScale(t *testing.T) {
	cases := []struct {
		scale    float64
		per10s   int // sends admitted in each 10 s window
		perMin   int
		disabled bool
	}{
		{scale: 1, per10s: 10, perMin: 30},
		{scale: 2, per10s: 20, perMin: 60},
		{scale: 0.5, per10s: 5, perMin: 15},
		{scale: 0, disabled: true},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint("scale ", c.scale), func(t *testing.T) {
			e, th := rateEnv(c.scale)
			sent := 0
			// Six 10 s windows of one minute, 70 attempts in each.
			for w := 0; w < 6; w++ {
				e.clock.t = t0.Add(time.Duration(w) * 10 * time.Second)
				for i := 0; i < 70; i++ {
					err := opSend(e, th, chatCaller, i)
					if err == nil {
						sent++
						continue
					}
					if c.disabled {
						t.Fatalf("send with limits off: %v", err)
					}
					want := 10 * time.Second
					if sent == c.perMin {
						want = time.Minute - time.Duration(w)*10*time.Second
					}
					wantThrottled(t, err, want)
					break
				}
			}
			switch {
			case c.disabled && sent != 6*70:
				t.Errorf("sent %d with limits off", sent)
			case !c.disabled && sent != c.perMin:
				t.Errorf("sent %d in a minute, want %d", sent, c.perMin)
			}
			// Refused sends consumed no sequence id: the ids are gapless.
			e.mc.mu.Lock()
			msgs := e.mc.msgs[th.ID]
			e.mc.mu.Unlock()
			for i, m := range msgs {
				if m.Seq != int64(i+1) {
					t.Fatalf("sequence ids not gapless at %d: %d", i, m.Seq)
				}
			}
		})
	}
}

// TestRefusedRequestsWriteNothing: a refused request leaves no trace.
func TestRefusedRequestsWriteNothing(t *testing.T) {
	e, th := rateEnv(0.1) // 1 per 10 s
	if err := opSend(e, th, chatCaller, 0); err != nil {
		t.Fatal(err)
	}
	puts := len(e.mc.puts)
	wantThrottled(t, opSend(e, th, chatCaller, 1), 10*time.Second)
	if len(e.mc.puts) != puts || e.st.thread(th.ID).Seq != 8 {
		t.Errorf("a refused send wrote: %d puts, seq %d", len(e.mc.puts), e.st.thread(th.ID).Seq)
	}

	id := chat.MessageID(th.ID, 4)
	if err := e.svc.SendReadReceipt(ctx, chatCaller, th.ID, id); err != nil {
		t.Fatal(err)
	}
	wantThrottled(t, e.svc.SendReadReceipt(ctx, chatCaller, th.ID, chat.MessageID(th.ID, 6)), 10*time.Second)
	if n := len(e.mc.receiptPuts); n != 1 {
		t.Errorf("%d receipts written, want 1", n)
	}

	if err := opTyping(e, th, chatCaller, 0); err != nil {
		t.Fatal(err)
	}
	wantThrottled(t, opTyping(e, th, chatCaller, 1), 10*time.Second)
	if n := len(e.typing.calls); n != 1 {
		t.Errorf("%d typing notifications passed on, want 1", n)
	}

	if err := e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("a")}); err != nil {
		t.Fatal(err)
	}
	wantThrottled(t, e.svc.UpdateThread(ctx, chatCaller, th.ID, chat.ThreadPatch{Topic: ptr("b")}), 10*time.Second)
	if got := e.st.thread(th.ID); got.Topic != "a" || got.Rev != 1 {
		t.Errorf("a refused update changed the thread: %+v", got)
	}

	if _, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, []chat.NewParticipant{{UserID: alice}}, nil); err != nil {
		t.Fatal(err)
	}
	seq := e.st.thread(th.ID).Seq
	_, err := e.svc.AddParticipants(ctx, chatCaller, th.ID, []chat.NewParticipant{{UserID: carol}}, nil)
	wantThrottled(t, err, 10*time.Second)
	if got := e.st.thread(th.ID).Seq; got != seq || len(e.mc.adds) != 1 {
		t.Errorf("a refused add wrote: seq %d (was %d), %d adds", got, seq, len(e.mc.adds))
	}
}
