package rtclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// page is the long-poll answer.
type page struct {
	Value  []json.RawMessage `json:"value"`
	Cursor string            `json:"cursor"`
}

// longPoll polls GET /chat/events until the WebSocket works again (it
// returns the open connection, whose URL resumed from the cursor of the
// moment, so nothing between the two paths is lost), ctx ends, or the token
// keeps being refused.
func (c *Client) longPoll(ctx context.Context) (*wsConn, error) {
	c.setState(StateLongPoll)
	c.log.Warn("rtclient: WebSocket keeps failing; long polling")
	pctx, cancel := context.WithCancel(ctx)
	handoff := make(chan *wsConn, 1)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		c.probe(pctx, cancel, handoff)
	}()
	defer func() {
		cancel()
		<-probeDone
		select {
		case wc := <-handoff: // opened while we were giving up
			wc.conn.CloseNow()
		default:
		}
	}()

	refused, failures := 0, 0
	for {
		select {
		case wc := <-handoff:
			c.log.Info("rtclient: WebSocket is back; stopping long polling")
			return wc, nil
		default:
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p, status, code, err := c.pollOnce(pctx)
		select {
		case wc := <-handoff:
			// The probe cancelled this poll, or won the race with it: the
			// connection resumes from a cursor no newer than ours, so
			// dropping an unprocessed answer loses nothing.
			c.log.Info("rtclient: WebSocket is back; stopping long polling")
			return wc, nil
		default:
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		switch {
		case err != nil:
			failures++
			c.log.Warn("rtclient: long poll failed", "error", err.Error(), "attempt", failures)
			sleep(pctx, c.cfg.Backoff(failures-1))
		case status == http.StatusOK:
			refused, failures = 0, 0
			for _, raw := range p.Value {
				var f frame
				if err := json.Unmarshal(raw, &f); err != nil || f.Type == "" {
					c.log.Warn("rtclient: unreadable event", "event", truncate(raw))
					continue
				}
				// ctx, not pctx: a WebSocket coming back must not
				// interrupt handing over what we already have.
				if !c.deliver(ctx, f, raw, ViaLongPoll, true) {
					return nil, ctx.Err()
				}
			}
			if p.Cursor != "" {
				c.setCursor(p.Cursor)
			}
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			refused++
			if refused >= c.refusalLimit() {
				return nil, fmt.Errorf("%w: long polling was refused %d times in a row (HTTP %d %s)", ErrTokenRefused, refused, status, code)
			}
			c.log.Warn("rtclient: long poll refused", "status", status, "code", code, "attempt", refused)
			sleep(pctx, c.cfg.Backoff(refused-1))
		case status == http.StatusGone || (status == http.StatusBadRequest && code == "InvalidCursor"):
			// CursorExpired (410) or a cursor this service did not issue:
			// the same as resyncRequired on the WebSocket.
			c.resync()
		default:
			failures++
			c.log.Warn("rtclient: long poll failed", "status", status, "code", code, "attempt", failures)
			sleep(pctx, c.cfg.Backoff(failures-1))
		}
	}
}

// probe tries the WebSocket every WebSocketRetry; once one opens it hands
// it over and cancels the poll in flight.
func (c *Client) probe(ctx context.Context, cancelPoll context.CancelFunc, handoff chan<- *wsConn) {
	t := time.NewTicker(c.cfg.WebSocketRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wc, err := c.dial(ctx, c.Cursor())
		if err != nil {
			c.log.Debug("rtclient: WebSocket still failing", "error", err.Error())
			continue
		}
		handoff <- wc
		cancelPoll()
		return
	}
}

// pollOnce is one GET /chat/events; code is the ACS error code of a failure.
func (c *Client) pollOnce(ctx context.Context) (p page, status int, code string, err error) {
	tok, err := c.cfg.Token(ctx)
	if err != nil {
		return p, 0, "", fmt.Errorf("token: %w", err)
	}
	q := url.Values{"timeoutSeconds": {strconv.Itoa(max(1, int(c.cfg.PollTimeout/time.Second)))}}
	if cur := c.Cursor(); cur != "" {
		q.Set("cursor", cur)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.cfg.HTTPAPI, "/")+"/chat/events?"+q.Encode(), nil)
	if err != nil {
		return p, 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return p, 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return p, 0, "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return p, resp.StatusCode, e.Error.Code, nil
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, 0, "", errors.New("unreadable long-poll answer: " + truncate(body))
	}
	return p, http.StatusOK, "", nil
}
