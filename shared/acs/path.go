package acs

import (
	"net/url"
	"strings"
)

// EscapePathSegment encodes a path segment the way the ACS SDKs do
// (JavaScript's encodeURIComponent): "19:x@thread.v2" becomes
// "19%3Ax%40thread.v2". Location headers and nextLinks use it so they look
// like the service's own.
func EscapePathSegment(s string) string {
	// url.QueryEscape encodes everything encodeURIComponent does, plus a
	// few characters it leaves alone, and writes space as '+'.
	e := strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	for _, keep := range []string{"!", "'", "(", ")", "*"} {
		e = strings.ReplaceAll(e, url.QueryEscape(keep), keep)
	}
	return e
}
