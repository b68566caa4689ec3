package chat

import "time"

// Who hears about a change. Real-time events and partner events follow the
// same rules, and the rules depend only on the change and the roster's
// membership history (join and removal sequence ids and times), never on
// who happens to be in the thread when the change is dispatched: a change
// retried after a later removal reaches the same people as the first try.

// MemberAtSeq reports whether p was in the thread just after the change with
// sequence id seq: added at or before it and not removed by then.
func (p Participant) MemberAtSeq(seq int64) bool {
	return p.JoinedSeq <= seq && (p.Current() || p.RemovedSeq > seq)
}

// MemberAt reports whether p was in the thread at t.
func (p Participant) MemberAt(t time.Time) bool {
	return !p.JoinedOn.After(t) && (p.Current() || p.RemovedOn.After(t))
}

// Founders are the participants a thread was created with.
func Founders(roster []Participant) []Participant {
	var out []Participant
	for _, p := range roster {
		if p.JoinedSeq <= 1 {
			out = append(out, p)
		}
	}
	return out
}

// UserIDs lists the participants' ids.
func UserIDs(ps []Participant) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.UserID)
	}
	return out
}

func audience(roster []Participant, in func(Participant) bool) []string {
	var out []string
	for _, p := range roster {
		if in(p) {
			out = append(out, p.UserID)
		}
	}
	return out
}

// MembersAtSeq lists who was in the thread just after change seq.
func MembersAtSeq(roster []Participant, seq int64) []string {
	return audience(roster, func(p Participant) bool { return p.MemberAtSeq(seq) })
}

// MembersAt lists who was in the thread at t.
func MembersAt(roster []Participant, t time.Time) []string {
	return audience(roster, func(p Participant) bool { return p.MemberAt(t) })
}

// Arrival lists who a new message m is news to: those present when it was
// sent who may see it.
func Arrival(roster []Participant, m Message) []string {
	return audience(roster, func(p Participant) bool { return p.Present(m) })
}

// SeeingAt lists who, being in the thread at t, may see message m: the
// audience of an edit, deletion or read receipt of m made at t.
func SeeingAt(roster []Participant, m Message, t time.Time) []string {
	return audience(roster, func(p Participant) bool { return p.MemberAt(t) && p.Sees(m) })
}
