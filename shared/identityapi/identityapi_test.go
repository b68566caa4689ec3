package identityapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/identityapi"
	"github.com/threadline/threadline/shared/token"
)

// memStore is an in-memory identityapi.Storage that is also a
// token.KeySource, so tests can verify the tokens it hands out. Its keys
// fail as DynamoDB's do: U#<id> and KEY#<kid> partition keys over 2048
// bytes are a ValidationException, an opaque error.
type memStore struct {
	mu     sync.Mutex
	ids    map[string]identity.Identity
	keys   map[string]ed25519.PublicKey
	writes int
}

var errKeyTooLong = errors.New("dynamodb: api error ValidationException: Hash primary key values must be under 2048 bytes, and range primary key values must be under 1024 bytes")

func checkKey(pk string) error {
	if len(pk) > 2048 {
		return fmt.Errorf("key of %d bytes: %w", len(pk), errKeyTooLong)
	}
	return nil
}

func (m *memStore) CreateIdentity(_ context.Context, id identity.Identity) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("U#" + id.ID); err != nil {
		return err
	}
	if _, ok := m.ids[id.ID]; ok {
		return fmt.Errorf("memStore: identity %s exists", id.ID)
	}
	m.writes++
	m.ids[id.ID] = id
	return nil
}

func (m *memStore) Identity(_ context.Context, id string) (*identity.Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("U#" + id); err != nil {
		return nil, err
	}
	v, ok := m.ids[id]
	if !ok {
		return nil, nil
	}
	return &v, nil
}

func (m *memStore) RevokeTokens(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("U#" + id); err != nil {
		return err
	}
	v, ok := m.ids[id]
	if !ok || !v.DeletedOn.IsZero() {
		return identity.ErrNoIdentity
	}
	m.writes++
	v.TokenGen++
	v.RevokedOn = at
	m.ids[id] = v
	return nil
}

func (m *memStore) DeleteIdentity(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("U#" + id); err != nil {
		return err
	}
	v, ok := m.ids[id]
	if !ok {
		return identity.ErrNoIdentity
	}
	m.writes++
	v.TokenGen++
	v.DeletedOn = at
	m.ids[id] = v
	return nil
}

func (m *memStore) PublishKey(_ context.Context, kid string, pub ed25519.PublicKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("KEY#" + kid); err != nil {
		return err
	}
	m.keys[kid] = pub // a key publication is not a client's write
	return nil
}

func (m *memStore) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := checkKey("KEY#" + kid); err != nil {
		return nil, err
	}
	return m.keys[kid], nil
}

func newMemStore() *memStore {
	return &memStore{ids: map[string]identity.Identity{}, keys: map[string]ed25519.PublicKey{}}
}

const (
	resource = "11111111-2222-3333-4444-555555555555"
	host     = "127.0.0.1:9447"
	ver      = "api-version=2023-10-01"
)

var (
	accessKey = []byte("0123456789abcdef0123456789abcdef")
	now       = time.Date(2026, 11, 25, 19, 53, 43, 0, time.UTC)
)

type harness struct {
	api *identityapi.API
	st  *memStore
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st := newMemStore()
	api, err := identityapi.New(st, resource, [][]byte{accessKey}, []byte("identity-api-signing-secret"))
	if err != nil {
		t.Fatal(err)
	}
	api.Now = func() time.Time { return now }
	api.Identity.Now = api.Now
	return &harness{api: api, st: st}
}

// signed is a request signed as acs-wire.md §2 describes: over the path
// as the SDK sends it (encoded) and the URLSearchParams form of the query.
type signed struct {
	method      string
	sentPath    string // as the SDK puts it on the wire (signed)
	gatewayPath string // as API Gateway hands it to the function (decoded)
	rawQuery    string
	signedQuery string // "" means the same as rawQuery
	body        string
	key         []byte
	date        time.Time
	params      map[string]string
	headers     map[string]string // overrides
}

func (s signed) event() events.APIGatewayV2HTTPRequest {
	sum := sha256.Sum256([]byte(s.body))
	hash := base64.StdEncoding.EncodeToString(sum[:])
	date := s.date
	if date.IsZero() {
		date = now
	}
	xmsdate := date.Format(http.TimeFormat)
	key := s.key
	if key == nil {
		key = accessKey
	}
	sq := s.signedQuery
	if sq == "" {
		sq = s.rawQuery
	}
	pq := s.sentPath
	if sq != "" {
		pq += "?" + sq
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s.method + "\n" + pq + "\n" + xmsdate + ";" + host + ";" + hash))
	headers := map[string]string{
		"host":                host,
		"x-ms-date":           xmsdate,
		"x-ms-content-sha256": hash,
		"authorization":       "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(m.Sum(nil)),
	}
	if s.body != "" || s.method == "POST" {
		headers["content-type"] = "application/json"
	}
	maps.Copy(headers, s.headers)
	gw := s.gatewayPath
	if gw == "" {
		gw = s.sentPath
	}
	return events.APIGatewayV2HTTPRequest{
		RouteKey:       s.method + " " + gw,
		RawPath:        gw,
		RawQueryString: s.rawQuery,
		Headers:        headers,
		PathParameters: s.params,
		Body:           s.body,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RequestID: "req-1",
			HTTP:      events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: s.method, Path: gw},
		},
	}
}

