package acs_test

// FuzzParseTime: a time ParseTime accepts is written back by FormatTime in
// a form ParseTime (and the SDKs) read as the same instant, to the 100 ns
// the service format keeps; acs.Time's JSON round-trips the same way.
//
// FuzzResolveUser: an identifier resolves only to an ACS user id, the one
// it names.
//
// Short runs:
//   go test ./shared/acs -run '^$' -fuzz '^FuzzParseTime$' -fuzztime 10s
//   go test ./shared/acs -run '^$' -fuzz '^FuzzResolveUser$' -fuzztime 10s

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/acs"
)

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-01-02T03:04:05Z", "2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05.1234567Z", "2025-01-02T03:04:05.123456789+02:00",
		"2025-01-01T00:00:00+14:00", "0000-01-01T00:00:00Z", "0000-01-01T00:00:00+14:00", "9999-12-31T23:59:59.9999999Z", "9999-12-31T23:00:00-14:00",
		"2025-01-02T03:04:05", "2025-01-02", "Thu, 02 Jan 2025 03:04:05 GMT", "", "0", "2025-02-30T00:00:00Z", "2025-01-02T24:00:00Z", "2025-01-02t03:04:05z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := acs.ParseTime(s)
		if utf8.ValidString(s) {
			quoted, _ := json.Marshal(s)
			var tm acs.Time
			if jerr := json.Unmarshal(quoted, &tm); (jerr == nil) != (err == nil) || (err == nil && !tm.Equal(v)) {
				t.Fatalf("acs.Time reads %s as %v, %v; ParseTime gives %v, %v", quoted, tm, jerr, v, err)
			}
		}
		if err != nil {
			return
		}
		out := acs.FormatTime(v)
		back, err := acs.ParseTime(out)
		if err != nil || !back.Equal(v.Truncate(100*time.Nanosecond)) {
			t.Fatalf("ParseTime(%q) = %v, written back as %q, which reads as %v (%v)", s, v, out, back, err)
		}
		b, err := json.Marshal(acs.Time{Time: v})
		var tm acs.Time
		if err != nil || json.Unmarshal(b, &tm) != nil || !tm.Equal(back) {
			t.Fatalf("acs.Time JSON of %v: %s, %v", v, b, err)
		}
	})
}

func FuzzResolveUser(f *testing.F) {
	for _, s := range []string{`{"communicationUser":{"id":"` + me + `"}}`, `{"rawId":"` + me + `"}`, `{"rawId":"` + other + `","communicationUser":{"id":"` + me + `"}}`,
		`{"communicationUser":{"id":"x"}}`, `{"communicationUser":{"id":""}}`, `{"rawId":"4:+1","phoneNumber":{"value":"+1"}}`, `{}`,
		`{"rawId":"8:orgid:a","microsoftTeamsUser":{"userId":"a"}}`, `{"microsoftTeamsApp":{"appId":"a"}}`, `{"kind":"communicationUser","rawId":"` + me + `"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var id acs.Identifier
		if json.Unmarshal(b, &id) != nil {
			return
		}
		got, ok, reason := acs.ResolveUser(id)
		if ok != (reason == "") {
			t.Fatalf("ResolveUser(%s) = %q, %v, %q", b, got, ok, reason)
		}
		if !ok {
			return
		}
		if !acs.IsACSUserID(got) {
			t.Fatalf("ResolveUser(%s) = %q, not an ACS user id", b, got)
		}
		if (id.RawID != "" && id.RawID != got) || (id.CommunicationUser != nil && id.CommunicationUser.ID != got) ||
			id.PhoneNumber != nil || id.MicrosoftTeamsUser != nil || id.MicrosoftTeamsApp != nil {
			t.Fatalf("ResolveUser(%s) = %q", b, got)
		}
	})
}
