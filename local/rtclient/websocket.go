package rtclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// wsConn is an open connection and the cursor its URL resumed from.
type wsConn struct {
	conn   *websocket.Conn
	cursor string
}

// refusedError is a handshake the server answered 401 or 403: the token.
type refusedError struct{ status int }

func (e *refusedError) Error() string { return fmt.Sprintf("handshake refused: HTTP %d", e.status) }

const (
	dialTimeout  = 15 * time.Second
	writeTimeout = 10 * time.Second
	// A connection that ends sooner without a single frame counts as a
	// failed connect (for fallback), not as a drop.
	stableAfter = 2 * time.Second
	// Server frames can exceed coder/websocket's 32 KB default: a replayed
	// near-28 KB message grows with JSON escaping (pushes are fragmented
	// into 32 KB frames, messages up to 128 KB).
	readLimit = 1 << 20
)

// dial opens a WebSocket with a fresh token, resuming from cursor.
func (c *Client) dial(ctx context.Context, cursor string) (*wsConn, error) {
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	q := url.Values{"access_token": {tok}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	u := strings.TrimSuffix(c.cfg.WebSocketURL, "/") + "/?" + q.Encode()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient})
	if err != nil {
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return nil, &refusedError{resp.StatusCode}
		}
		return nil, redact(err, tok)
	}
	conn.SetReadLimit(readLimit)
	return &wsConn{conn: conn, cursor: cursor}, nil
}

// serve reads one connection until it ends. established reports whether it
// was a real connection (it lasted, or carried frames) rather than a failed
// connect in disguise.
func (c *Client) serve(ctx context.Context, wc *wsConn) (established bool, err error) {
	conn := wc.conn
	defer conn.CloseNow()
	c.setState(StateWebSocket)
	start := time.Now()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// While a resume is pending (connected with a cursor, no "resumed"
	// yet), live pushes can overtake the replay; moving the cursor to them
	// would skip the rest of the replay if the connection dropped now.
	var pending atomic.Bool
	pending.Store(wc.cursor != "")
	var lastFrame atomic.Int64
	lastFrame.Store(start.UnixNano())
	var busy atomic.Bool // blocked handing an event to a slow reader
	go c.keepAlive(sctx, conn, wc.cursor, &pending, &lastFrame, &busy)

	frames := 0
	for {
		_, raw, err := conn.Read(sctx)
		if err != nil {
			return frames > 0 || time.Since(start) >= stableAfter, err
		}
		frames++
		lastFrame.Store(time.Now().UnixNano())
		busy.Store(true)
		ok := c.handleWS(ctx, raw, &pending)
		busy.Store(false)
		lastFrame.Store(time.Now().UnixNano())
		if !ok {
			return true, ctx.Err()
		}
	}
}

// keepAlive pings every PingEvery (API Gateway closes idle connections),
// closes the connection when a whole period passed without any frame after
// a ping (a half-open TCP connection never reports an error; a pong waiting
// behind a slow reader does not count as missing), and asks for the resume
// itself when the server's own replay did not answer in time. When even
// that asking gets neither "resumed" nor any frame for another ResumeWait
// (the resume frame was lost, say $default was throttled), it reconnects:
// a fresh connect replays from the same cursor.
func (c *Client) keepAlive(ctx context.Context, conn *websocket.Conn, cursor string, pending *atomic.Bool, lastFrame *atomic.Int64, busy *atomic.Bool) {
	ping := time.NewTicker(c.cfg.PingEvery)
	defer ping.Stop()
	var resume <-chan time.Time
	if cursor != "" {
		t := time.NewTimer(c.cfg.ResumeWait)
		defer t.Stop()
		resume = t.C
	}
	var asked int64 // when the resume frame was sent (UnixNano); 0: not yet
	var lastPing int64
	write := func(v any) bool {
		b, _ := json.Marshal(v)
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			if ctx.Err() == nil {
				c.log.Warn("rtclient: write failed", "error", err.Error())
				conn.CloseNow()
			}
			return false
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-resume:
			switch {
			case !pending.Load():
			case asked == 0:
				c.log.Info("rtclient: no \"resumed\" yet; asking to resume")
				if !write(map[string]string{"action": "resume", "cursor": cursor}) {
					return
				}
				asked = time.Now().UnixNano()
				resume = time.After(c.cfg.ResumeWait)
			case lastFrame.Load() < asked && !busy.Load():
				c.log.Warn("rtclient: the resume went unanswered; reconnecting")
				conn.CloseNow()
				return
			default: // a replay is arriving: give it another period
				asked = time.Now().UnixNano()
				resume = time.After(c.cfg.ResumeWait)
			}
		case now := <-ping.C:
			if lastPing != 0 && lastFrame.Load() < lastPing && !busy.Load() {
				c.log.Warn("rtclient: no answer to ping; reconnecting")
				conn.CloseNow()
				return
			}
			lastPing = now.UnixNano()
			if !write(map[string]string{"action": "ping"}) {
				return
			}
		}
	}
}

// handleWS handles one frame; false when ctx ended during delivery.
func (c *Client) handleWS(ctx context.Context, raw []byte, pending *atomic.Bool) bool {
	var f frame
	if err := json.Unmarshal(raw, &f); err != nil || f.Type == "" {
		c.log.Warn("rtclient: unreadable frame", "frame", truncate(raw))
		return true
	}
	switch f.Type {
	case framePong:
		c.log.Debug("rtclient: pong")
	case frameError:
		var code, msg string
		if f.Error != nil {
			code, msg = f.Error.Code, f.Error.Message
		}
		c.log.Warn("rtclient: the server refused a frame", "code", code, "message", msg)
	case frameResume:
		pending.Store(false)
		if f.Cursor != "" {
			c.setCursor(f.Cursor)
		}
	case frameResync:
		pending.Store(false)
		c.resync()
	default:
		return c.deliver(ctx, f, raw, ViaWebSocket, !pending.Load())
	}
	return true
}

// redactedError hides the token that dial errors quote with the URL, so
// logs do not carry credentials.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, token string) error {
	if token == "" {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), url.QueryEscape(token), "REDACTED")
	return &redactedError{msg: strings.ReplaceAll(msg, token, "REDACTED"), err: err}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
