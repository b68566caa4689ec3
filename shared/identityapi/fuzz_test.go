package identityapi_test

// Fuzz targets for every identity operation, end to end through apigw.HTTP:
// body, query string, the id path parameter, the signature headers and the
// way the request is signed are fuzzed.
//
// Properties, for every input:
//   - no panic, and the Lambda handler returns no error;
//   - the status is the operation's success status or a 4xx, never a 5xx;
//     a 4xx is an ACS error ({"error":{"code","message"}}, both non-empty)
//     with Content-Type application/json;
//   - a request signed with the access key (primary or secondary) is never
//     refused as unauthenticated, and one that is not (another key, a stale
//     date, a fuzzed Authorization header) never succeeds;
//   - a refused request writes nothing; the fake store fails the way
//     DynamoDB does for a key over 2048 bytes, so an unchecked id is a 500.
//
// Short run: go test ./shared/identityapi -run '^$' -fuzz '^FuzzIssueToken$' -fuzztime 10s

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/apigw/apigwtest"
	"github.com/threadline/threadline/shared/hmacauth"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/identityapi"
	"github.com/threadline/threadline/shared/token"
)

const (
	fzResource = "11111111-2222-3333-4444-555555555555"
	fzHost     = "127.0.0.1:9447"
	fzVer      = "api-version=2023-10-01"
)

var (
	fzNow       = time.Date(2026, 11, 25, 19, 53, 43, 0, time.UTC)
	fzAccessKey = []byte("0123456789abcdef0123456789abcdef")
	fzSecondKey = []byte("fedcba9876543210fedcba9876543210")
	fzIDRe      = regexp.MustCompile(`^8:acs:` + fzResource + `_[0-9a-f-]{36}$`)
	fzLive      = "8:acs:" + fzResource + "_00000000-0000-0000-0000-000000000001"
	fzDeleted   = "8:acs:" + fzResource + "_00000000-0000-0000-0000-000000000002"
	fzRevoked   = "8:acs:" + fzResource + "_00000000-0000-0000-0000-000000000003"
)

func newFzAPI(t *testing.T) (*identityapi.API, *memStore) {
	st := newMemStore()
	st.ids[fzLive] = identity.Identity{ID: fzLive, CreatedOn: fzNow.Add(-time.Hour)}
	st.ids[fzDeleted] = identity.Identity{ID: fzDeleted, CreatedOn: fzNow.Add(-time.Hour), TokenGen: 1, DeletedOn: fzNow.Add(-time.Minute)}
	st.ids[fzRevoked] = identity.Identity{ID: fzRevoked, CreatedOn: fzNow.Add(-time.Hour), TokenGen: 2, RevokedOn: fzNow.Add(-time.Minute)}
	api, err := identityapi.New(st, fzResource, [][]byte{fzAccessKey, fzSecondKey}, []byte("identity-api-signing-secret"))
	if err != nil {
		t.Fatal(err)
	}
	api.Now = func() time.Time { return fzNow }
	api.Identity.Now = api.Now
	return api, st
}

// How a fuzzed request is signed.
const (
	fzSigned       = iota // with the access key, as the SDK signs
	fzSignedSecond        // with the secondary key
	fzWrongKey            // with a key that is not the resource's
	fzStale               // with the access key, but dated 6 minutes ago
	fzForged              // the fuzzed Authorization and x-ms-date as they are
	fzSignModes
)

type fzOp struct {
	method, suffix string // the path is /identities, or /identities/{id} + suffix
	withID         bool
	handler        func(*identityapi.API) apigw.Handler
	success        int
	successBody    bool
}

