package hmacauth_test

// Fuzz targets for HMAC signature parsing and verification.
//
// FuzzVerify signs a fuzzed request the way the SDK does, with an oracle
// written from reference/acs-wire.md §2 alone (encodeURIComponent on the
// wire, the WHATWG form encoding in the string to sign), and checks:
//   - Verify accepts it (with the key as primary or as secondary key);
//   - Verify refuses it, with a 401 fault, once any signed part changes
//     (body, content hash, method, path, query, host, date);
//   - Verify refuses it, with a 401 fault, under any fuzzed Authorization
//     header and x-ms-date: a fuzzer cannot forge an HMAC;
//   - nothing panics.
//
// Short run: go test ./shared/hmacauth -run '^$' -fuzz '^FuzzVerify$' -fuzztime 10s

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/hmacauth"
)

var (
	fzKey   = []byte("0123456789abcdef0123456789abcdef")
	fzOther = []byte("another key, not this resource's")
	fzNow   = time.Date(2026, 11, 25, 19, 53, 43, 0, time.UTC)
)

// fzURIComponent is JavaScript's encodeURIComponent.
func fzURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// fzFormEncode is the WHATWG application/x-www-form-urlencoded serializer
// (acs-wire.md §2), derived from net/url rather than copied from the code
// under test: QueryEscape differs from it only in escaping '*' and not '~'.
var fzFormEncoder = strings.NewReplacer("%2A", "*", "~", "%7E")

func fzFormEncode(s string) string { return fzFormEncoder.Replace(url.QueryEscape(s)) }

type fzRequest struct {
	method, path, wireQuery, signedQuery, host, date string
	body                                             []byte
}

func (r fzRequest) hash() string {
	sum := sha256.Sum256(r.body)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// sign is the SDK's Authorization header for r.
func (r fzRequest) sign(key []byte) string {
	pq := r.path
	if r.signedQuery != "" {
		pq += "?" + r.signedQuery
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.ToUpper(r.method) + "\n" + pq + "\n" + r.date + ";" + strings.ToLower(r.host) + ";" + r.hash()))
	return "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func (r fzRequest) verify(keys [][]byte, auth, hash string) error {
	return hmacauth.Verify(keys, hmacauth.Request{
		Method: r.method, Paths: []string{r.path}, RawQuery: r.wireQuery, Host: r.host,
		Date: r.date, Hash: hash, Auth: auth, Body: r.body,
	}, fzNow)
}

// fzRefused checks err is a 401 refusal.
func fzRefused(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.Unauthorized || fe.Code == "" || fe.Message == "" {
		t.Fatalf("%s: refused with %v; want a 401 fault", what, err)
	}
}

