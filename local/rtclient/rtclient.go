// Package rtclient is a Go client for Threadline's real-time protocol
// (docs/realtime.md): it keeps a WebSocket open, resumes from its last cursor
// after every drop, falls back to long polling GET /chat/events when
// WebSockets keep failing, and hands events over deduplicated by id.
package rtclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one event as the server sent it.
type Event struct {
	ID, Cursor, Type, ThreadID string
	OccurredOn                 time.Time
	Data                       json.RawMessage
	Raw                        []byte // the frame as received
	Via                        string // "websocket" or "longpoll"
}

// Delivery paths (Event.Via) and client states (Client.State).
const (
	ViaWebSocket = "websocket"
	ViaLongPoll  = "longpoll"

	StateConnecting = "connecting"
	StateWebSocket  = "websocket"
	StateLongPoll   = "longpoll"
	StateStopped    = "stopped"
)

// ErrTokenRefused is what Run returns (wrapped) when the server keeps
// refusing the tokens Config.Token gives: retrying cannot help.
var ErrTokenRefused = errors.New("rtclient: the server refuses the token")

// Config says where to connect and how to behave; zero fields take defaults.
type Config struct {
	WebSocketURL  string                                    // wss://host:port (stack.json "webSocket")
	HTTPAPI       string                                    // https://host:port, for GET /chat/events long polling; "" = never long poll
	Token         func(ctx context.Context) (string, error) // called on every (re)connect and poll, so tokens can be refreshed
	HTTPClient    *http.Client                              // TLS trust for both (acsclient.HTTPClient(caFile)); http.DefaultClient when nil
	Cursor        string                                    // resume from here; "" = from now
	FallbackAfter int                                       // consecutive failed WebSocket connects before long polling (default 3); negative = never fall back
	PollTimeout   time.Duration                             // long-poll timeoutSeconds (default 20s, at most 25s)
	PingEvery     time.Duration                             // default 5 min (API Gateway drops connections idle for 10)
	Backoff       func(attempt int) time.Duration           // default: 100ms doubling to 5s with jitter
	DedupeSize    int                                       // remembered event ids (default 10000)
	Log           *slog.Logger                              // nil = silent

	// WebSocketRetry is how often a long-polling client tries the WebSocket
	// again (default 30s).
	WebSocketRetry time.Duration
	// ResumeWait is how long to wait for "resumed" after connecting with a
	// cursor before sending a resume frame ourselves (default 10s): the
	// server's own replay is best effort.
	ResumeWait time.Duration
}

// Client receives one user's events. Run it once; read Events meanwhile.
type Client struct {
	cfg    Config
	log    *slog.Logger
	events chan Event
	ran    atomic.Bool

	mu         sync.Mutex
	cursor     string
	state      string
	resyncs    int
	duplicates int
	seen       *idSet
}