func call(t *testing.T, h apigw.Handler, ev events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	t.Helper()
	resp, err := apigw.HTTP("test", slog.New(slog.NewTextHandler(io.Discard, nil)), h)(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func wantError(t *testing.T, resp events.APIGatewayV2HTTPResponse, status int, top, inner string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d %s; want %d", resp.StatusCode, resp.Body, status)
	}
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &e); err != nil {
		t.Fatal(err)
	}
	if e.Error.Code != top || e.Error.Message == "" {
		t.Fatalf("error = %s; want code %s", resp.Body, top)
	}
	if inner != "" && (e.Error.InnerError == nil || e.Error.InnerError.Code != inner) {
		t.Fatalf("error = %s; want innererror %s", resp.Body, inner)
	}
}

var (
	idRe        = regexp.MustCompile(`^8:acs:` + resource + `_[0-9a-f-]{36}$`)
	sevenDigits = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$`)
)

func encodeID(id string) string { return strings.ReplaceAll(id, ":", "%3A") }

func (h *harness) createUser(t *testing.T) string {
	t.Helper()
	resp := call(t, h.api.CreateIdentity, signed{method: "POST", sentPath: "/identities", rawQuery: ver}.event())
	if resp.StatusCode != 201 {
		t.Fatalf("create = %d %s", resp.StatusCode, resp.Body)
	}
	var out struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	return out.Identity.ID
}

func TestCreateIdentityEmptyBody(t *testing.T) {
	h := newHarness(t)
	// What the SDK's createUser sends: Content-Type application/json, no body.
	ev := signed{method: "POST", sentPath: "/identities", rawQuery: ver}.event()
	if ev.Headers["content-type"] != "application/json" || ev.Body != "" || ev.Headers["x-ms-content-sha256"] != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" {
		t.Fatalf("harness does not send what createUser sends: %v", ev.Headers)
	}
	resp := call(t, h.api.CreateIdentity, ev)
	if resp.StatusCode != 201 {
		t.Fatalf("status = %d %s; want 201", resp.StatusCode, resp.Body)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	if _, ok := out["accessToken"]; ok {
		t.Errorf("accessToken present for createUser: %s", resp.Body)
	}
	id, _ := out["identity"].(map[string]any)["id"].(string)
	if !idRe.MatchString(id) {
		t.Errorf("id = %q", id)
	}
	if _, ok := h.st.ids[id]; !ok {
		t.Errorf("identity %s not stored", id)
	}
	if len(h.st.keys) != 0 {
		t.Errorf("a key was published without a token")
	}
}

func TestCreateIdentityWithToken(t *testing.T) {
	h := newHarness(t)
	body := `{"createTokenWithScopes":["chat"]}`
	resp := call(t, h.api.CreateIdentity, signed{method: "POST", sentPath: "/identities", rawQuery: ver, body: body}.event())
	if resp.StatusCode != 201 {
		t.Fatalf("status = %d %s", resp.StatusCode, resp.Body)
	}
	var out struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
		AccessToken *struct {
			Token     string `json:"token"`
			ExpiresOn string `json:"expiresOn"`
		} `json:"accessToken"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	if out.AccessToken == nil || out.AccessToken.Token == "" {
		t.Fatalf("no accessToken in %s", resp.Body)
	}
	if want := "2026-11-26T19:53:43.0000000Z"; out.AccessToken.ExpiresOn != want {
		t.Errorf("expiresOn = %q; want %q (24 h)", out.AccessToken.ExpiresOn, want)
	}
	v := &token.Verifier{Keys: h.st, Now: func() time.Time { return now }}
	c, err := v.Verify(context.Background(), out.AccessToken.Token)
	if err != nil {
		t.Fatalf("the issued token does not verify against the published key: %v", err)
	}
	if c.Subject != out.Identity.ID || c.Scope != "chat" {
		t.Errorf("claims = sub %q scope %q", c.Subject, c.Scope)
	}
}