func FuzzVerify(f *testing.F) {
	date := fzNow.Format(http.TimeFormat)
	seeds := []struct {
		method, path, k1, v1, k2, v2, host, body string
		tamper                                   uint8
		auth, date                               string
	}{
		{"POST", "", "api-version", "2023-10-01", "", "", "127.0.0.1:9447", `{"createTokenWithScopes":["chat"]}`, 0, "", date},
		{"POST", "8:acs:11111111-1111-1111-1111-111111111111_x/:issueAccessToken", "api-version", "2023-10-01", "", "", "localhost:9447", `{"scopes":["chat"]}`, 1, "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=", date},
		{"delete", "a b/c?d#e%f+g", "q", "a b", "r", "it's*~!()", "Contoso.Communication.Azure.com", "", 2, "Bearer x", ""},
		{"GET", "é", "startTime", "2025-01-01T00:00:00.000Z", "x", "é\u2028", "h", "", 3, "HMAC-SHA256 Signature=AAAA", "yesterday"},
		{"PATCH", "", "", "v", "k", "", "h:443", "\x00\xff", 4, "HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), date},
		{"POST", "", "a+b", "c=d&e", "%zz", "%41", "h", "x", 5, strings.Repeat("&", 100), "Wed, 25 Nov 2026 19:53:43 PST"},
		{"POST", "", "api-version", "2023-10-01", "", "", "h", "x", 6, "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + strings.Repeat("A", 44) + "&Signature=" + strings.Repeat("B", 44), date},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.k1, s.v1, s.k2, s.v2, s.host, s.body, s.tamper, s.auth, s.date)
	}
	f.Fuzz(func(t *testing.T, method, path, k1, v1, k2, v2, host, body string, tamper uint8, forgedAuth, forgedDate string) {
		// What a client can put on the wire: the SDK encodes path and query
		// from JavaScript strings, so the pieces are valid UTF-8.
		valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
		var wire, signed []string
		for _, kv := range [][2]string{{valid(k1), valid(v1)}, {valid(k2), valid(v2)}} {
			if kv[0] == "" && kv[1] == "" {
				continue
			}
			wire = append(wire, fzURIComponent(kv[0])+"="+fzURIComponent(kv[1]))
			signed = append(signed, fzFormEncode(kv[0])+"="+fzFormEncode(kv[1]))
		}
		r := fzRequest{
			method: valid(method), path: "/identities/" + fzURIComponent(valid(path)),
			wireQuery: strings.Join(wire, "&"), signedQuery: strings.Join(signed, "&"),
			host: valid(host), date: date, body: []byte(body),
		}
		auth := r.sign(fzKey)
		if err := r.verify([][]byte{fzKey}, auth, r.hash()); err != nil {
			t.Fatalf("a request signed as the SDK signs it was refused: %v\n%+v", err, r)
		}
		if err := r.verify([][]byte{fzOther, fzKey}, auth, r.hash()); err != nil {
			t.Fatalf("refused when signed with the secondary key: %v", err)
		}
		fzRefused(t, "with no keys", r.verify(nil, auth, r.hash()))
		fzRefused(t, "with another key", r.verify([][]byte{fzOther}, auth, r.hash()))

		// Change one signed part, keeping the signature.
		tampered, hash := r, r.hash()
		switch tamper % 7 {
		case 0:
			tampered.body = append([]byte(body), 'x') // hash header kept
		case 1:
			tampered.body = append([]byte(body), 'x')
			hash = tampered.hash()
		case 2:
			tampered.method = "POST"
			if strings.ToUpper(r.method) == "POST" {
				tampered.method = "GET"
			}
		case 3:
			tampered.path += "x"
		case 4:
			tampered.wireQuery += "&tampered=1"
		case 5:
			tampered.host += "x"
		case 6:
			tampered.date = fzNow.Add(time.Second).Format(http.TimeFormat)
		}
		fzRefused(t, fmt.Sprintf("tampered (%d)", tamper%7), tampered.verify([][]byte{fzKey}, auth, hash))

		// Anything a client makes up in place of the signature.
		if forgedAuth != auth {
			forged := r
			forged.date = forgedDate
			fzRefused(t, "forged Authorization", forged.verify([][]byte{fzKey}, forgedAuth, r.hash()))
			fzRefused(t, "forged Authorization, any hash", forged.verify([][]byte{fzKey}, forgedAuth, body))
		}
	})
}

const fzFormChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._%+=&"

// FuzzNormalizeQuery: the re-serialised query is canonical (normalising it
// again changes nothing) and holds only the characters the WHATWG form
// encoding writes.
func FuzzNormalizeQuery(f *testing.F) {
	for _, s := range []string{"", "api-version=2023-10-01", "api-version=2023-10-01&q=a%20b", "q=a+b&r=it%27s*~!()", "k", "&&a=1&&", "a=b=c",
		"%3D=%26", "q=%2f%3a", "a=%zz&b=%4", "x=é", "a=%FFx%FE", "a=%E2%82", "a=%C3%28", "a=%F0%90%80", "a=%ED%A0%80", "%", "=", "+=+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		n := hmacauth.NormalizeQuery(raw)
		if again := hmacauth.NormalizeQuery(n); again != n {
			t.Fatalf("NormalizeQuery(%q) = %q, but normalising that gives %q", raw, n, again)
		}
		if i := strings.IndexFunc(n, func(r rune) bool { return !strings.ContainsRune(fzFormChars, r) }); !utf8.ValidString(n) || i >= 0 {
			t.Fatalf("NormalizeQuery(%q) = %q holds characters the form encoding never writes", raw, n)
		}
		for _, seg := range strings.Split(n, "&") {
			if n != "" && strings.Count(seg, "=") != 1 {
				t.Fatalf("NormalizeQuery(%q) = %q: segment %q is not one name=value pair", raw, n, seg)
			}
		}
	})
}
