package acs_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/acs"
)

const (
	me    = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"
	other = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000002"
)

func TestResolveUser(t *testing.T) {
	tests := []struct {
		name   string
		id     acs.Identifier
		wantID string
		wantOK bool
	}{
		{"communicationUser only", acs.Identifier{CommunicationUser: &acs.CommunicationUser{ID: me}}, me, true},
		{"rawId only", acs.Identifier{RawID: me}, me, true},
		{"both consistent", acs.Identifier{RawID: me, CommunicationUser: &acs.CommunicationUser{ID: me}}, me, true},
		{"both consistent with kind", acs.User(me), me, true},
		{"both conflicting: the rawId is the target", acs.Identifier{RawID: other, CommunicationUser: &acs.CommunicationUser{ID: me}}, other, false},
		{"communicationUser with empty id", acs.Identifier{CommunicationUser: &acs.CommunicationUser{}}, "", false},
		{"communicationUser with empty id and rawId", acs.Identifier{RawID: me, CommunicationUser: &acs.CommunicationUser{}}, "", false},
		{"phoneNumber", acs.Identifier{RawID: "4:+14255550123", PhoneNumber: &acs.PhoneNumber{Value: "+14255550123"}}, "4:+14255550123", false},
		{"phoneNumber with an ACS rawId", acs.Identifier{RawID: me, PhoneNumber: &acs.PhoneNumber{Value: "+14255550123"}}, me, false},
		{"teams user", acs.Identifier{RawID: "8:orgid:abc", MicrosoftTeamsUser: &acs.MicrosoftTeamsUser{UserID: "abc", Cloud: "public"}}, "8:orgid:abc", false},
		{"teams app", acs.Identifier{RawID: "28:orgid:app", MicrosoftTeamsApp: &acs.MicrosoftTeamsApp{AppID: "app", Cloud: "public"}}, "28:orgid:app", false},
		{"two nested models", acs.Identifier{CommunicationUser: &acs.CommunicationUser{ID: me}, PhoneNumber: &acs.PhoneNumber{Value: "+1"}}, "", false},
		{"two nested models, teams", acs.Identifier{MicrosoftTeamsUser: &acs.MicrosoftTeamsUser{UserID: "a"}, MicrosoftTeamsApp: &acs.MicrosoftTeamsApp{AppID: "b"}}, "", false},
		{"empty", acs.Identifier{}, "", false},
		{"rawId of a phone number without a nested model", acs.Identifier{RawID: "4:+14255550123"}, "4:+14255550123", false},
		{"rawId that is not an ACS user", acs.Identifier{RawID: "8:acs:not-a-resource_x"}, "8:acs:not-a-resource_x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, reason := acs.ResolveUser(tt.id)
			if ok != tt.wantOK || got != tt.wantID {
				t.Fatalf("ResolveUser() = (%q, %v, %q); want (%q, %v)", got, ok, reason, tt.wantID, tt.wantOK)
			}
			if ok && reason != "" {
				t.Errorf("reason = %q on success; want empty", reason)
			}
			if !ok && reason == "" {
				t.Errorf("reason is empty on refusal; want an explanation")
			}
		})
	}
}

func TestIsACSUserID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{me, true},
		{"8:acs:1b5cc06b-f352-4571-b1e6-d9b259b7c776_00000007-0464-274b-b274-5a3a0d00beba", true},
		{"8:acs:1B5CC06B-F352-4571-B1E6-D9B259B7C776_abc", true},
		{"8:acs:11111111-1111-1111-1111-111111111111_" + strings.Repeat("a", 128), true},
		{"8:acs:11111111-1111-1111-1111-111111111111_" + strings.Repeat("a", 129), false},
		{"8:acs:11111111-1111-1111-1111-111111111111_", false},
		{"8:acs:11111111-1111-1111-1111-11111111111_x", false}, // 35-char resource
		{"8:acs:11111111-1111-1111-1111-111111111111", false},
		{"8:acs:11111111-1111-1111-1111-111111111111_a b", false},
		{"8:acs:11111111-1111-1111-1111-111111111111_a/b", false},
		{"8:spool:11111111-1111-1111-1111-111111111111_x", false},
		{"4:+14255550123", false},
		{"", false},
		{" " + me, false},
		{me + "\n", false},
	}
	for _, tt := range tests {
		if got := acs.IsACSUserID(tt.id); got != tt.want {
			t.Errorf("IsACSUserID(%q) = %v; want %v", tt.id, got, tt.want)
		}
	}
}

