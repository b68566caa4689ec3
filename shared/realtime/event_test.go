package realtime

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/acs"
)

var sevenDigits = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`)

func TestRender(t *testing.T) {
	at := time.Date(2026, 11, 26, 2, 25, 49, 61_234_567, time.FixedZone("x", 3600))
	body := map[string]any{"message": "<b>hi</b> & \"bye\"", "sequenceId": "3"}
	tests := []struct {
		name       string
		id, cursor string
		data       []byte
		wantData   map[string]any // besides recipient
	}{
		{name: "with data", id: "e_1", cursor: "c1", data: marshal(body), wantData: map[string]any{"message": "<b>hi</b> & \"bye\"", "sequenceId": "3"}},
		{name: "empty data", id: "e_2", cursor: "c2", data: []byte(`{}`), wantData: map[string]any{}},
		{name: "nil data", id: "e_3", cursor: "c3", data: nil, wantData: map[string]any{}},
		{name: "no cursor", id: "e_4", data: marshal(map[string]any{"k": 1}), wantData: map[string]any{"k": float64(1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := render(tc.id, tc.cursor, TypeMessageReceived, occThread, at, tc.data, uBob)
			if !json.Valid(b) {
				t.Fatalf("not valid JSON: %s", b)
			}
			var raw map[string]json.RawMessage
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatal(err)
			}
			f := decodeFrame(t, b)
			if f.ID != tc.id || f.Type != TypeMessageReceived || f.ThreadID != occThread {
				t.Errorf("id, type, threadId = %q, %q, %q", f.ID, f.Type, f.ThreadID)
			}
			if _, has := raw["cursor"]; has != (tc.cursor != "") || f.Cursor != tc.cursor {
				t.Errorf("cursor = %q (present %v), want %q", f.Cursor, has, tc.cursor)
			}
			if f.OccurredOn != "2026-11-26T01:25:49.0612345Z" || !sevenDigits.MatchString(f.OccurredOn) {
				t.Errorf("occurredOn = %q", f.OccurredOn)
			}
			// The recipient comes first in data.
			if !bytes.Contains(b, []byte(`"data":{"recipient":{`)) {
				t.Errorf("recipient is not data's first field: %s", b)
			}
			rec, _ := f.Data["recipient"].(map[string]any)
			if rawID(rec) != uBob || rec["kind"] != acs.KindCommunicationUser {
				t.Errorf("recipient = %#v", f.Data["recipient"])
			}
			if cu, _ := rec["communicationUser"].(map[string]any); cu["id"] != uBob {
				t.Errorf("recipient.communicationUser = %#v", rec["communicationUser"])
			}
			if len(f.Data) != len(tc.wantData)+1 {
				t.Errorf("data has %d fields, want %d: %s", len(f.Data), len(tc.wantData)+1, b)
			}
			for k, v := range tc.wantData {
				if f.Data[k] != v {
					t.Errorf("data[%q] = %#v, want %#v", k, f.Data[k], v)
				}
			}
		})
	}
}

func TestRenderNoHTMLEscaping(t *testing.T) {
	data := marshal(map[string]any{"message": "a<b>&c", "metadata": map[string]string{"x": "<y>"}})
	b := render("e_1", "", TypeMessageReceived, "19:<t>@thread.v2", time.Unix(0, 0), data, "8:acs:<u>")
	for _, want := range []string{`"message":"a<b>&c"`, `"x":"<y>"`, `"threadId":"19:<t>@thread.v2"`, `"rawId":"8:acs:<u>"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("frame lacks %s: %s", want, b)
		}
	}
	if bytes.Contains(b, []byte(`\u003c`)) || bytes.Contains(b, []byte(`\u0026`)) {
		t.Errorf("HTML-escaped: %s", b)
	}
}

func TestEventIDShape(t *testing.T) {
	a, b := eventID("t", "received", "1"), eventID("t", "received", "1")
	if a != b {
		t.Fatalf("eventID not deterministic: %s %s", a, b)
	}
	if !regexp.MustCompile(`^e_[A-Za-z0-9_-]{22}$`).MatchString(a) {
		t.Errorf("eventID = %q", a)
	}
	// Parts are separated, not concatenated.
	if eventID("t", "ab", "c") == eventID("t", "a", "bc") {
		t.Error("eventID does not separate its parts")
	}
}

func TestCursorRoundTrip(t *testing.T) {
	tests := []struct {
		k    FeedKey
		live bool
	}{
		{FeedKey{Pos: 1795659948989, EventID: "e_Qm9n3C1mDq0Jx3xkq7Tq2A"}, true},
		{FeedKey{Pos: 1795659948989, EventID: "e_Qm9n3C1mDq0Jx3xkq7Tq2A"}, false},
		{FeedKey{Pos: 0, EventID: ""}, false},
		{FeedKey{Pos: 42, EventID: ""}, true},
		{FeedKey{Pos: 7, EventID: "odd|id|with|bars"}, false},
	}
	for _, tc := range tests {
		c := encodeCursor(tc.k, tc.live)
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("cursor %q is not raw URL base64", c)
		}
		k, live, err := decodeCursor(c)
		if err != nil || k != tc.k || live != tc.live {
			t.Errorf("decodeCursor(encodeCursor(%+v, %v)) = %+v, %v, %v", tc.k, tc.live, k, live, err)
		}
	}
	if encodeCursor(FeedKey{Pos: 1, EventID: "e"}, true) == encodeCursor(FeedKey{Pos: 1, EventID: "e"}, false) {
		t.Error("live and settled cursors are the same")
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := map[string]string{
		"empty":             "",
		"not base64":        "!!!not a cursor!!!",
		"padded base64":     base64.URLEncoding.EncodeToString([]byte("f1|s|12|e_x")),
		"plain text":        enc("hello"),
		"wrong version":     enc("f2|s|12|e_x"),
		"no version":        enc("|s|12|e_x"),
		"bad flag":          enc("f1|x|12|e_x"),
		"empty flag":        enc("f1||12|e_x"),
		"negative position": enc("f1|s|-1|e_x"),
		"position not int":  enc("f1|s|12.5|e_x"),
		"empty position":    enc("f1|l||e_x"),
		"too few parts":     enc("f1|s|12"),
	}
	for name, c := range tests {
		k, live, err := decodeCursor(c)
		if !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("%s: decodeCursor(%q) = %+v, %v, %v; want ErrInvalidCursor", name, c, k, live, err)
		}
	}
}
