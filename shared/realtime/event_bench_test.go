package realtime

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
)

func benchRoster(n int, joined time.Time) []chat.Participant {
	ps := make([]chat.Participant, n)
	for i := range ps {
		ps[i] = chat.Participant{UserID: fmt.Sprintf("8:acs:bench_%04d", i), DisplayName: fmt.Sprintf("user %d", i), JoinedOn: joined, JoinedSeq: 1}
	}
	return ps
}

func benchMessage(at time.Time, sender string) chat.Message {
	return chat.Message{Seq: 7, Type: chat.TypeText, SenderID: sender, SenderDisplayName: "bench", Body: strings.Repeat("x", 1024),
		CreatedOn: at, Version: at.UnixMilli()}
}

// BenchmarkRender is one push frame: the shared data spliced with one
// recipient (the dispatcher's per-connection work).
func BenchmarkRender(b *testing.B) {
	at := time.Now()
	thread := chat.NewThreadID(at)
	data := marshal(messageData(thread, TypeMessageReceived, benchMessage(at, "8:acs:bench_0000")))
	b.ReportAllocs()
	for b.Loop() {
		_ = render("e_id", "cursor", TypeMessageReceived, thread, at, data, "8:acs:bench_0001")
	}
}

// BenchmarkMessageFanout is a received message's whole CPU path in the
// dispatcher: its occurrence (recipients from the roster), the data
// marshalled once, and one frame per recipient.
func BenchmarkMessageFanout(b *testing.B) {
	for _, n := range []int{20, 250} {
		b.Run(fmt.Sprintf("n%d", n), func(b *testing.B) {
			at := time.Now()
			thread := chat.NewThreadID(at.Add(-time.Hour))
			roster := benchRoster(n, at.Add(-time.Hour))
			m := benchMessage(at, roster[0].UserID)
			ch := chat.Change{ThreadID: thread, Message: &m}
			b.ReportAllocs()
			for b.Loop() {
				for _, o := range occurrences(ch, nil, roster) {
					data := marshal(o.Data)
					for _, r := range o.Recipients {
						_ = render(o.ID, "cursor", o.Type, o.ThreadID, o.At, data, r)
					}
				}
			}
		})
	}
}
