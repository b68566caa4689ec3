package chat

import (
	"slices"
	"testing"
	"time"
)

func TestAudience(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	roster := []Participant{
		{UserID: "ann", JoinedSeq: 1, JoinedOn: at(0)},                                                           // founder, still in
		{UserID: "ben", JoinedSeq: 1, JoinedOn: at(0), RemovedSeq: 5, RemovedOn: at(30)},                         // founder, removed at seq 5
		{UserID: "cid", JoinedSeq: 4, JoinedOn: at(20)},                                                          // added at seq 4
		{UserID: "dee", JoinedSeq: 4, JoinedOn: at(20), ShareHistoryTime: at(20)},                                // added at 4, no history
		{UserID: "eve", JoinedSeq: 6, JoinedOn: at(40), RemovedSeq: 7, RemovedOn: at(50)},                        // in between 6 and 7
		{UserID: "fay", JoinedSeq: 0, JoinedOn: at(0), RemovedSeq: 2, RemovedOn: at(1), ShareHistoryTime: at(0)}, // an old row without jseq
	}
	early := Message{Seq: 3, CreatedOn: at(10)} // before cid and dee joined
	late := Message{Seq: 6, CreatedOn: at(40)}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"founders", UserIDs(Founders(roster)), []string{"ann", "ben", "fay"}},
		{"members at seq 1", MembersAtSeq(roster, 1), []string{"ann", "ben", "fay"}},
		{"members at seq 4", MembersAtSeq(roster, 4), []string{"ann", "ben", "cid", "dee"}},
		{"members at seq 5: ben's removal is not his", MembersAtSeq(roster, 5), []string{"ann", "cid", "dee"}},
		{"members at seq 6", MembersAtSeq(roster, 6), []string{"ann", "cid", "dee", "eve"}},
		{"members at 25 min", MembersAt(roster, at(25)), []string{"ann", "ben", "cid", "dee"}},
		{"members at 45 min", MembersAt(roster, at(45)), []string{"ann", "cid", "dee", "eve"}},
		{"members at 60 min", MembersAt(roster, at(60)), []string{"ann", "cid", "dee"}},
		{"arrival of an early message: only who was there", Arrival(roster, early), []string{"ann", "ben"}},
		{"arrival of a late message", Arrival(roster, late), []string{"ann", "cid", "dee", "eve"}},
		{"an early message edited at 25 min: cid sees history, dee does not", SeeingAt(roster, early, at(25)), []string{"ann", "ben", "cid"}},
		{"an early message edited at 60 min: ben has left", SeeingAt(roster, early, at(60)), []string{"ann", "cid"}},
		{"a late message read at 45 min", SeeingAt(roster, late, at(45)), []string{"ann", "cid", "dee", "eve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !slices.Equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}
