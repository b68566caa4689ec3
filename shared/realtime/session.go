package realtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MaxConnection is API Gateway's limit on a WebSocket connection's life.
const MaxConnection = 2 * time.Hour

// resumePage is how many feed entries a resume reads at a time.
const resumePage = 100

// Sessions serves the WebSocket routes: $connect, $disconnect and the
// client frames of $default (docs/realtime.md).
type Sessions struct {
	Connections ConnectionStore
	Reader      *Reader
	Pusher      Pusher
	Now         func() time.Time
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Connect registers a connection for its user until API Gateway's limit or
// the token's expiry, whichever comes first: an expired token stops
// receiving events even on an open connection.
func (s *Sessions) Connect(ctx context.Context, userID, connectionID string, tokenExpires time.Time) error {
	until := s.now().Add(MaxConnection)
	if !tokenExpires.IsZero() && tokenExpires.Before(until) {
		until = tokenExpires
	}
	return s.Connections.Add(ctx, userID, connectionID, until)
}

// Disconnect forgets a connection.
func (s *Sessions) Disconnect(ctx context.Context, userID, connectionID string) error {
	return s.Connections.Remove(ctx, userID, connectionID)
}

// ClientFrame is a frame a client sends.
type ClientFrame struct {
	Action string `json:"action"`
	Cursor string `json:"cursor,omitempty"`
}

// ParseClientFrame reads a client frame; the error is a protocol error
// frame's code.
func ParseClientFrame(body []byte) (ClientFrame, error) {
	var f ClientFrame
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&f); err != nil || dec.More() {
		return ClientFrame{}, errFrame("InvalidFrame", "A client frame must be one JSON object such as {\"action\":\"ping\"}.")
	}
	switch f.Action {
	case "":
		return ClientFrame{}, errFrame("InvalidFrame", "A client frame needs an \"action\": ping or resume.")
	case "ping":
		return f, nil
	case "resume":
		if f.Cursor == "" {
			return ClientFrame{}, errFrame("InvalidCursor", "resume needs a \"cursor\" from an earlier event.")
		}
		return f, nil
	default:
		return ClientFrame{}, errFrame("UnknownAction", "Unknown action "+quote(f.Action)+"; the actions are ping and resume.")
	}
}

type frameError struct{ code, message string }

func (e *frameError) Error() string { return e.code + ": " + e.message }

func errFrame(code, message string) error { return &frameError{code, message} }

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// Message handles one client frame. Answers are pushed to the connection.
func (s *Sessions) Message(ctx context.Context, userID, connectionID string, body []byte) error {
	f, err := ParseClientFrame(body)
	var fe *frameError
	if errors.As(err, &fe) {
		return s.Pusher.Push(ctx, connectionID, marshal(map[string]any{"type": "error", "error": map[string]string{"code": fe.code, "message": fe.message}}))
	}
	switch f.Action {
	case "ping":
		return s.Pusher.Push(ctx, connectionID, []byte(`{"type":"pong"}`))
	default:
		return s.Resume(ctx, userID, connectionID, f.Cursor, false)
	}
}

// Resume pushes every stored event after cursor, oldest first, then
// "resumed" with the cursor to keep; or "resyncRequired" when the cursor is
// too old or not ours. waitOpen retries while the connection is still being
// opened: a resume asked for in the connect URL starts during $connect,
// before API Gateway accepts pushes to the connection.
//
// A replay that cannot finish (a push or a read failed) closes the
// connection when the Pusher is a Disconnecter, as a failed live push does:
// the client never gets "resumed", so it keeps the cursor it resumed from
// and would otherwise sit on an open connection missing the rest of the
// replay; closed, it reconnects and resumes from that cursor again.
func (s *Sessions) Resume(ctx context.Context, userID, connectionID, cursor string, waitOpen bool) error {
	err := s.replay(ctx, userID, connectionID, cursor, waitOpen)
	if err == nil || errors.Is(err, ErrGone) {
		return err
	}
	return errors.Join(err, s.abandon(ctx, connectionID, waitOpen))
}

// abandon closes a connection whose replay failed (see Resume). It outlives
// ctx by a moment: the failure may be the invocation's deadline passing.
func (s *Sessions) abandon(ctx context.Context, connectionID string, waitOpen bool) error {
	dc, ok := s.Pusher.(Disconnecter)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openWait+2*time.Second)
	defer cancel()
	disconnect := func() error { return dc.Disconnect(ctx, connectionID) }
	var err error
	if waitOpen {
		// The replay may have failed before API Gateway opened the
		// connection, which until then answers 410 to closing too: left
		// open afterwards, it would wait for "resumed" in vain.
		err = s.whenOpen(ctx, disconnect)
	} else {
		err = disconnect()
	}
	if err != nil && !errors.Is(err, ErrGone) {
		return fmt.Errorf("close the connection after a failed replay: %w", err)
	}
	return nil
}

func (s *Sessions) replay(ctx context.Context, userID, connectionID, cursor string, waitOpen bool) error {
	push := func(frame []byte) error { return s.Pusher.Push(ctx, connectionID, frame) }
	if waitOpen {
		push = func(frame []byte) error { return s.pushWhenOpen(ctx, connectionID, frame) }
	}
	b, err := s.Reader.Read(ctx, userID, cursor, resumePage, false)
	if errors.Is(err, ErrCursorExpired) || errors.Is(err, ErrInvalidCursor) {
		return push([]byte(`{"type":"resyncRequired"}`))
	}
	for err == nil {
		for _, f := range b.Frames {
			if err := push(f); err != nil {
				return err
			}
		}
		if !b.More {
			return push(marshal(map[string]string{"type": "resumed", "cursor": b.Cursor}))
		}
		b, err = s.Reader.ReadNext(ctx, userID, b, resumePage)
	}
	return err
}

// openWait is how long a replay asked for in the connect URL waits for API
// Gateway to open the connection.
const openWait = 5 * time.Second

func (s *Sessions) pushWhenOpen(ctx context.Context, connectionID string, frame []byte) error {
	return s.whenOpen(ctx, func() error { return s.Pusher.Push(ctx, connectionID, frame) })
}

// whenOpen calls call until it answers anything but ErrGone, for up to
// openWait: until then, a connection still being opened is gone to the
// management API.
func (s *Sessions) whenOpen(ctx context.Context, call func() error) error {
	delay := 50 * time.Millisecond
	deadline := s.now().Add(openWait)
	for {
		err := call()
		if !errors.Is(err, ErrGone) || s.now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}
