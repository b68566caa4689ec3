package acs

import (
	"encoding/json"
	"fmt"
	"time"
)

// timeLayout is the service's own format: UTC, seven fractional digits, "Z".
// The JS SDK parses it (truncating to milliseconds) and so do the others.
const timeLayout = "2006-01-02T15:04:05.0000000Z"

// FormatTime renders t the way the ACS service does.
func FormatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// ParseTime accepts what the SDKs send: RFC 3339 with any number of
// fractional digits and a zone ("Z" or an offset). A time without a zone is
// refused, because clients would disagree about what it means.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 date-time with a zone, such as 2025-01-02T03:04:05.000Z", s)
	}
	// In UTC it must still have a four-digit year, or FormatTime would
	// write back (in a nextLink, a response) what neither this nor the SDKs parse.
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return time.Time{}, fmt.Errorf("%q is outside the years 0000 to 9999 once converted to UTC", s)
	}
	return t.UTC(), nil
}

// Time is a timestamp that marshals in the service's format.
type Time struct{ time.Time }

// MarshalJSON writes the service format.
func (t Time) MarshalJSON() ([]byte, error) {
	return json.Marshal(FormatTime(t.Time))
}

// UnmarshalJSON reads any RFC 3339 date-time with a zone.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a date-time must be a JSON string")
	}
	v, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time = v
	return nil
}

// TimeRef returns a wire time for t, or nil for the zero time, so optional
// timestamps disappear from responses instead of reading 0001-01-01.
func TimeRef(t time.Time) *Time {
	if t.IsZero() {
		return nil
	}
	return &Time{t}
}
