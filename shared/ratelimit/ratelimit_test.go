package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// t0 is the start of a minute, so of a 10 s window too.
var t0 = time.UnixMilli(1_800_000_000_000 - 1_800_000_000_000%60_000)

var (
	per10s = Window{Span: 10 * time.Second, Max: 10}
	perMin = Window{Span: time.Minute, Max: 30}
)

func TestWindowAdmit(t *testing.T) {
	i := per10s.Index(t0)
	cases := []struct {
		name     string
		c        Counter
		at       time.Duration // after t0
		want     Counter
		wantWait time.Duration
		ok       bool
	}{
		{"never counted", Counter{}, 0, Counter{i, 1}, 0, true},
		{"an older window starts over", Counter{i - 1, 10}, 3 * time.Second, Counter{i, 1}, 0, true},
		{"room in the window", Counter{i, 9}, 9 * time.Second, Counter{i, 10}, 0, true},
		{"full window: wait for its end", Counter{i, 10}, 2500 * time.Millisecond, Counter{i, 10}, 7500 * time.Millisecond, false},
		{"full at the last millisecond", Counter{i, 10}, 9999 * time.Millisecond, Counter{i, 10}, time.Millisecond, false},
		{"the next window is new", Counter{i, 10}, 10 * time.Second, Counter{i + 1, 1}, 0, true},
		{"a counter ahead of our clock is counted in", Counter{i + 1, 3}, 9 * time.Second, Counter{i + 1, 4}, 0, true},
		{"a full counter ahead of our clock waits for its end", Counter{i + 1, 10}, 9 * time.Second, Counter{i + 1, 10}, 11 * time.Second, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, wait, ok := per10s.Admit(c.c, t0.Add(c.at))
			if got != c.want || wait != c.wantWait || ok != c.ok {
				t.Errorf("Admit(%+v) = %+v, %v, %v; want %+v, %v, %v", c.c, got, wait, ok, c.want, c.wantWait, c.ok)
			}
		})
	}
}

func TestWindowIndexAndEnd(t *testing.T) {
	cases := []struct {
		at   time.Time
		w    Window
		want int64
	}{
		{t0, per10s, t0.UnixMilli() / 10_000},
		{t0.Add(-time.Millisecond), per10s, t0.UnixMilli()/10_000 - 1},
		{t0.Add(59 * time.Second), perMin, t0.UnixMilli() / 60_000},
		{time.UnixMilli(-1), per10s, -1}, // floor, not truncation
	}
	for _, c := range cases {
		i := c.w.Index(c.at)
		if i != c.want {
			t.Errorf("Index(%v) = %d, want %d", c.at, i, c.want)
		}
		if end := c.w.End(i); !end.After(c.at) || end.Sub(c.at) > c.w.Span {
			t.Errorf("End(%d) = %v, not within a span after %v", i, end, c.at)
		}
	}
}

func TestScaled(t *testing.T) {
	cases := []struct {
		max   int
		scale float64
		want  int
	}{
		{10, 1, 10}, {10, 10, 100}, {5, 0.5, 3}, {5, 0.01, 1}, {250, 2.5, 625},
	}
	for _, c := range cases {
		if got := (Window{Span: time.Second, Max: c.max}).Scaled(c.scale).Max; got != c.want {
			t.Errorf("%d × %v = %d, want %d", c.max, c.scale, got, c.want)
		}
	}
}

func TestLimiterCountsEveryWindowAndRefusalsUseNothing(t *testing.T) {
	l := NewLimiter(0)
	both := Check{Key: "k", Windows: []Window{per10s, perMin}}
	now := t0
	admitted := 0
	// Six 10 s windows of a minute, 12 attempts each: 10 fit in each of the
	// first three windows, then the minute's 30 are spent. A refusal waits
	// for the end of the latest full window.
	for w := 0; w < 6; w++ {
		for i := 0; i < 12; i++ {
			at := now.Add(time.Duration(w)*10*time.Second + time.Duration(i)*100*time.Millisecond)
			wait, ok := l.Allow(at, both)
			want := t0.Add(time.Duration(w+1) * 10 * time.Second).Sub(at) // the 10 s window's end
			if admitted == 30 {
				want = t0.Add(time.Minute).Sub(at)
			}
			switch {
			case ok && (i >= 10 || w >= 3):
				t.Errorf("window %d attempt %d admitted", w, i)
			case ok:
				admitted++
			case i < 10 && w < 3:
				t.Errorf("window %d attempt %d refused", w, i)
			case wait != want:
				t.Errorf("window %d attempt %d: wait %v, want %v", w, i, wait, want)
			}
		}
	}
	if admitted != 30 {
		t.Errorf("admitted %d in a minute, want 30", admitted)
	}
	if _, ok := l.Allow(t0.Add(time.Minute), both); !ok {
		t.Error("refused in the next minute")
	}
}

func TestLimiterIsAllOrNothingAcrossChecks(t *testing.T) {
	l := NewLimiter(0)
	user := Check{Key: "user", Windows: []Window{{Span: 10 * time.Second, Max: 5}}}
	thread := Check{Key: "thread", Windows: []Window{{Span: 10 * time.Second, Max: 2}}}
	other := Check{Key: "other", Windows: []Window{{Span: 10 * time.Second, Max: 5}}}
	for i := 0; i < 2; i++ {
		if _, ok := l.Allow(t0, user, thread); !ok {
			t.Fatalf("request %d refused", i)
		}
	}
	// The thread is full: the user's budget must not be spent by refusals.
	for i := 0; i < 10; i++ {
		if _, ok := l.Allow(t0, user, thread); ok {
			t.Fatal("admitted past the thread's limit")
		}
	}
	for i := 0; i < 3; i++ {
		if _, ok := l.Allow(t0, user, other); !ok {
			t.Fatalf("the user's budget was spent by refused requests (request %d)", i)
		}
	}
	if _, ok := l.Allow(t0, user, other); ok {
		t.Error("admitted past the user's limit")
	}
}

func TestLimiterDropsIdleKeysAndStaysBounded(t *testing.T) {
	l := NewLimiter(100)
	w := []Window{per10s, perMin}
	for i := 0; i < 80; i++ {
		l.Allow(t0, Check{Key: fmt.Sprint("a", i), Windows: w})
	}
	if n := l.Len(); n != 80 {
		t.Fatalf("%d keys, want 80", n)
	}
	// A minute later every one of those windows has ended: the next call
	// sweeps them out.
	l.Allow(t0.Add(time.Minute), Check{Key: "b", Windows: w})
	if n := l.Len(); n != 1 {
		t.Errorf("%d keys after a minute idle, want 1", n)
	}
	// Far more live keys than the bound: memory stays bounded.
	for i := 0; i < 1000; i++ {
		l.Allow(t0.Add(time.Minute), Check{Key: fmt.Sprint("c", i), Windows: w})
	}
	if n := l.Len(); n > 100 {
		t.Errorf("%d keys, bound 100", n)
	}
	// A live key is kept while there is room.
	l2 := NewLimiter(10)
	k := Check{Key: "live", Windows: []Window{{Span: time.Minute, Max: 1}}}
	l2.Allow(t0, k)
	if _, ok := l2.Allow(t0.Add(30*time.Second), k); ok {
		t.Error("a live key was forgotten with room to spare")
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := NewLimiter(0)
	c := Check{Key: "k", Windows: []Window{{Span: time.Minute, Max: 100}}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if _, ok := l.Allow(t0, c); ok {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if admitted != 100 {
		t.Errorf("admitted %d of 400 concurrent requests, want exactly 100", admitted)
	}
}
