package hmacauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/hmacauth"
)

// The rows of the table in reference/acs-wire.md §2, plus the documented
// "bare k" and "empty &&" rules, plus rows checked against Node's WHATWG
// URLSearchParams (new URL("https://h/p?"+q).searchParams.toString()).
func TestNormalizeQuery(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		// acs-wire.md §2 table.
		{"space as %20 becomes +", "api-version=2023-10-01&q=a%20b", "api-version=2023-10-01&q=a+b"},
		{"'~!() are percent-encoded", "api-version=2023-10-01&q=a+b&r=it%27s*~!()", "api-version=2023-10-01&q=a+b&r=it%27s*%7E%21%28%29"},
		{"encoded colon kept", "api-version=2023-10-01&startTime=2025-01-01T00%3A00%3A00.000Z", "api-version=2023-10-01&startTime=2025-01-01T00%3A00%3A00.000Z"},
		{"order kept, not sorted", "b=2&a=1", "b=2&a=1"},
		// Documented rules.
		{"bare key", "k", "k="},
		{"bare key among others", "api-version=2023-10-01&k", "api-version=2023-10-01&k="},
		{"empty segments dropped", "&&a=1&&b=2&", "a=1&b=2"},
		{"only empty segments", "&&", ""},
		{"empty", "", ""},
		{"plain api-version unchanged", "api-version=2023-10-01", "api-version=2023-10-01"},
		// Further WHATWG behaviour (node v20 output).
		{"raw colon encoded", "startTime=2025-01-01T00:00:00.000Z", "startTime=2025-01-01T00%3A00%3A00.000Z"},
		{"= inside a value", "a=b=c", "a=b%3Dc"},
		{"encoded delimiters stay encoded", "%3D=%26", "%3D=%26"},
		{"lower-case escapes re-encoded upper", "q=%2f%3a", "q=%2F%3A"},
		{"invalid escapes kept literally", "a=%zz&b=%4", "a=%25zz&b=%254"},
		{"unreserved kept", "a=AZaz09*-._", "a=AZaz09*-._"},
		{"raw UTF-8", "x=é", "x=%C3%A9"},
		{"encoded UTF-8", "x=%C3%A9", "x=%C3%A9"},
		{"repeated keys kept", "a=1&a=2&a=1", "a=1&a=2&a=1"},
		{"lone invalid byte replaced", "a=%FFx%FE", "a=%EF%BF%BDx%EF%BF%BD"},
		{"truncated sequence is one replacement", "a=%E2%82", "a=%EF%BF%BD"},
		{"invalid lead then ASCII", "a=%C3%28", "a=%EF%BF%BD%28"},
		// WHATWG's UTF-8 decoder replaces each invalid byte that cannot
		// start a sequence with its own U+FFFD; node gives two here.
		{"two invalid bytes are two replacements", "a=%FF%FF", "a=%EF%BF%BD%EF%BF%BD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hmacauth.NormalizeQuery(tt.raw); got != tt.want {
				t.Errorf("NormalizeQuery(%q) = %q; want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestEncodePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/identities/8:acs:x_y/:issueAccessToken", "/identities/8%3Aacs%3Ax_y/:issueAccessToken"},
		{"/identities/8:acs:x_y/:revokeAccessTokens", "/identities/8%3Aacs%3Ax_y/:revokeAccessTokens"},
		{"/identities/8:acs:x_y", "/identities/8%3Aacs%3Ax_y"},
		{"/identities", "/identities"},
		{"/chat/threads/19:mockthread_abc123@thread.v2", "/chat/threads/19%3Amockthread_abc123%40thread.v2"},
		{"/chat/threads/19:a b?d#e%f+g@thread.v2", "/chat/threads/19%3Aa%20b%3Fd%23e%25f%2Bg%40thread.v2"},
		{"/x/!~*()'", "/x/!~*()'"},
		{"/x/a;b,c$&=", "/x/a%3Bb%2Cc%24%26%3D"},
		{"/x/é", "/x/%C3%A9"},
		{"/chat/threads/19:t@thread.v2/participants/:add", "/chat/threads/19%3At%40thread.v2/participants/:add"},
		{"/", "/"},
	}
	for _, tt := range tests {
		if got := hmacauth.EncodePath(tt.in); got != tt.want {
			t.Errorf("EncodePath(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// contentHash and signature follow acs-wire.md §2 literally, independently
// of the package under test.
func contentHash(body []byte) string {
	sum := sha256.Sum256(body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func signature(key []byte, verb, pathAndQuery, date, host, hash string) string {
	stringToSign := verb + "\n" + pathAndQuery + "\n" + date + ";" + host + ";" + hash
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func authHeader(sig string) string {
	return "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + sig
}

func TestCapturedExampleContentHash(t *testing.T) {
	// acs-wire.md §2, createUserAndToken.
	if got, want := contentHash([]byte(`{"createTokenWithScopes":["chat"]}`)), "WTRvgEjjVd+bvyKw3WgXgDkU81aV8FWq+4/BE+he0+A="; got != want {
		t.Errorf("hash = %s; want %s", got, want)
	}
	if got, want := contentHash(nil), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="; got != want {
		t.Errorf("empty hash = %s; want %s", got, want)
	}
}

var (
	key      = []byte("0123456789abcdef0123456789abcdef")
	otherKey = []byte("fedcba9876543210fedcba9876543210")
	now      = time.Date(2026, 11, 25, 19, 53, 43, 0, time.UTC)
)

// signedRequest builds a request as the SDK would send it: signed over
// signedPath?signedQuery, carrying rawQuery on the wire.
type signedRequest struct {
	method      string
	signedPath  string
	rawQuery    string
	signedQuery string
	host        string
	date        time.Time
	body        string
	key         []byte
}

func (s signedRequest) build() hmacauth.Request {
	hash := contentHash([]byte(s.body))
	date := s.date.UTC().Format(http.TimeFormat)
	pq := s.signedPath
	if s.signedQuery != "" {
		pq += "?" + s.signedQuery
	}
	return hmacauth.Request{
		Method:   s.method,
		Paths:    []string{s.signedPath},
		RawQuery: s.rawQuery,
		Host:     s.host,
		Date:     date,
		Hash:     hash,
		Auth:     authHeader(signature(s.key, s.method, pq, date, s.host, hash)),
		Body:     []byte(s.body),
	}
}

func base() signedRequest {
	return signedRequest{
		method:      "POST",
		signedPath:  "/identities",
		rawQuery:    "api-version=2023-10-01",
		signedQuery: "api-version=2023-10-01",
		host:        "127.0.0.1:9447",
		date:        now,
		body:        `{"createTokenWithScopes":["chat"]}`,
		key:         key,
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("Verify() = %v; want success", err)
		}
		return
	}
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("Verify() = %v; want fault %s", err, code)
	}
	if fe.Code != code || fe.Kind != fault.Unauthorized {
		t.Fatalf("Verify() = %s (kind %v); want %s (401)", fe.Code, fe.Kind, code)
	}
}

func TestVerify(t *testing.T) {
	keys := [][]byte{key}
	tests := []struct {
		name   string
		req    func() hmacauth.Request
		keys   [][]byte
		now    time.Time
		wantOK string // fault code, "" for success
	}{
		{"valid", func() hmacauth.Request { return base().build() }, keys, now, ""},
		{"valid with secondary key", func() hmacauth.Request { return base().build() }, [][]byte{otherKey, key}, now, ""},
		{"empty body", func() hmacauth.Request { s := base(); s.body = ""; return s.build() }, keys, now, ""},
		{"GET with lower-case method on the wire", func() hmacauth.Request {
			s := base()
			s.method = "GET"
			r := s.build()
			r.Method = "get"
			return r
		}, keys, now, ""},
		{"query normalised before verifying", func() hmacauth.Request {
			s := base()
			s.rawQuery = "api-version=2023-10-01&q=a%20b&r=it%27s*~!()"
			s.signedQuery = "api-version=2023-10-01&q=a+b&r=it%27s*%7E%21%28%29"
			return s.build()
		}, keys, now, ""},
		{"host in upper case on the wire", func() hmacauth.Request {
			s := base()
			s.host = "localhost:9447"
			r := s.build()
			r.Host = "LOCALHOST:9447"
			return r
		}, keys, now, ""},
		{"date header instead of x-ms-date", func() hmacauth.Request {
			s := base()
			r := s.build()
			date := r.Date
			pq := "/identities?api-version=2023-10-01"
			r.Auth = "HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256&Signature=" + signature(key, "POST", pq, date, s.host, r.Hash)
			return r
		}, keys, now, ""},
		{"date 4 minutes old still accepted (retry)", func() hmacauth.Request { s := base(); s.date = now.Add(-4 * time.Minute); return s.build() }, keys, now, ""},
		{"date 4 minutes ahead accepted", func() hmacauth.Request { s := base(); s.date = now.Add(4 * time.Minute); return s.build() }, keys, now, ""},
		{"date 6 minutes old", func() hmacauth.Request { s := base(); s.date = now.Add(-6 * time.Minute); return s.build() }, keys, now, "StaleDate"},
		{"date 6 minutes in the future", func() hmacauth.Request { s := base(); s.date = now.Add(6 * time.Minute); return s.build() }, keys, now, "StaleDate"},
		{"wrong key", func() hmacauth.Request { s := base(); s.key = otherKey; return s.build() }, keys, now, "InvalidSignature"},
		{"no keys configured", func() hmacauth.Request { return base().build() }, nil, now, "InvalidSignature"},
		{"tampered body", func() hmacauth.Request {
			r := base().build()
			r.Body = []byte(`{"createTokenWithScopes":["voip"]}`)
			return r
		}, keys, now, "ContentHashMismatch"},
		{"tampered body with matching hash", func() hmacauth.Request {
			r := base().build()
			r.Body = []byte(`{"createTokenWithScopes":["voip"]}`)
			r.Hash = contentHash(r.Body)
			return r
		}, keys, now, "InvalidSignature"},
		{"tampered query", func() hmacauth.Request {
			r := base().build()
			r.RawQuery = "api-version=2022-10-01"
			return r
		}, keys, now, "InvalidSignature"},
		{"query added", func() hmacauth.Request {
			r := base().build()
			r.RawQuery += "&x=1"
			return r
		}, keys, now, "InvalidSignature"},
		{"query reordered", func() hmacauth.Request {
			s := base()
			s.rawQuery = "b=2&a=1"
			s.signedQuery = "b=2&a=1"
			r := s.build()
			r.RawQuery = "a=1&b=2"
			return r
		}, keys, now, "InvalidSignature"},
		{"wrong host", func() hmacauth.Request { r := base().build(); r.Host = "example.com:9447"; return r }, keys, now, "InvalidSignature"},
		{"host without the signed port", func() hmacauth.Request { r := base().build(); r.Host = "127.0.0.1"; return r }, keys, now, "InvalidSignature"},
		{"host with another port", func() hmacauth.Request { r := base().build(); r.Host = "127.0.0.1:9448"; return r }, keys, now, "InvalidSignature"},
		{"wrong method", func() hmacauth.Request { r := base().build(); r.Method = "PUT"; return r }, keys, now, "InvalidSignature"},
		{"path signed encoded, received decoded, both offered", func() hmacauth.Request {
			s := base()
			s.signedPath = "/identities/8%3Aacs%3Ax_y/:issueAccessToken"
			r := s.build()
			r.Paths = []string{"/identities/8:acs:x_y/:issueAccessToken", hmacauth.EncodePath("/identities/8:acs:x_y/:issueAccessToken")}
			return r
		}, keys, now, ""},
		{"path signed encoded, received decoded, only decoded offered", func() hmacauth.Request {
			s := base()
			s.signedPath = "/identities/8%3Aacs%3Ax_y/:issueAccessToken"
			r := s.build()
			r.Paths = []string{"/identities/8:acs:x_y/:issueAccessToken"}
			return r
		}, keys, now, "InvalidSignature"},
		{"path case matters", func() hmacauth.Request {
			r := base().build()
			r.Paths = []string{"/Identities"}
			return r
		}, keys, now, "InvalidSignature"},
		{"no paths", func() hmacauth.Request { r := base().build(); r.Paths = nil; return r }, keys, now, "InvalidSignature"},
		{"missing authorization", func() hmacauth.Request { r := base().build(); r.Auth = ""; return r }, keys, now, "MissingAuthorization"},
		{"bearer instead of HMAC", func() hmacauth.Request { r := base().build(); r.Auth = "Bearer abc"; return r }, keys, now, "InvalidAuthorizationHeader"},
		{"wrong signed headers", func() hmacauth.Request {
			r := base().build()
			r.Auth = strings.Replace(r.Auth, "x-ms-date;host;x-ms-content-sha256", "host;x-ms-date", 1)
			return r
		}, keys, now, "InvalidAuthorizationHeader"},
		{"signature not base64", func() hmacauth.Request {
			r := base().build()
			r.Auth = authHeader("!!!not-base64!!!")
			return r
		}, keys, now, "InvalidAuthorizationHeader"},
		{"signature of the wrong length", func() hmacauth.Request {
			r := base().build()
			r.Auth = authHeader(base64.StdEncoding.EncodeToString([]byte("short")))
			return r
		}, keys, now, "InvalidAuthorizationHeader"},
		{"no signature", func() hmacauth.Request {
			r := base().build()
			r.Auth = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
			return r
		}, keys, now, "InvalidAuthorizationHeader"},
		{"missing date", func() hmacauth.Request { r := base().build(); r.Date = ""; return r }, keys, now, "MissingDate"},
		{"date in RFC 3339", func() hmacauth.Request { r := base().build(); r.Date = "2026-11-25T19:53:43Z"; return r }, keys, now, "InvalidDate"},
		{"date garbage", func() hmacauth.Request { r := base().build(); r.Date = "yesterday"; return r }, keys, now, "InvalidDate"},
		{"missing content hash", func() hmacauth.Request { r := base().build(); r.Hash = ""; return r }, keys, now, "ContentHashMismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, hmacauth.Verify(tt.keys, tt.req(), tt.now), tt.wantOK)
		})
	}
}

// The exact string-to-sign of the captured example verifies.
func TestVerifyCapturedStringToSign(t *testing.T) {
	body := []byte(`{"createTokenWithScopes":["chat"]}`)
	date := "Wed, 25 Nov 2026 19:53:43 GMT"
	hash := "WTRvgEjjVd+bvyKw3WgXgDkU81aV8FWq+4/BE+he0+A="
	toSign := "POST\n/identities?api-version=2023-10-01\nWed, 25 Nov 2026 19:53:43 GMT;127.0.0.1:9447;WTRvgEjjVd+bvyKw3WgXgDkU81aV8FWq+4/BE+he0+A="
	m := hmac.New(sha256.New, key)
	m.Write([]byte(toSign))
	sig := base64.StdEncoding.EncodeToString(m.Sum(nil))
	err := hmacauth.Verify([][]byte{key}, hmacauth.Request{
		Method: "POST", Paths: []string{"/identities"}, RawQuery: "api-version=2023-10-01",
		Host: "127.0.0.1:9447", Date: date, Hash: hash, Auth: authHeader(sig), Body: body,
	}, now.Add(30*time.Second))
	if err != nil {
		t.Fatalf("Verify() = %v", err)
	}
}

// The refusal order: a request missing everything reports the
// authorization header first.
func TestVerifyOrder(t *testing.T) {
	wantCode(t, hmacauth.Verify([][]byte{key}, hmacauth.Request{}, now), "MissingAuthorization")
	r := base().build()
	r.Date = ""
	r.Hash = ""
	wantCode(t, hmacauth.Verify([][]byte{key}, r, now), "MissingDate")
	r = base().build()
	r.Date = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
	r.Hash = ""
	wantCode(t, hmacauth.Verify([][]byte{key}, r, now), "StaleDate")
}