// fzEvent builds the gateway event. The SDK signs the path as it sends it
// (encodeURIComponent per segment); the gateway hands the function either
// that path or its decoded form (rawDecoded).
func fzEvent(op fzOp, sign uint8, query, id, body string, bodyMode uint8, auth, date string) (events.APIGatewayV2HTTPRequest, bool) {
	valid := func(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
	id, query, auth, date = valid(id), valid(query), valid(auth), valid(date)
	mode, decoded := sign%fzSignModes, sign/fzSignModes%2 == 1
	sent, gateway := "/identities", "/identities"
	var params map[string]string
	if op.withID {
		sent += "/" + acs.EscapePathSegment(id) + op.suffix
		gateway += "/" + id + op.suffix
		params = map[string]string{"id": id}
	}
	if !decoded {
		gateway = sent
	}
	payload := []byte(body)
	evBody, b64 := valid(body), false
	switch bodyMode % 3 {
	case 1:
		evBody, b64 = base64.StdEncoding.EncodeToString(payload), true
	case 2:
		b64 = true // sent as is: usually not base64
	default:
		payload = []byte(evBody)
	}
	sum := sha256.Sum256(payload)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	signedAt := fzNow
	key := fzAccessKey
	switch mode {
	case fzSignedSecond:
		key = fzSecondKey
	case fzWrongKey:
		key = []byte("not-the-resource-access-key-0000")
	case fzStale:
		signedAt = fzNow.Add(-6 * time.Minute)
	}
	xmsdate := signedAt.Format(http.TimeFormat)
	pq := sent
	if q := hmacauth.NormalizeQuery(query); q != "" {
		pq += "?" + q
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(op.method + "\n" + pq + "\n" + xmsdate + ";" + fzHost + ";" + hash))
	authorization := "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if mode == fzForged {
		authorization, xmsdate = auth, date
	}
	headers := map[string]string{"host": fzHost, "x-ms-date": xmsdate, "x-ms-content-sha256": hash, "authorization": authorization}
	if op.method == "POST" {
		headers["content-type"] = "application/json"
	}
	ev := events.APIGatewayV2HTTPRequest{
		RouteKey:        op.method + " /identities",
		RawPath:         gateway,
		RawQueryString:  query,
		Headers:         headers,
		PathParameters:  params,
		Body:            evBody,
		IsBase64Encoded: b64,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "fuzz-request",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: op.method, Path: gateway},
		},
	}
	// Whether the server can tell what the client signed: it offers the
	// path it got and that path encoded the SDK's way, so a decoded path
	// that encodes back differently (an id with '/' or a leading ':')
	// cannot verify, and the body must decode to what was hashed.
	knowable := (!decoded || hmacauth.EncodePath(gateway) == sent) && bodyMode%3 != 2
	return ev, mode <= fzSignedSecond && knowable
}

var fzLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func fzRun(t *testing.T, op fzOp, sign uint8, query, id, body string, bodyMode uint8, auth, date string) {
	api, st := newFzAPI(t)
	ev, genuine := fzEvent(op, sign, query, id, body, bodyMode, auth, date)
	resp, err := apigw.HTTP("fuzz", fzLog, op.handler(api))(context.Background(), ev)
	if err != nil {
		t.Fatalf("the Lambda handler returned an error: %v", err)
	}
	st.mu.Lock()
	writes := st.writes
	keys := maps.Clone(st.keys)
	st.mu.Unlock()
	switch s := resp.StatusCode; {
	case s == op.success:
		if sign%fzSignModes > fzSignedSecond {
			t.Fatalf("a request not signed with the access key succeeded: %d %s", s, resp.Body)
		}
		fzCheckSuccess(t, op, resp, keys)
	case s >= 400 && s < 500:
		apigwtest.RequireACSError(t, resp)
		if writes != 0 {
			t.Errorf("a refused request (%d %s) made %d writes", s, resp.Body, writes)
		}
		if s == 401 && genuine {
			t.Errorf("a request signed with the access key was refused: %s", resp.Body)
		}
	default:
		t.Fatalf("status %d %s; want %d or a 4xx", s, resp.Body, op.success)
	}
}

type fzKeys map[string]ed25519.PublicKey

func (k fzKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	return k[kid], nil
}