func TestCreateIdentityRefusals(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		status int
		top    string
		inner  string
	}{
		{"59 minutes", `{"createTokenWithScopes":["chat"],"expiresInMinutes":59}`, 400, "InvalidExpiresInMinutes", ""},
		{"1441 minutes", `{"createTokenWithScopes":["chat"],"expiresInMinutes":1441}`, 400, "InvalidExpiresInMinutes", ""},
		{"unknown scope", `{"createTokenWithScopes":["chat","admin"]}`, 400, "InvalidScopes", ""},
		{"malformed JSON", `{"createTokenWithScopes":`, 400, "InvalidRequestBody", ""},
		{"scopes not an array", `{"createTokenWithScopes":"chat"}`, 400, "InvalidRequestBody", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			resp := call(t, h.api.CreateIdentity, signed{method: "POST", sentPath: "/identities", rawQuery: ver, body: tt.body}.event())
			wantError(t, resp, tt.status, tt.top, tt.inner)
			if len(h.st.ids) != 0 {
				t.Errorf("a refused request created %d identities", len(h.st.ids))
			}
		})
	}
}

func TestHMACAndVersion(t *testing.T) {
	tests := []struct {
		name   string
		req    signed
		mut    func(ev *events.APIGatewayV2HTTPRequest)
		status int
		top    string
		inner  string
	}{
		{"wrong key", signed{method: "POST", sentPath: "/identities", rawQuery: ver, key: []byte("another-key-another-key-another!!")}, nil, 401, "Unauthorized", "InvalidSignature"},
		{"stale date", signed{method: "POST", sentPath: "/identities", rawQuery: ver, date: now.Add(-6 * time.Minute)}, nil, 401, "Unauthorized", "StaleDate"},
		{"retried 4 minutes later", signed{method: "POST", sentPath: "/identities", rawQuery: ver, date: now.Add(-4 * time.Minute)}, nil, 201, "", ""},
		{"no authorization", signed{method: "POST", sentPath: "/identities", rawQuery: ver}, func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.Headers, "authorization") }, 401, "Unauthorized", "MissingAuthorization"},
		{"tampered body", signed{method: "POST", sentPath: "/identities", rawQuery: ver, body: `{"createTokenWithScopes":["chat"]}`}, func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = `{"createTokenWithScopes":["voip"]}` }, 401, "Unauthorized", "ContentHashMismatch"},
		{"other host", signed{method: "POST", sentPath: "/identities", rawQuery: ver}, func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["host"] = "127.0.0.1:9448" }, 401, "Unauthorized", "InvalidSignature"},
		{"query re-serialised before verifying", signed{method: "POST", sentPath: "/identities", rawQuery: ver + "&x=a%20b~", signedQuery: ver + "&x=a+b%7E"}, nil, 201, "", ""},
		{"missing api-version", signed{method: "POST", sentPath: "/identities"}, nil, 400, "MissingApiVersion", ""},
		{"unsupported api-version", signed{method: "POST", sentPath: "/identities", rawQuery: "api-version=2025-03-15"}, nil, 400, "UnsupportedApiVersion", ""},
		{"older api-version", signed{method: "POST", sentPath: "/identities", rawQuery: "api-version=2021-03-07"}, nil, 201, "", ""},
		{"signature checked before the api-version", signed{method: "POST", sentPath: "/identities", key: []byte("x")}, nil, 401, "Unauthorized", "InvalidSignature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			ev := tt.req.event()
			if tt.mut != nil {
				tt.mut(&ev)
			}
			resp := call(t, h.api.CreateIdentity, ev)
			if tt.status == 201 {
				if resp.StatusCode != 201 {
					t.Fatalf("status = %d %s; want 201", resp.StatusCode, resp.Body)
				}
				return
			}
			wantError(t, resp, tt.status, tt.top, tt.inner)
			if len(h.st.ids) != 0 {
				t.Errorf("a refused request created an identity")
			}
		})
	}
}

