package rtclient

import (
	"container/list"
	"context"
	"encoding/json"
	"time"
)

// frame is any server frame: an event or a control frame.
type frame struct {
	ID         string          `json:"id"`
	Cursor     string          `json:"cursor"`
	Type       string          `json:"type"`
	ThreadID   string          `json:"threadId"`
	OccurredOn string          `json:"occurredOn"`
	Data       json.RawMessage `json:"data"`
	Error      *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Control frame types (docs/realtime.md, "Control frames").
const (
	framePong   = "pong"
	frameResume = "resumed"
	frameResync = "resyncRequired"
	frameError  = "error"
)

// deliver emits an event unless its id was seen, and then moves the cursor
// to it (when advance): only once the event is handed over, so a cursor
// never runs ahead of what the app has. It returns false when ctx ended.
func (c *Client) deliver(ctx context.Context, f frame, raw []byte, via string, advance bool) bool {
	c.mu.Lock()
	dup := f.ID != "" && !c.seen.add(f.ID)
	if dup {
		c.duplicates++
	}
	c.mu.Unlock()
	if !dup {
		ev := Event{
			ID: f.ID, Cursor: f.Cursor, Type: f.Type, ThreadID: f.ThreadID, Data: f.Data,
			Raw: append([]byte(nil), raw...), Via: via,
		}
		if t, err := time.Parse(time.RFC3339Nano, f.OccurredOn); err == nil {
			ev.OccurredOn = t
		}
		select {
		case c.events <- ev:
		case <-ctx.Done():
			c.mu.Lock()
			c.seen.remove(f.ID) // not delivered: a later Run may deliver it
			c.mu.Unlock()
			return false
		}
	}
	if advance && f.Cursor != "" {
		c.setCursor(f.Cursor)
	}
	return true
}

// idSet remembers the most recently seen ids, up to a bound (an LRU).
type idSet struct {
	max   int
	order *list.List // front = most recent
	ids   map[string]*list.Element
}

func newIDSet(max int) *idSet {
	return &idSet{max: max, order: list.New(), ids: make(map[string]*list.Element, max)}
}

// add records id and reports whether it is new.
func (s *idSet) add(id string) bool {
	if e, ok := s.ids[id]; ok {
		s.order.MoveToFront(e)
		return false
	}
	s.ids[id] = s.order.PushFront(id)
	if s.order.Len() > s.max {
		oldest := s.order.Back()
		s.order.Remove(oldest)
		delete(s.ids, oldest.Value.(string))
	}
	return true
}

func (s *idSet) remove(id string) {
	if e, ok := s.ids[id]; ok {
		s.order.Remove(e)
		delete(s.ids, id)
	}
}