func fzCheckSuccess(t *testing.T, op fzOp, resp events.APIGatewayV2HTTPResponse, keys map[string]ed25519.PublicKey) {
	t.Helper()
	if !op.successBody {
		if resp.Body != "" {
			t.Errorf("%d has a body: %q", resp.StatusCode, resp.Body)
		}
		return
	}
	if ct := resp.Headers["Content-Type"]; !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var out struct {
		Identity *struct {
			ID string `json:"id"`
		} `json:"identity"`
		AccessToken *struct {
			Token     string `json:"token"`
			ExpiresOn string `json:"expiresOn"`
		} `json:"accessToken"`
		Token     string `json:"token"`
		ExpiresOn string `json:"expiresOn"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
	tok := out.Token
	if out.AccessToken != nil {
		tok = out.AccessToken.Token
	}
	if op.method == "POST" && op.withID || out.AccessToken != nil {
		c, err := (&token.Verifier{Keys: fzKeys(keys), Now: func() time.Time { return fzNow }}).Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("the issued token does not verify: %v (%s)", err, resp.Body)
		}
		for _, s := range c.Scopes() {
			if !slices.Contains(acs.Scopes, s) {
				t.Errorf("token scope %q", s)
			}
		}
	}
	if out.Identity != nil && !fzIDRe.MatchString(out.Identity.ID) {
		t.Errorf("identity id %q", out.Identity.ID)
	}
}

type fzIn struct {
	sign          uint8
	query, id     string
	body          string
	bodyMode      uint8
	auth, xmsdate string
}

func fzFuzz(f *testing.F, op fzOp, bodies ...string) {
	goodAuth := "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	date := fzNow.Format(http.TimeFormat)
	body := ""
	if len(bodies) > 0 {
		body = bodies[0]
	}
	var seeds []fzIn
	for sign := uint8(0); sign < 2*fzSignModes; sign++ {
		seeds = append(seeds, fzIn{sign, fzVer, fzLive, body, 0, goodAuth, date})
	}
	for _, q := range []string{"", "api-version=2021-03-07", "api-version=2025-03-15", fzVer + "&x=a%20b~", fzVer + "&q=a+b&r=it%27s*~!()", "b=2&a=1&" + fzVer, "%zz", fzVer + "&" + fzVer, "&&" + fzVer + "&k"} {
		seeds = append(seeds, fzIn{0, q, fzLive, body, 0, "", ""})
	}
	for _, id := range []string{fzDeleted, fzRevoked, "8:acs:" + fzResource + "_nobody", "", "x", "8:acs:a/b", ":x", "a%2Fb", "8%3Aacs%3Ax", strings.Repeat("i", 2100), fzLive + "\n"} {
		seeds = append(seeds, fzIn{0, fzVer, id, body, 0, "", ""}, fzIn{fzSignModes, fzVer, id, body, 0, "", ""})
	}
	for _, b := range bodies {
		seeds = append(seeds, fzIn{0, fzVer, fzLive, b, 0, "", ""}, fzIn{0, fzVer, fzLive, b, 1, "", ""})
	}
	seeds = append(seeds, fzIn{0, fzVer, fzLive, "%%%", 2, "", ""}, fzIn{0, fzVer, fzLive, "e30=", 2, "", ""})
	for _, a := range []string{"", "HMAC-SHA256", "HMAC-SHA256 ", "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=", "HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256&Signature=AAAA",
		"HMAC-SHA256 Signature=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), "Bearer x", "hmac-sha256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=x", goodAuth + "&Signature=" + base64.StdEncoding.EncodeToString(make([]byte, 32))} {
		for _, d := range []string{date, "", "yesterday", "Wed, 25 Nov 2026 19:53:43 PST", "Wednesday, 25-Nov-26 19:53:43 GMT", "Wed Nov 25 19:53:43 2026"} {
			seeds = append(seeds, fzIn{fzForged, fzVer, fzLive, body, 0, a, d})
		}
	}
	for _, s := range seeds {
		f.Add(s.sign, s.query, s.id, s.body, s.bodyMode, s.auth, s.xmsdate)
	}
	f.Fuzz(func(t *testing.T, sign uint8, query, id, body string, bodyMode uint8, auth, date string) {
		fzRun(t, op, sign, query, id, body, bodyMode, auth, date)
	})
}

var fzMalformed = []string{"", " ", "null", "[]", "{", `{"a":1}{}`, "\xff", `{"scopes":"chat"}`, `{"createTokenWithScopes":"chat"}`}

func FuzzCreateIdentity(f *testing.F) {
	fzFuzz(f, fzOp{method: "POST", handler: func(a *identityapi.API) apigw.Handler { return a.CreateIdentity }, success: 201, successBody: true},
		append([]string{`{"createTokenWithScopes":["chat"]}`, `{}`, `{"createTokenWithScopes":[]}`, `{"createTokenWithScopes":null}`,
			`{"createTokenWithScopes":["chat","voip"],"expiresInMinutes":120}`, `{"createTokenWithScopes":["chat"],"expiresInMinutes":59}`,
			`{"createTokenWithScopes":["chat"],"expiresInMinutes":1441}`, `{"createTokenWithScopes":["chat"],"expiresInMinutes":1e3}`,
			`{"createTokenWithScopes":["chat"],"expiresInMinutes":"60"}`, `{"createTokenWithScopes":["chat","admin"]}`, `{"createTokenWithScopes":[""]}`,
			`{"createTokenWithScopes":["chat","chat","chat.join","chat.join.limited","voip.join"]}`, `{"expiresInMinutes":60}`,
			`{"createTokenWithScopes":["chat"],"expiresInMinutes":-9223372036854775808}`}, fzMalformed...)...)
}

func FuzzIssueToken(f *testing.F) {
	fzFuzz(f, fzOp{method: "POST", suffix: "/:issueAccessToken", withID: true, handler: func(a *identityapi.API) apigw.Handler { return a.IssueToken }, success: 200, successBody: true},
		append([]string{`{"scopes":["chat","chat.join"],"expiresInMinutes":60}`, `{"scopes":["voip"]}`, `{"scopes":[]}`, `{}`, `{"scopes":null}`,
			`{"scopes":["chat"],"expiresInMinutes":1441}`, `{"scopes":["chat"],"expiresInMinutes":59}`, `{"scopes":["chat"],"expiresInMinutes":null}`,
			`{"scopes":["chat.admin"]}`, `{"scopes":[1]}`, `{"scopes":["chat"],"expiresInMinutes":1.5}`}, fzMalformed...)...)
}

func FuzzRevokeTokens(f *testing.F) {
	fzFuzz(f, fzOp{method: "POST", suffix: "/:revokeAccessTokens", withID: true, handler: func(a *identityapi.API) apigw.Handler { return a.RevokeTokens }, success: 204},
		"", "{}", "x")
}

func FuzzDeleteIdentity(f *testing.F) {
	fzFuzz(f, fzOp{method: "DELETE", withID: true, handler: func(a *identityapi.API) apigw.Handler { return a.DeleteIdentity }, success: 204},
		"", "{}")
}
