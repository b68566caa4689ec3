package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/local/rtclient"
)

func TestFormatEvent(t *testing.T) {
	user := func(id string) map[string]any {
		return map[string]any{"kind": "communicationUser", "rawId": id, "communicationUser": map[string]any{"id": id}}
	}
	member := func(id, name string) map[string]any {
		return map[string]any{"communicationIdentifier": user(id), "displayName": name}
	}
	names := map[string]string{"8:acs:r_bob": "bob", "8:acs:r_carol": "carol"}
	at := time.Date(2026, 11, 26, 12, 3, 4, 0, time.Local)
	const thread = "19:abcdefghijklmnop@thread.v2"
	for _, tc := range []struct {
		typ  string
		data map[string]any
		want string
	}{
		{"chatMessageReceived", map[string]any{"sender": user("8:acs:r_bob"), "senderDisplayName": "Bobby", "message": "hello\nworld"}, "bob: hello⏎world"},
		{"chatMessageReceived", map[string]any{"sender": user("8:acs:r_stranger_0123456789"), "senderDisplayName": "Zed", "message": "hi"}, "Zed: hi"},
		{"chatMessageReceived", map[string]any{"sender": user("8:acs:r_bob"), "contentOmitted": true, "id": "17"}, "bob: (too big to push; fetch message 17)"},
		{"chatMessageEdited", map[string]any{"sender": user("8:acs:r_bob"), "message": "fixed"}, "bob edited: fixed"},
		{"chatMessageDeleted", map[string]any{"sender": user("8:acs:r_bob"), "id": "17"}, "bob deleted message 17"},
		{"readReceiptReceived", map[string]any{"sender": user("8:acs:r_carol"), "chatMessageId": "17"}, "carol read message 17"},
		{"typingIndicatorReceived", map[string]any{"sender": user("8:acs:r_bob")}, "bob is typing"},
		{"chatThreadCreated", map[string]any{"createdBy": member("8:acs:r_bob", ""), "properties": map[string]any{"topic": "t"}, "participants": []any{member("8:acs:r_bob", ""), member("8:acs:r_x_0123456789abcdef", "Xavier")}}, `bob created "t" with bob, Xavier`},
		{"chatThreadPropertiesUpdated", map[string]any{"updatedBy": member("8:acs:r_bob", ""), "properties": map[string]any{"topic": "new"}}, `bob set the topic to "new"`},
		{"chatThreadDeleted", map[string]any{"deletedBy": member("8:acs:r_bob", "")}, "bob deleted the thread"},
		{"participantsAdded", map[string]any{"addedBy": member("8:acs:r_bob", ""), "participantsAdded": []any{member("8:acs:r_carol", "")}}, "bob added carol"},
		{"participantsRemoved", map[string]any{"removedBy": member("8:acs:r_bob", ""), "participantsRemoved": []any{member("8:acs:r_nobody_0123456789", "")}}, "bob removed …23456789"},
	} {
		data, _ := json.Marshal(tc.data)
		got := formatEvent(rtclient.Event{Type: tc.typ, ThreadID: thread, OccurredOn: at, Data: data}, func(id string) string { return names[id] })
		want := "12:03:04 " + tc.typ + " 19:abcdef…@thread.v2 " + tc.want
		if got != want {
			t.Errorf("%s:\n got %q\nwant %q", tc.typ, got, want)
		}
	}
	if got := shortThread("19:short@thread.v2"); got != "19:short@thread.v2" {
		t.Errorf("short thread id changed: %q", got)
	}
	if got := formatEvent(rtclient.Event{Type: "somethingNew", Data: json.RawMessage(`{"a":1}`)}, func(string) string { return "" }); !strings.HasSuffix(got, `somethingNew  {"a":1}`) {
		t.Errorf("unknown type: %q", got)
	}
}
