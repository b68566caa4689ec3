package chat

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/threadline/threadline/shared/fault"
)

// threadCursor is the position after the last thread of a page: the snapshot
// time of the listing and the (activity, id) of that thread.
type threadCursor struct {
	Snapshot int64
	Activity int64
	ID       string
}

// before reports whether s sorts after the cursor position (newest first).
func (c threadCursor) before(s ThreadSummary) bool {
	a := s.Activity.UnixMilli()
	return a < c.Activity || (a == c.Activity && s.ID < c.ID)
}

func (c threadCursor) encode() string {
	raw := fmt.Sprintf("t1|%d|%d|%s", c.Snapshot, c.Activity, c.ID)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeThreadCursor(s string) (threadCursor, error) {
	bad := fault.Invalid("InvalidContinuationToken", "syncState", "The continuation token is not one this service issued; start the listing again without it.")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return threadCursor{}, bad
	}
	parts := strings.SplitN(string(raw), "|", 4)
	if len(parts) != 4 || parts[0] != "t1" || !ValidThreadID(parts[3]) {
		return threadCursor{}, bad
	}
	snap, err1 := strconv.ParseInt(parts[1], 10, 64)
	act, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return threadCursor{}, bad
	}
	return threadCursor{Snapshot: snap, Activity: act, ID: parts[3]}, nil
}

// A message cursor is the last sequence id a page returned: the next page
// holds only older messages, so newer arrivals never shift it.
func encodeSeqCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("m1|%d", seq)))
}

func decodeSeqCursor(s string) (int64, error) {
	bad := fault.Invalid("InvalidContinuationToken", "syncState", "The continuation token is not one this service issued; start the listing again without it.")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return 0, bad
	}
	v, ok := strings.CutPrefix(string(raw), "m1|")
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, bad
	}
	return n, nil
}
