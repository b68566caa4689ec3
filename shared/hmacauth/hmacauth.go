// Package hmacauth verifies ACS access-key (HMAC-SHA256) request signatures,
// exactly as the ACS SDKs compute them (reference/acs-wire.md §2).
package hmacauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/fault"
)

// MaxSkew is how far x-ms-date may be from the server's clock. The SDKs do
// not re-sign retries, so a request retried after Retry-After carries its
// original date: five minutes covers the SDKs' retry budget.
const MaxSkew = 5 * time.Minute

// Request is what a signature covers.
type Request struct {
	Method string
	// Paths are the candidate paths the client may have signed. API Gateway
	// HTTP APIs hand functions a decoded path, so the adapter offers both
	// the path as received and the path as the SDK encodes it.
	Paths    []string
	RawQuery string // as received, before any decoding
	Host     string // the Host header, with its port
	Date     string // x-ms-date (or Date)
	Hash     string // x-ms-content-sha256
	Auth     string // Authorization
	Body     []byte
}

// Verify checks r against any of keys (ACS has a primary and a secondary key).
func Verify(keys [][]byte, r Request, now time.Time) error {
	sig, err := parseAuthorization(r.Auth)
	if err != nil {
		return err
	}
	if r.Date == "" {
		return fault.Unauthenticated("MissingDate", "The x-ms-date header is required on HMAC-signed requests.")
	}
	d, err := http.ParseTime(r.Date)
	if err != nil {
		return fault.Unauthenticated("InvalidDate", "x-ms-date %q is not an RFC 1123 date such as \"Wed, 25 Nov 2026 19:53:43 GMT\".", r.Date)
	}
	if skew := now.Sub(d); skew > MaxSkew || skew < -MaxSkew {
		return fault.Unauthenticated("StaleDate", "x-ms-date is %s from the server's clock; requests must be signed within %s of it.", skew.Round(time.Second), MaxSkew)
	}
	sum := sha256.Sum256(r.Body)
	if want := base64.StdEncoding.EncodeToString(sum[:]); r.Hash != want {
		return fault.Unauthenticated("ContentHashMismatch", "x-ms-content-sha256 does not match the SHA-256 of the request body.")
	}
	query := NormalizeQuery(r.RawQuery)
	for _, p := range r.Paths {
		pq := p
		if query != "" {
			pq += "?" + query
		}
		toSign := strings.ToUpper(r.Method) + "\n" + pq + "\n" + r.Date + ";" + strings.ToLower(r.Host) + ";" + r.Hash
		for _, k := range keys {
			m := hmac.New(sha256.New, k)
			m.Write([]byte(toSign))
			if hmac.Equal(m.Sum(nil), sig) {
				return nil
			}
		}
	}
	return fault.Unauthenticated("InvalidSignature", "The HMAC signature does not match; sign with the access key of this resource's connection string.")
}

func parseAuthorization(h string) ([]byte, error) {
	bad := fault.Unauthenticated("InvalidAuthorizationHeader",
		"The Authorization header must be \"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>\".")
	if h == "" {
		return nil, fault.Unauthenticated("MissingAuthorization", "The Authorization header is missing; sign the request with the resource's access key.")
	}
	rest, ok := strings.CutPrefix(h, "HMAC-SHA256 ")
	if !ok {
		return nil, bad
	}
	var signed, sig string
	for _, part := range strings.Split(rest, "&") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	if !strings.EqualFold(signed, "x-ms-date;host;x-ms-content-sha256") && !strings.EqualFold(signed, "date;host;x-ms-content-sha256") {
		return nil, bad
	}
	b, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(b) != sha256.Size {
		return nil, bad
	}
	return b, nil
}

// NormalizeQuery re-serialises a raw query string the way the SDK's WHATWG
// URLSearchParams does before signing: order kept, space as '+', and
// everything outside [A-Za-z0-9*-._] percent-encoded.
func NormalizeQuery(raw string) string {
	var out []string
	for _, seq := range strings.Split(raw, "&") {
		if seq == "" {
			continue
		}
		n, v, _ := strings.Cut(seq, "=")
		out = append(out, formEncode(lenientDecode(n))+"="+formEncode(lenientDecode(v)))
	}
	return strings.Join(out, "&")
}

func formEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '*', c == '-', c == '.', c == '_':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// lenientDecode percent-decodes like the WHATWG parser: '+' is a space, an
// invalid escape stays literal, and bytes that are not UTF-8 become U+FFFD
// the way the WHATWG decoder does it (one per maximal invalid subpart).
func lenientDecode(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return decodeUTF8(b)
}

// decodeUTF8 is the Encoding Standard's UTF-8 decoder: an invalid byte, or a
// valid prefix cut short, is one U+FFFD, and the byte that broke a sequence
// is decoded again on its own.
func decodeUTF8(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b); {
		c := b[i]
		need, lower, upper := 0, byte(0x80), byte(0xBF)
		switch {
		case c < 0x80:
			out.WriteByte(c)
			i++
			continue
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lower = 0xA0
			} else if c == 0xED {
				upper = 0x9F
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lower = 0x90
			} else if c == 0xF4 {
				upper = 0x8F
			}
		default:
			out.WriteString("\uFFFD")
			i++
			continue
		}
		j := i + 1
		for k := 0; k < need; k++ {
			if j >= len(b) || b[j] < lower || b[j] > upper {
				break
			}
			lower, upper = 0x80, 0xBF
			j++
		}
		if j-i != need+1 {
			out.WriteString("\uFFFD")
			i = j // the offending byte, if any, starts the next round
			continue
		}
		out.Write(b[i:j])
		i = j
	}
	return out.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// EncodePath encodes each segment of a decoded path the way the SDKs'
// encodeURIComponent does, leaving literal action segments (":add",
// ":issueAccessToken") alone, as the SDKs do.
func EncodePath(decoded string) string {
	segs := strings.Split(decoded, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, ":") {
			continue
		}
		segs[i] = acs.EscapePathSegment(s)
	}
	return strings.Join(segs, "/")
}
