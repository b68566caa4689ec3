package chat_test

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

var threadIDPattern = regexp.MustCompile(`^19:[a-z2-7]{26}@thread\.v2$`)

func TestNewThreadID(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		id := chat.NewThreadID(at)
		if !threadIDPattern.MatchString(id) {
			t.Fatalf("NewThreadID() = %q; want 19:[a-z2-7]{26}@thread.v2", id)
		}
		if !chat.ValidThreadID(id) {
			t.Fatalf("ValidThreadID(%q) = false", id)
		}
		if seen[id] {
			t.Fatalf("NewThreadID() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestValidThreadID(t *testing.T) {
	good := chat.NewThreadID(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	body := strings.TrimSuffix(strings.TrimPrefix(good, "19:"), "@thread.v2")
	tests := []struct {
		id   string
		want bool
	}{
		{good, true},
		{"", false},
		{"19:@thread.v2", false},
		{"19:" + body, false},
		{body + "@thread.v2", false},
		{"19:" + body + "@thread.v1", false},
		{"19:" + body[:25] + "@thread.v2", false},
		{"19:" + body + "a@thread.v2", false},
		{"19:" + body[:25] + "1@thread.v2", false}, // '1' is not base32
		{"19:" + body[:25] + "!@thread.v2", false},
		{"19:mockthread_abc123@thread.v2", false},
		{"19:meeting_abc@thread.skype", false},
		{"20:" + body + "@thread.v2", false},
	}
	for _, tt := range tests {
		if got := chat.ValidThreadID(tt.id); got != tt.want {
			t.Errorf("ValidThreadID(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
}

func TestMessageIDRoundTrip(t *testing.T) {
	created := time.Date(2025, 6, 1, 12, 0, 0, 456_000_000, time.UTC)
	id := chat.NewThreadID(created)
	prev := int64(0)
	for _, seq := range []int64{1, 2, 3, 10, 999, 1 << 20, 1 << 40} {
		mid := chat.MessageID(id, seq)
		// The documented shape: the thread's creation epoch-ms plus seq.
		if want := strconv.FormatInt(created.UnixMilli()+seq, 10); mid != want {
			t.Errorf("MessageID(seq %d) = %s; want %s", seq, mid, want)
		}
		n, err := strconv.ParseInt(mid, 10, 64)
		if err != nil || n <= prev {
			t.Errorf("MessageID(seq %d) = %s; want numeric and increasing with seq", seq, mid)
		}
		prev = n
		got, ok := chat.MessageSeq(id, mid)
		if !ok || got != seq {
			t.Errorf("MessageSeq(MessageID(%d)) = %d, %v; want %d, true", seq, got, ok, seq)
		}
	}
}

func TestMessageSeqRejectsForeignIDs(t *testing.T) {
	created := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	id := chat.NewThreadID(created)
	older := chat.NewThreadID(created.Add(-time.Hour))
	base := created.UnixMilli()
	tests := []struct {
		name      string
		threadID  string
		messageID string
	}{
		{"empty", id, ""},
		{"not a number", id, "abc"},
		{"negative", id, "-5"},
		{"zero", id, "0"},
		{"sequence 0 (the base itself)", id, strconv.FormatInt(base, 10)},
		{"below the base", id, strconv.FormatInt(base-1, 10)},
		{"an id of an older thread", id, chat.MessageID(older, 5)},
		{"leading space", id, " " + strconv.FormatInt(base+1, 10)},
		{"decimal", id, strconv.FormatInt(base+1, 10) + ".0"},
		{"hex", id, "0x" + strconv.FormatInt(base+1, 16)},
		{"overflow", id, "99999999999999999999999"},
		{"thread id of another shape", "19:nope@thread.v2", strconv.FormatInt(math.MaxInt64, 10)},
		{"invalid thread id", "not-a-thread", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if seq, ok := chat.MessageSeq(tt.threadID, tt.messageID); ok {
				t.Errorf("MessageSeq(%q, %q) = %d, true; want false", tt.threadID, tt.messageID, seq)
			}
		})
	}
}

func TestThreadDeletedAtAndActivity(t *testing.T) {
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	deleted := created.Add(48 * time.Hour)
	ret30 := chat.Retention{Kind: chat.RetentionThreadCreationDate, Days: 30}
	tests := []struct {
		name string
		th   chat.Thread
		now  time.Time
		want time.Time
	}{
		{"live, no retention", chat.Thread{CreatedOn: created}, created.AddDate(1, 0, 0), time.Time{}},
		{"deleted explicitly", chat.Thread{CreatedOn: created, DeletedOn: deleted}, created.AddDate(1, 0, 0), deleted},
		{"retention not yet reached", chat.Thread{CreatedOn: created, Retention: ret30}, created.Add(30*24*time.Hour - time.Millisecond), time.Time{}},
		{"retention reached exactly", chat.Thread{CreatedOn: created, Retention: ret30}, created.Add(30 * 24 * time.Hour), created.Add(30 * 24 * time.Hour)},
		{"retention passed", chat.Thread{CreatedOn: created, Retention: ret30}, created.AddDate(0, 3, 0), created.Add(30 * 24 * time.Hour)},
		{"explicit deletion wins over retention", chat.Thread{CreatedOn: created, Retention: ret30, DeletedOn: deleted}, created.AddDate(0, 3, 0), deleted},
		{"retention none", chat.Thread{CreatedOn: created, Retention: chat.Retention{Kind: chat.RetentionNone}}, created.AddDate(1, 0, 0), time.Time{}},
	}
	for _, tt := range tests {
		if got := tt.th.DeletedAt(tt.now); !got.Equal(tt.want) {
			t.Errorf("%s: DeletedAt = %v; want %v", tt.name, got, tt.want)
		}
	}

	if got := (chat.Thread{CreatedOn: created}).Activity(); !got.Equal(created) {
		t.Errorf("Activity without messages = %v; want CreatedOn", got)
	}
	last := created.Add(time.Hour)
	if got := (chat.Thread{CreatedOn: created, LastMessageAt: last}).Activity(); !got.Equal(last) {
		t.Errorf("Activity = %v; want LastMessageAt", got)
	}
	if !(chat.Participant{}).Current() || (chat.Participant{RemovedOn: created}).Current() {
		t.Error("Participant.Current() is wrong")
	}
}

func TestMetadataSize(t *testing.T) {
	tests := []struct {
		m    map[string]string
		want int
	}{
		{nil, 0},
		{map[string]string{}, 0},
		{map[string]string{"a": "b"}, len(`{"a":"b"}`)},
		{map[string]string{"k": "é"}, len(`{"k":"é"}`)},
		{map[string]string{"a": "1", "b": "2"}, len(`{"a":"1","b":"2"}`)},
		// The compact JSON a client sends: '<', '>' and '&' are one byte
		// each, not a six-byte \u00XX escape.
		{map[string]string{"url": "https://x.test/?a=1&b=2"}, len(`{"url":"https://x.test/?a=1&b=2"}`)},
		{map[string]string{"html": "<b>hi</b>"}, len(`{"html":"<b>hi</b>"}`)},
	}
	for _, tt := range tests {
		if got := chat.MetadataSize(tt.m); got != tt.want {
			t.Errorf("MetadataSize(%v) = %d; want %d", tt.m, got, tt.want)
		}
	}
}