// IsACSUserID is hand-written for cold-start cost; it must agree with the
// regexp it replaced.
func FuzzIsACSUserIDMatchesRegexp(f *testing.F) {
	re := regexp.MustCompile(`^8:acs:[0-9a-fA-F-]{36}_[0-9A-Za-z-]{1,128}$`)
	for _, s := range []string{me, "", "8:acs:", "8:acs:11111111-1111-1111-1111-111111111111_" + strings.Repeat("Z", 128), "8:acs:------------------------------------_-", "8:acs:11111111-1111-1111-1111-111111111111_é", me + "\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := acs.IsACSUserID(s), re.MatchString(s); got != want {
			t.Errorf("IsACSUserID(%q) = %v; the regexp says %v", s, got, want)
		}
	})
}

func TestUserResource(t *testing.T) {
	tests := map[string]string{
		me:                        "11111111-1111-1111-1111-111111111111",
		"8:acs:res_user_with_sep": "res",
		"4:+1425":                 "",
		"":                        "",
	}
	for in, want := range tests {
		if got := acs.UserResource(in); got != want {
			t.Errorf("UserResource(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestUserAndUserRef(t *testing.T) {
	b, err := json.Marshal(acs.User(me))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"communicationUser","rawId":"` + me + `","communicationUser":{"id":"` + me + `"}}`
	if string(b) != want {
		t.Errorf("User() JSON = %s; want %s", b, want)
	}
	if acs.UserRef("") != nil {
		t.Errorf("UserRef(\"\") is not nil")
	}
	if r := acs.UserRef(me); r == nil || r.RawID != me || r.CommunicationUser == nil || r.CommunicationUser.ID != me || r.Kind != acs.KindCommunicationUser {
		t.Errorf("UserRef(me) = %+v", r)
	}
}

var sevenDigits = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$`)

func TestFormatTime(t *testing.T) {
	plus2 := time.FixedZone("+02", 2*3600)
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), "2025-01-02T03:04:05.0000000Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC), "2025-01-02T03:04:05.1234567Z"},
		{time.Date(2025, 1, 2, 3, 4, 5, 100_000_000, time.UTC), "2025-01-02T03:04:05.1000000Z"},
		{time.Date(2025, 1, 1, 1, 0, 0, 500_000_000, plus2), "2024-12-31T23:00:00.5000000Z"},
	}
	for _, tt := range tests {
		got := acs.FormatTime(tt.in)
		if got != tt.want {
			t.Errorf("FormatTime(%v) = %q; want %q", tt.in, got, tt.want)
		}
		if !sevenDigits.MatchString(got) {
			t.Errorf("FormatTime(%v) = %q; want 7 fractional digits and Z", tt.in, got)
		}
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"2025-02-03T04:05:06.789Z", time.Date(2025, 2, 3, 4, 5, 6, 789_000_000, time.UTC), false},
		{"2025-01-01T00:00:00.000Z", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"2025-01-01T00:00:00Z", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"2025-01-02T03:04:05.1234567Z", time.Date(2025, 1, 2, 3, 4, 5, 123456700, time.UTC), false},
		{"2025-01-01T00:00:00+02:00", time.Date(2024, 12, 31, 22, 0, 0, 0, time.UTC), false},
		{"2025-01-02T05:04:05.123+02:00", time.Date(2025, 1, 2, 3, 4, 5, 123_000_000, time.UTC), false},
		{"2024-12-31T19:00:00-05:00", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{"2025-01-02T03:04:05", time.Time{}, true},
		{"2025-01-02T03:04:05.000", time.Time{}, true},
		{"2025-01-02", time.Time{}, true},
		{"Thu, 02 Jan 2025 03:04:05 GMT", time.Time{}, true},
		{"", time.Time{}, true},
		{"not-a-date", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := acs.ParseTime(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseTime(%q) = %v; want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTime(%q) error: %v", tt.in, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v; want %v", tt.in, got, tt.want)
		}
		if got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) location = %v; want UTC", tt.in, got.Location())
		}
	}
}

