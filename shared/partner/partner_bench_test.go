package partner_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/partner"
)

// BenchmarkMessageEvents builds a received message's partner events: one
// thread-level event, plus one per recipient with user-level events on.
func BenchmarkMessageEvents(b *testing.B) {
	for _, n := range []int{20, 250} {
		for _, userLevel := range []bool{false, true} {
			b.Run(fmt.Sprintf("n%d_userlevel_%v", n, userLevel), func(b *testing.B) {
				at := time.Now()
				roster := make([]chat.Participant, n)
				for i := range roster {
					roster[i] = chat.Participant{UserID: fmt.Sprintf("8:acs:bench_%04d", i), JoinedOn: at.Add(-time.Hour), JoinedSeq: 1}
				}
				m := chat.Message{Seq: 7, Type: chat.TypeText, SenderID: roster[0].UserID, SenderDisplayName: "bench",
					Body: strings.Repeat("x", 1024), CreatedOn: at, Version: at.UnixMilli()}
				ch := chat.Change{ThreadID: chat.NewThreadID(at.Add(-time.Hour)), Message: &m}
				want := 1
				if userLevel {
					want = n
				}
				if got := len(partner.Events(ch, roster, userLevel)); got != want {
					b.Fatalf("%d events, want %d", got, want)
				}
				b.ReportAllocs()
				for b.Loop() {
					_ = partner.Events(ch, roster, userLevel)
				}
			})
		}
	}
}