// New makes a client; nothing happens until Run.
func New(cfg Config) *Client {
	if cfg.FallbackAfter == 0 {
		cfg.FallbackAfter = 3
	}
	if cfg.HTTPAPI == "" {
		cfg.FallbackAfter = -1 // nowhere to fall back to
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = 20 * time.Second
	}
	cfg.PollTimeout = min(cfg.PollTimeout, 25*time.Second) // the server's maximum
	if cfg.PingEvery <= 0 {
		cfg.PingEvery = 5 * time.Minute
	}
	if cfg.Backoff == nil {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.DedupeSize <= 0 {
		cfg.DedupeSize = 10000
	}
	if cfg.WebSocketRetry <= 0 {
		cfg.WebSocketRetry = 30 * time.Second
	}
	if cfg.ResumeWait <= 0 {
		cfg.ResumeWait = 10 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		cfg: cfg, log: log,
		events: make(chan Event, 256),
		cursor: cfg.Cursor, state: StateStopped,
		seen: newIDSet(cfg.DedupeSize),
	}
}

// DefaultBackoff is 100ms doubling to 5s, with up to half of it as jitter so
// many clients dropped together do not come back together.
func DefaultBackoff(attempt int) time.Duration {
	d := 5 * time.Second
	if attempt < 6 {
		d = min(d, 100*time.Millisecond<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// Events delivers durable events and typing indicators, deduplicated by id,
// in arrival order. It is closed when Run returns. Run waits while the
// channel is full, so a slow reader slows the client down, losing nothing.
func (c *Client) Events() <-chan Event { return c.events }

// Cursor is the position to resume from: the last durable event's cursor or
// the last "resumed" one ("" after a resync, until the next event).
func (c *Client) Cursor() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cursor
}

// State is "connecting", "websocket", "longpoll" or "stopped".
func (c *Client) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Resyncs counts resyncRequired answers (WebSocket) and expired or foreign
// cursors (long polling): each time, the app must reload state with the REST
// API, because the client continues from now.
func (c *Client) Resyncs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resyncs
}

// Duplicates counts events received again and not emitted (resume and long
// polling re-send a few on purpose; see docs/realtime.md).
func (c *Client) Duplicates() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.duplicates
}

func (c *Client) setState(s string) {
	c.mu.Lock()
	changed := c.state != s
	c.state = s
	c.mu.Unlock()
	if changed {
		c.log.Info("rtclient state", "state", s)
	}
}

func (c *Client) setCursor(cur string) {
	c.mu.Lock()
	c.cursor = cur
	c.mu.Unlock()
}

func (c *Client) resync() {
	c.mu.Lock()
	c.cursor = ""
	c.resyncs++
	c.mu.Unlock()
	c.log.Warn("rtclient: resync required; continuing from now")
}

// Run connects and receives until ctx ends, reconnecting with the last
// cursor after every drop and long polling while WebSockets keep failing.
// It returns ctx.Err(), or an error wrapping ErrTokenRefused when the server
// keeps refusing the tokens. Run closes Events when it returns.
func (c *Client) Run(ctx context.Context) error {
	if c.ran.Swap(true) {
		return errors.New("rtclient: Run called twice; make a new Client (Config.Cursor carries the position over)")
	}
	defer close(c.events)
	if c.cfg.WebSocketURL == "" || c.cfg.Token == nil {
		return errors.New("rtclient: Config needs WebSocketURL and Token")
	}
	defer c.setState(StateStopped)
	var (
		failures int // consecutive WebSocket attempts that failed (not refusals)
		refused  int // consecutive handshakes refused with 401/403
	)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var conn *wsConn
		if c.cfg.FallbackAfter > 0 && failures >= c.cfg.FallbackAfter {
			var err error
			if conn, err = c.longPoll(ctx); err != nil {
				return err
			}
			failures = 0
		}
		if conn == nil {
			c.setState(StateConnecting)
			var err error
			conn, err = c.dial(ctx, c.Cursor())
			var re *refusedError
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &re):
				refused++
				if refused >= c.refusalLimit() {
					return fmt.Errorf("%w: the WebSocket handshake was refused %d times in a row (HTTP %d)", ErrTokenRefused, refused, re.status)
				}
				c.log.Warn("rtclient: handshake refused", "status", re.status, "attempt", refused)
				sleep(ctx, c.cfg.Backoff(refused-1))
				continue
			case err != nil:
				failures++
				c.log.Warn("rtclient: WebSocket connect failed", "error", err.Error(), "attempt", failures)
				if c.cfg.FallbackAfter <= 0 || failures < c.cfg.FallbackAfter {
					sleep(ctx, c.cfg.Backoff(failures-1))
				}
				continue
			}
		}
		refused = 0
		established, err := c.serve(ctx, conn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.setState(StateConnecting)
		if established {
			failures = 0
		} else {
			// A connection that dies at once (a proxy that kills
			// WebSockets) counts as a failed connect, so we do fall back.
			failures++
		}
		c.log.Info("rtclient: connection closed", "error", errString(err))
		if c.cfg.FallbackAfter <= 0 || failures < c.cfg.FallbackAfter {
			sleep(ctx, c.cfg.Backoff(failures))
		}
	}
}

func (c *Client) refusalLimit() int {
	if c.cfg.FallbackAfter > 0 {
		return c.cfg.FallbackAfter
	}
	return 3
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
