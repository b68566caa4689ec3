package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/ddblocal"
)

var sharedDDB *ddblocal.Server

func TestMain(m *testing.M) {
	os.Exit(ddblocal.RunTests(m, "threadline", func(s *ddblocal.Server) { sharedDDB = s }))
}

// startStack starts a stack whose stack.json (and so cli-users.json) is in
// a temporary folder, and returns that stack.json's path.
func startStack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := local.Start(context.Background(), local.Config{
		StateDir: dir, HTTPAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", EventsAddr: "127.0.0.1:0",
		DynamoEndpoint: sharedDDB.Endpoint,
		TablePrefix:    fmt.Sprintf("cli%d_", os.Getpid()),
		FunctionLog:    io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return filepath.Join(dir, "stack.json")
}

// syncBuffer is a bytes.Buffer that listen can write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSendArrivesAtListen(t *testing.T) {
	stack := startStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"listen", "-stack", stack, "-as", "alice"}, nil, &out, &errOut) }()
	waitFor(t, "listen to connect", 10*time.Second, func() bool { return strings.Contains(errOut.String(), "connected (websocket)") })

	send := func(text string) string {
		t.Helper()
		var sendOut, sendErr bytes.Buffer
		if err := run(ctx, []string{"send", "-stack", stack, "-as", "bob", "-to", "alice", text}, nil, &sendOut, &sendErr); err != nil {
			t.Fatalf("send: %v\n%s", err, sendErr.String())
		}
		id := strings.TrimSpace(sendOut.String())
		if id == "" {
			t.Fatalf("send printed no message id; stderr: %s", sendErr.String())
		}
		return id
	}
	send("hello there")
	send("again")

	// Both messages by name, in one thread (the second send reused it).
	waitFor(t, "both messages at listen", 10*time.Second, func() bool {
		return strings.Contains(out.String(), "bob: again")
	})
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if strings.Contains(l, " chatMessageReceived ") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " bob: hello there") || !strings.HasSuffix(lines[1], " bob: again") {
		t.Fatalf("listen printed:\n%s", out.String())
	}
	if strings.Fields(lines[0])[2] != strings.Fields(lines[1])[2] {
		t.Errorf("the two messages went to different threads:\n%s", out.String())
	}
	if !strings.Contains(out.String(), " chatThreadCreated ") {
		t.Errorf("no chatThreadCreated line:\n%s", out.String())
	}

	var users bytes.Buffer
	if err := run(ctx, []string{"users", "-stack", stack}, nil, &users, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got := users.String(); !strings.Contains(got, "alice ") || !strings.Contains(got, "bob ") || !strings.Contains(got, "8:acs:") {
		t.Errorf("users printed %q", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("listen returned %v after Ctrl-C, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("listen did not stop")
	}
	t.Logf("listen output:\n%s", out.String())
}

// TestTwoChatsTalk is the README's demo: two terminals running chat, one
// as alice and one as bob, see each other's lines.
func TestTwoChatsTalk(t *testing.T) {
	stack := startStack(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type terminal struct {
		in          *io.PipeWriter
		out, errOut syncBuffer
		done        chan error
	}
	open := func(as, with string) *terminal {
		r, w := io.Pipe()
		term := &terminal{in: w, done: make(chan error, 1)}
		go func() {
			term.done <- run(ctx, []string{"chat", "-stack", stack, "-as", as, "-with", with}, r, &term.out, &term.errOut)
		}()
		waitFor(t, as+" to connect", 10*time.Second, func() bool { return strings.Contains(term.errOut.String(), "connected (websocket)") })
		return term
	}
	alice := open("alice", "bob")
	bob := open("bob", "alice")

	fmt.Fprintln(alice.in, "hi bob")
	waitFor(t, "bob to see alice's line", 10*time.Second, func() bool { return strings.Contains(bob.out.String(), "alice: hi bob") })
	fmt.Fprintln(bob.in, "hi alice")
	waitFor(t, "alice to see bob's line", 10*time.Second, func() bool { return strings.Contains(alice.out.String(), "bob: hi alice") })
	// Each sees its own line too (ACS sends chatMessageReceived to the
	// sender), and both lines are in one thread.
	waitFor(t, "alice to see her own line", 10*time.Second, func() bool { return strings.Contains(alice.out.String(), "alice: hi bob") })
	if strings.Contains(alice.errOut.String(), "not sent") || strings.Contains(bob.errOut.String(), "not sent") {
		t.Errorf("a line was not sent:\n%s\n%s", alice.errOut.String(), bob.errOut.String())
	}
	if n := strings.Count(alice.errOut.String()+bob.errOut.String(), "created thread"); n != 1 {
		t.Errorf("%d threads created, want the pair's one:\n%s\n%s", n, alice.errOut.String(), bob.errOut.String())
	}

	// End of input ends a chat cleanly.
	alice.in.Close()
	select {
	case err := <-alice.done:
		if err != nil {
			t.Errorf("chat returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("chat did not stop at end of input")
	}
	cancel()
	<-bob.done
}