func TestTimeJSON(t *testing.T) {
	v := struct {
		At  acs.Time  `json:"at"`
		Opt *acs.Time `json:"opt,omitempty"`
	}{At: acs.Time{Time: time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"at":"2025-01-02T03:04:05.0060000Z"}`; string(b) != want {
		t.Errorf("Marshal = %s; want %s", b, want)
	}

	var in struct {
		At acs.Time `json:"at"`
	}
	if err := json.Unmarshal([]byte(`{"at":"2025-01-01T02:00:00.250+02:00"}`), &in); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 1, 1, 0, 0, 0, 250_000_000, time.UTC); !in.At.Equal(want) {
		t.Errorf("Unmarshal = %v; want %v", in.At.Time, want)
	}
	for _, bad := range []string{`{"at":"2025-01-01T00:00:00"}`, `{"at":1735787045678}`, `{"at":"x"}`} {
		if err := json.Unmarshal([]byte(bad), &in); err == nil {
			t.Errorf("Unmarshal(%s) succeeded; want an error", bad)
		}
	}

	if acs.TimeRef(time.Time{}) != nil {
		t.Error("TimeRef(zero) is not nil")
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if r := acs.TimeRef(now); r == nil || !r.Equal(now) {
		t.Errorf("TimeRef(now) = %v", r)
	}
}

func TestVersionProblem(t *testing.T) {
	tests := []struct {
		v         string
		supported []string
		wantOK    bool
		contains  []string
	}{
		{"2025-03-15", acs.ChatAPIVersions, true, nil},
		{"2021-09-07", acs.ChatAPIVersions, true, nil},
		{"2023-10-01", acs.IdentityAPIVersions, true, nil},
		{"", acs.ChatAPIVersions, false, []string{"required", "api-version=2025-03-15"}},
		{"", acs.IdentityAPIVersions, false, []string{"required", "api-version=2023-10-01"}},
		{"2020-01-01", acs.ChatAPIVersions, false, []string{"2020-01-01", "not supported", "2025-03-15", "2021-09-07"}},
		{"2023-10-01", acs.ChatAPIVersions, false, []string{"2023-10-01", "not supported"}},
		{"2025-03-15", acs.IdentityAPIVersions, false, []string{"2025-03-15", "2023-10-01"}},
		{"2025-03-15 ", acs.ChatAPIVersions, false, []string{"not supported"}},
	}
	for _, tt := range tests {
		msg := acs.VersionProblem(tt.v, tt.supported)
		if (msg == "") != tt.wantOK {
			t.Errorf("VersionProblem(%q) = %q; want ok=%v", tt.v, msg, tt.wantOK)
		}
		for _, s := range tt.contains {
			if !strings.Contains(msg, s) {
				t.Errorf("VersionProblem(%q) = %q; want it to mention %q", tt.v, msg, s)
			}
		}
	}
}

func TestPageMarshal(t *testing.T) {
	tests := []struct {
		name string
		page acs.Page[acs.ChatThreadItem]
		want string
	}{
		{"nil value", acs.Page[acs.ChatThreadItem]{}, `{"value":[]}`},
		{"empty value", acs.Page[acs.ChatThreadItem]{Value: []acs.ChatThreadItem{}}, `{"value":[]}`},
		{"nil value with nextLink", acs.Page[acs.ChatThreadItem]{NextLink: "https://h/x"}, `{"value":[],"nextLink":"https://h/x"}`},
		{"one item", acs.Page[acs.ChatThreadItem]{Value: []acs.ChatThreadItem{{ID: "t", Topic: "x"}}}, `{"value":[{"id":"t","topic":"x"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.page)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal = %s; want %s", b, tt.want)
			}
			// A pointer marshals the same way.
			b, err = json.Marshal(&tt.page)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("Marshal(&page) = %s; want %s", b, tt.want)
			}
		})
	}
}

func TestScopesList(t *testing.T) {
	want := []string{"chat", "voip", "chat.join", "chat.join.limited", "voip.join"}
	if strings.Join(acs.Scopes, ",") != strings.Join(want, ",") {
		t.Errorf("Scopes = %v; want %v", acs.Scopes, want)
	}
}
