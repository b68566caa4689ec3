package local

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// noRateLimits turns the stack's ACS rate limits (10 messages per 10 s per
// thread, …) off: the load test measures delivery, not the limits
// (ratelimit_e2e_test.go tests those).
func noRateLimits() stackOption {
	return func(c *Config) { off := 0.0; c.RateLimitScale = &off }
}

// TestLoad runs 50 real-time clients (local/rtclient: reconnect, resume and
// dedupe are the real client's), one connection per user, in 5 threads of
// 10 members, while the members send N messages concurrently through the
// HTTP API (N: 300; THREADLINE_LOAD_MESSAGES, or 10,000 under
// THREADLINE_SOAK=1 — `make soak`). Every client must receive every message
// of its thread exactly once after dedupe and none of the others', with the
// sequenceId the message has in the thread, in causal order; every member's
// feed must hold them all. The figures (duplicates before dedupe,
// reconnects, arrivals out of sequenceId order, times, latency) are logged
// for docs/reliability.md.
func TestLoad(t *testing.T) {
	n := loadMessages(t)
	const threadCount, size = 5, 10
	s := startStack(t, noRateLimits())
	begin := time.Now()
	users := s.users(t, threadCount*size)
	madeUsers := time.Since(begin)
	// The clients first, from the present: each sees its thread created,
	// then every message.
	listeners := s.listenAll(t, users)
	connected := time.Since(begin)
	threads := make([]string, threadCount)
	for g := range threads {
		threads[g] = s.createThread(t, users[g*size].Token, fmt.Sprintf("load %d", g), users[g*size+1:(g+1)*size]...).ChatThread.ID
	}
	setup := time.Since(begin)

	sent := newSendLog()
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				g := k % threadCount
				sender := users[g*size+(k/threadCount)%size]
				sent.send(t, s, sender.Token, threads[g], fmt.Sprintf("load %d #%d", g, k))
			}
		}()
	}
	for k := 0; k < n; k++ {
		jobs <- k
	}
	close(jobs)
	wg.Wait()
	sending := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	ids := make([][]string, threadCount)
	for g, th := range threads {
		ids[g] = sent.ids(th)
	}
	timeout := 30*time.Second + time.Duration(n)*20*time.Millisecond
	for i, l := range listeners {
		l.waitAll(t, "every message of its thread", timeout, ids[i/size])
	}
	delivered := time.Since(start)
	s.waitStreams(t)

	// The thread's order, from the REST API: each message once, with its sequenceId.
	restSeq := map[msgKey]int64{}
	for g, th := range threads {
		msgs := s.messages(t, users[g*size].Token, th, 200)
		texts := 0
		for _, m := range msgs {
			if m.Type == "text" {
				texts++
				restSeq[msgKey{th, m.ID}] = m.seq(t)
			}
		}
		if texts != len(ids[g]) {
			t.Errorf("thread %d lists %d messages, %d were sent", g, texts, len(ids[g]))
		}
	}
	var dups, reconnects, outOfSequence, causalChecked int
	var latencies []time.Duration
	for i, l := range listeners {
		g := i / size
		requireExactlyOnce(t, l, threads[g], ids[g])
		evs, _ := l.snapshot()
		for _, m := range messageEvents(evs, "chatMessageReceived") {
			if k := (msgKey{m.ThreadID, m.ID}); m.ThreadID == threads[g] && restSeq[k] != m.Seq {
				t.Errorf("%s: message %s arrived with sequenceId %d; the thread has it at %d", l.user.ID, m.ID, m.Seq, restSeq[k])
			}
		}
		// Arrival order respects causality on a connection that never
		// dropped (a resume replays in feed order, which ties within a
		// millisecond may swap).
		if l.closes.Load() == 0 {
			outOfSequence += sent.requireCausalOrder(t, l, threads[g])
			causalChecked++
		}
		feed := s.feedMessages(t, l.user.ID, threads[g])
		for _, id := range ids[g] {
			if !feed[id] {
				t.Errorf("%s's feed misses message %s", l.user.ID, id)
			}
		}
		dups += l.client.Duplicates()
		reconnects += int(l.closes.Load())
		latencies = append(latencies, l.latencies(sent)...)
	}
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Round(time.Millisecond)
	}
	t.Logf("load: %d messages in %d threads to %d clients (%d deliveries): sent in %v (%.0f msg/s), all delivered %v after the first send; "+
		"delivery latency p50 %v p99 %v max %v; %d raw duplicates dropped by the clients' dedupe; %d reconnects; "+
		"%d arrivals after a message with a higher sequenceId (concurrent sends; %d clients checked for causal order); setup %v (users %v, clients connected %v)",
		n, threadCount, len(listeners), n*size, sending.Round(time.Millisecond), float64(n)/sending.Seconds(), delivered.Round(time.Millisecond),
		pct(0.5), pct(0.99), pct(1), dups, reconnects, outOfSequence, causalChecked, setup.Round(time.Millisecond),
		madeUsers.Round(time.Millisecond), connected.Round(time.Millisecond))
}

// latencies is, per message the listener received, the time from the end
// of its send (the 201) to its arrival.
func (l *rtListener) latencies(sent *sendLog) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent.mu.Lock()
	defer sent.mu.Unlock()
	var out []time.Duration
	for i, e := range l.events {
		if e.Type != "chatMessageReceived" {
			continue
		}
		for _, m := range messageEvents(l.events[i:i+1], "chatMessageReceived") {
			if s, ok := sent.msgs[msgKey{m.ThreadID, m.ID}]; ok {
				out = append(out, max(0, l.at[i].Sub(s.end)))
			}
		}
	}
	return out
}
