package local

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
	"github.com/threadline/threadline/shared/obs"
)

func withRateLimitScale(f float64) stackOption {
	return func(c *Config) { c.RateLimitScale = &f }
}

// operationMetrics returns the metric lines one operation logged, in order.
func operationMetrics(t *testing.T, logs *lockedBuffer, op string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range logs.lines() {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON log line: %.200s", line)
		}
		if rec["msg"] == "metrics" && rec["Operation"] == op {
			out = append(out, rec)
		}
	}
	return out
}

// freshWindow waits, if need be, so that the next five seconds fall in one
// 10 s rate-limit window (windows are aligned to the Unix epoch), ample
// for a dozen requests on a loaded machine.
func freshWindow() {
	if left := 10*time.Second - time.Duration(time.Now().UnixMilli()%10_000)*time.Millisecond; left < 5*time.Second {
		time.Sleep(left + 20*time.Millisecond)
	}
}

func sendRaw(t *testing.T, s *testStack, token, thread, content string) acsclient.Response {
	t.Helper()
	return s.do(t, token, acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "messages"), Body: map[string]any{"content": content}})
}

// TestSendRateLimitE2E: ACS allows 10 messages per thread per 10 s. The
// 11th send is a 429 with Retry-After and ACS's error body, for every
// member of the thread; it consumes no sequence id and costs no more
// DynamoDB requests than a send; after Retry-After the thread takes
// messages again.
func TestSendRateLimitE2E(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	s := startStack(t, withRateLimitScale(1), func(c *Config) { c.FunctionLog = logs })
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "limits", bob).ChatThread.ID

	freshWindow()
	for i := 0; i < 10; i++ {
		if r := sendRaw(t, s, alice.Token, thread, fmt.Sprint("m", i)); r.Status != http.StatusCreated {
			t.Fatalf("send %d: %s", i+1, r)
		}
	}
	r := sendRaw(t, s, alice.Token, thread, "one too many")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("11th send: %s, want 429", r)
	}
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 10 {
		t.Fatalf("Retry-After %q, want 1..10 seconds", r.Header.Get("Retry-After"))
	}
	var body struct {
		Error struct {
			Code, Message string
			InnerError    any `json:"innererror"`
		} `json:"error"`
	}
	if err := r.JSON(&body); err != nil || body.Error.Code != "TooManyRequests" || body.Error.Message == "" || body.Error.InnerError != nil {
		t.Errorf("429 body %s, want {\"error\":{\"code\":\"TooManyRequests\",\"message\":…}}", r.Body)
	}
	if !strings.Contains(body.Error.Message, "10 per 10 seconds") {
		t.Errorf("the message does not name the limit: %q", body.Error.Message)
	}
	// The limit is the thread's, not alice's.
	if r := sendRaw(t, s, bob.Token, thread, "bob too"); r.Status != http.StatusTooManyRequests {
		t.Errorf("bob's send into the full thread: %s, want 429", r)
	}

	// Cost: a send is SendCheck, NextSeq (which counts the limit), PutMessage;
	// a refused one stops after NextSeq.
	ms := operationMetrics(t, logs, "SendMessage")
	if len(ms) != 12 {
		t.Fatalf("%d SendMessage metric lines, want 12", len(ms))
	}
	for i, m := range ms {
		reqs, throttled := m[obs.DynamoDBRequests], m[obs.Throttled]
		switch {
		case i < 10 && (reqs != 3.0 || throttled != 0.0):
			t.Errorf("send %d: %v DynamoDB requests, Throttled %v; want 3 and 0", i+1, reqs, throttled)
		case i >= 10 && (reqs != 2.0 || throttled != 1.0 || m[obs.ClientErrors] != 1.0):
			t.Errorf("refused send %d: %v DynamoDB requests, Throttled %v, ClientErrors %v; want 2, 1, 1", i+1, reqs, throttled, m[obs.ClientErrors])
		}
	}

	// Retry-After is honest: waiting it out is enough.
	time.Sleep(time.Duration(retry) * time.Second)
	s.send(t, bob.Token, thread, "after the wait")
	msgs := s.messages(t, alice.Token, thread, 0)
	if len(msgs) != 13 {
		t.Fatalf("%d messages, want 2 system + 10 + 1", len(msgs))
	}
	for i, m := range msgs { // newest first, and no refused send took a sequence id
		if want := int64(13 - i); m.seq(t) != want {
			t.Fatalf("message %d has sequenceId %d, want %d: ids must stay gapless", i, m.seq(t), want)
		}
	}
}

// TestTypingRateLimitE2E: a limit counted in the function's memory (typing,
// 5 per user in a thread per 10 s) answers the same 429.
func TestTypingRateLimitE2E(t *testing.T) {
	t.Parallel()
	s := startStack(t, withRateLimitScale(1))
	alice, bob := s.user(t), s.user(t)
	thread := s.createThread(t, alice.Token, "typing", bob).ChatThread.ID
	typing := acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "typing"), Body: map[string]any{}}
	freshWindow()
	for i := 0; i < 5; i++ {
		if r := s.do(t, alice.Token, typing); r.Status != http.StatusOK {
			t.Fatalf("typing %d: %s", i+1, r)
		}
	}
	r := s.do(t, alice.Token, typing)
	if code, _ := r.ErrorCode(); r.Status != http.StatusTooManyRequests || code != "TooManyRequests" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("6th typing notification: %s (Retry-After %q), want 429 TooManyRequests with Retry-After", r, r.Header.Get("Retry-After"))
	}
	if r := s.do(t, bob.Token, typing); r.Status != http.StatusOK {
		t.Errorf("bob's own budget: %s", r)
	}
}

// TestRateLimitScaleZeroE2E: with RateLimitScale 0 (how benchmarks run)
// nothing is limited, and a send costs the same three DynamoDB requests.
func TestRateLimitScaleZeroE2E(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	s := startStack(t, withRateLimitScale(0), func(c *Config) { c.FunctionLog = logs })
	alice := s.user(t)
	thread := s.createThread(t, alice.Token, "no limits").ChatThread.ID
	for i := 0; i < 15; i++ {
		s.send(t, alice.Token, thread, fmt.Sprint("m", i))
	}
	typing := acsclient.Request{Method: http.MethodPost, Path: acsclient.ThreadPath(thread, "typing"), Body: map[string]any{}}
	for i := 0; i < 8; i++ {
		if r := s.do(t, alice.Token, typing); r.Status != http.StatusOK {
			t.Fatalf("typing %d: %s", i+1, r)
		}
	}
	for i, m := range operationMetrics(t, logs, "SendMessage") {
		if m[obs.DynamoDBRequests] != 3.0 || m[obs.Throttled] != 0.0 {
			t.Errorf("send %d: %v DynamoDB requests, Throttled %v; want 3 and 0", i+1, m[obs.DynamoDBRequests], m[obs.Throttled])
		}
	}
}