func TestIssueTokenOverDecodedPath(t *testing.T) {
	h := newHarness(t)
	id := h.createUser(t)
	body := `{"scopes":["chat","voip"],"expiresInMinutes":60}`
	ev := signed{
		method:      "POST",
		sentPath:    "/identities/" + encodeID(id) + "/:issueAccessToken", // what the SDK signs
		gatewayPath: "/identities/" + id + "/:issueAccessToken",           // what the function sees
		rawQuery:    ver,
		body:        body,
		params:      map[string]string{"id": id},
	}.event()
	resp := call(t, h.api.IssueToken, ev)
	if resp.StatusCode != 200 {
		t.Fatalf("status = %d %s; want 200", resp.StatusCode, resp.Body)
	}
	var out struct {
		Token     string `json:"token"`
		ExpiresOn string `json:"expiresOn"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil {
		t.Fatal(err)
	}
	if out.ExpiresOn != "2026-11-25T20:53:43.0000000Z" || !sevenDigits.MatchString(out.ExpiresOn) {
		t.Errorf("expiresOn = %q; want now + 60 min", out.ExpiresOn)
	}
	c, err := (&token.Verifier{Keys: h.st, Now: func() time.Time { return now }}).Verify(context.Background(), out.Token)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != id || c.Scope != "chat,voip" {
		t.Errorf("claims = %q %q", c.Subject, c.Scope)
	}

	// Signed over a different id: refused.
	other := signed{
		method: "POST", sentPath: "/identities/" + encodeID(id+"x") + "/:issueAccessToken",
		gatewayPath: "/identities/" + id + "/:issueAccessToken", rawQuery: ver, body: body, params: map[string]string{"id": id},
	}.event()
	wantError(t, call(t, h.api.IssueToken, other), 401, "Unauthorized", "InvalidSignature")
}

func TestIssueTokenRefusals(t *testing.T) {
	h := newHarness(t)
	id := h.createUser(t)
	unknown := "8:acs:" + resource + "_00000000-0000-0000-0000-00000000dead"
	tests := []struct {
		name   string
		id     string
		body   string
		status int
		top    string
		inner  string
	}{
		{"unknown user", unknown, `{"scopes":["chat"]}`, 404, "NotFound", "IdentityNotFound"},
		{"no body", id, ``, 400, "MissingRequestBody", ""},
		{"no scopes", id, `{}`, 400, "InvalidScopes", ""},
		{"bad scope", id, `{"scopes":["chat.admin"]}`, 400, "InvalidScopes", ""},
		{"1441 minutes", id, `{"scopes":["chat"],"expiresInMinutes":1441}`, 400, "InvalidExpiresInMinutes", ""},
		{"expiresInMinutes as a string", id, `{"scopes":["chat"],"expiresInMinutes":"60"}`, 400, "InvalidRequestBody", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := signed{method: "POST", sentPath: "/identities/" + encodeID(tt.id) + "/:issueAccessToken", gatewayPath: "/identities/" + tt.id + "/:issueAccessToken",
				rawQuery: ver, body: tt.body, params: map[string]string{"id": tt.id}}.event()
			wantError(t, call(t, h.api.IssueToken, ev), tt.status, tt.top, tt.inner)
		})
	}
}

func TestRevokeAndDelete(t *testing.T) {
	h := newHarness(t)
	id := h.createUser(t)
	op := func(handler apigw.Handler, method, suffix, userID string) events.APIGatewayV2HTTPResponse {
		return call(t, handler, signed{method: method, sentPath: "/identities/" + encodeID(userID) + suffix, gatewayPath: "/identities/" + userID + suffix,
			rawQuery: ver, params: map[string]string{"id": userID}}.event())
	}

	resp := op(h.api.RevokeTokens, "POST", "/:revokeAccessTokens", id)
	if resp.StatusCode != 204 || resp.Body != "" {
		t.Fatalf("revoke = %d %q; want 204", resp.StatusCode, resp.Body)
	}
	if h.st.ids[id].TokenGen != 1 {
		t.Errorf("TokenGen = %d after revoke; want 1", h.st.ids[id].TokenGen)
	}
	wantError(t, op(h.api.RevokeTokens, "POST", "/:revokeAccessTokens", id+"0"), 404, "NotFound", "IdentityNotFound")

	for i := 0; i < 2; i++ {
		resp := op(h.api.DeleteIdentity, "DELETE", "", id)
		if resp.StatusCode != 204 || resp.Body != "" {
			t.Fatalf("delete #%d = %d %q; want 204", i+1, resp.StatusCode, resp.Body)
		}
	}
	if h.st.ids[id].DeletedOn.IsZero() {
		t.Error("identity not deleted")
	}
	wantError(t, op(h.api.DeleteIdentity, "DELETE", "", id+"0"), 404, "NotFound", "IdentityNotFound")
	wantError(t, op(h.api.RevokeTokens, "POST", "/:revokeAccessTokens", id), 404, "NotFound", "IdentityNotFound")

	issue := signed{method: "POST", sentPath: "/identities/" + encodeID(id) + "/:issueAccessToken", gatewayPath: "/identities/" + id + "/:issueAccessToken",
		rawQuery: ver, body: `{"scopes":["chat"]}`, params: map[string]string{"id": id}}.event()
	wantError(t, call(t, h.api.IssueToken, issue), 404, "NotFound", "IdentityNotFound")
}

func TestNewRejectsShortSecret(t *testing.T) {
	if _, err := identityapi.New(newMemStore(), resource, [][]byte{accessKey}, []byte("short")); err == nil {
		t.Error("New() with a 5-byte signing secret succeeded")
	}
}
