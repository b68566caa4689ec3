package apigw_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/token"
)

const userID = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fakeUsers is an identity.IdentityReader and token.KeySource.
type fakeUsers struct {
	mu     sync.Mutex
	ids    map[string]identity.Identity
	keys   map[string]ed25519.PublicKey
	err    error
	keyErr error
}

func (f *fakeUsers) Identity(_ context.Context, id string) (*identity.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.ids[id]
	if !ok {
		return nil, nil
	}
	return &v, nil
}

func (f *fakeUsers) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyErr != nil {
		return nil, f.keyErr
	}
	return f.keys[kid], nil
}

type authFixture struct {
	signer *token.Signer
	users  *fakeUsers
	auth   *identity.Authenticator
}

func newAuthFixture(t *testing.T) *authFixture {
	t.Helper()
	s, err := token.NewSigner([]byte("apigw-test-signing-secret"))
	if err != nil {
		t.Fatal(err)
	}
	users := &fakeUsers{
		ids:  map[string]identity.Identity{userID: {ID: userID, CreatedOn: now.Add(-time.Hour)}},
		keys: map[string]ed25519.PublicKey{s.KeyID(): s.PublicKey()},
	}
	return &authFixture{signer: s, users: users, auth: &identity.Authenticator{
		Verifier: &token.Verifier{Keys: users, Now: func() time.Time { return now }}, Users: users,
	}}
}

func (f *authFixture) token(t *testing.T, scopes []string, ttl time.Duration) (string, time.Time) {
	t.Helper()
	raw, exp, err := f.signer.Issue(userID, "res", scopes, 0, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return raw, exp
}

func authorize(t *testing.T, f *authFixture, ev events.APIGatewayV2CustomAuthorizerV2Request) (events.APIGatewayV2CustomAuthorizerSimpleResponse, error) {
	t.Helper()
	return apigw.Authorizer(f.auth, discard())(context.Background(), ev)
}

func TestAuthorizerValidToken(t *testing.T) {
	f := newAuthFixture(t)
	tok, exp := f.token(t, []string{"chat", "voip"}, time.Hour)
	for _, ev := range []events.APIGatewayV2CustomAuthorizerV2Request{
		{Headers: map[string]string{"authorization": "Bearer " + tok}},
		{IdentitySource: []string{"Bearer " + tok}},
	} {
		resp, err := authorize(t, f, ev)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.IsAuthorized {
			t.Fatal("IsAuthorized = false")
		}
		c := resp.Context
		if c["userId"] != userID || c["scopes"] != "chat,voip" || c["expires"] != strconv.FormatInt(exp.Unix(), 10) {
			t.Errorf("context = %v", c)
		}
		if _, ok := c["authError"]; ok {
			t.Errorf("context has authError for a valid token: %v", c)
		}
	}
}

func TestAuthorizerRefusedToken(t *testing.T) {
	f := newAuthFixture(t)
	tok, _ := f.token(t, []string{"chat"}, time.Hour)
	revoked := f.users.ids[userID]
	tests := []struct {
		name   string
		header string
		prep   func()
		code   string
	}{
		{"missing", "", nil, "MissingToken"},
		{"basic", "Basic abc", nil, "InvalidAuthorizationHeader"},
		{"malformed", "Bearer abc", nil, "TokenMalformed"},
		{"deleted user", "Bearer " + tok, func() {
			d := revoked
			d.DeletedOn = now
			f.users.ids[userID] = d
		}, "IdentityDeleted"},
		{"revoked", "Bearer " + tok, func() {
			d := revoked
			d.TokenGen = 1
			f.users.ids[userID] = d
		}, "TokenRevoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.users.ids[userID] = revoked
			if tt.prep != nil {
				tt.prep()
			}
			resp, err := authorize(t, f, events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": tt.header}})
			if err != nil {
				t.Fatalf("Authorizer() error = %v; a refused token is not an error", err)
			}
			if !resp.IsAuthorized {
				t.Error("IsAuthorized = false; the verdict must travel in the context, not as a gateway 403")
			}
			if resp.Context["authError"] != tt.code || resp.Context["authMessage"] == "" {
				t.Errorf("context = %v; want authError %s with a message", resp.Context, tt.code)
			}
			if _, ok := resp.Context["userId"]; ok {
				t.Errorf("a refused token has a userId: %v", resp.Context)
			}
		})
	}
}

func TestAuthorizerDependencyError(t *testing.T) {
	for _, which := range []string{"identity store", "key store"} {
		t.Run(which, func(t *testing.T) {
			f := newAuthFixture(t)
			tok, _ := f.token(t, []string{"chat"}, time.Hour)
			boom := errors.New("dynamodb unavailable")
			if which == "identity store" {
				f.users.err = boom
			} else {
				f.users.keyErr = boom
			}
			resp, err := authorize(t, f, events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer " + tok}})
			if !errors.Is(err, boom) {
				t.Fatalf("Authorizer() = %+v, %v; want the store error", resp, err)
			}
			if resp.IsAuthorized {
				t.Error("IsAuthorized = true on a dependency failure")
			}
		})
	}
}

func withLambda(ctx map[string]any) *apigw.Request {
	ev := event()
	if ctx != nil {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: ctx}
	}
	return &apigw.Request{Event: &ev}
}

func TestPrincipal(t *testing.T) {
	exp := now.Add(time.Hour)
	expStr := strconv.FormatInt(exp.Unix(), 10)
	tests := []struct {
		name   string
		ctx    map[string]any
		at     time.Time
		code   string
		scopes []string
	}{
		{"valid", map[string]any{"userId": userID, "scopes": "chat,voip", "expires": expStr}, now, "", []string{"chat", "voip"}},
		{"no scopes", map[string]any{"userId": userID, "scopes": "", "expires": expStr}, now, "", nil},
		{"one second before expiry", map[string]any{"userId": userID, "scopes": "chat", "expires": expStr}, exp.Add(-time.Second), "", []string{"chat"}},
		{"at expiry", map[string]any{"userId": userID, "scopes": "chat", "expires": expStr}, exp, "TokenExpired", nil},
		{"after expiry (cached verdict)", map[string]any{"userId": userID, "scopes": "chat", "expires": expStr}, exp.Add(time.Minute), "TokenExpired", nil},
		{"expires missing", map[string]any{"userId": userID, "scopes": "chat"}, now, "TokenExpired", nil},
		{"expires not a number", map[string]any{"userId": userID, "scopes": "chat", "expires": "soon"}, now, "TokenExpired", nil},
		{"authError", map[string]any{"authError": "TokenRevoked", "authMessage": "revoked"}, now, "TokenRevoked", nil},
		{"authError wins over a user", map[string]any{"authError": "TokenMalformed", "authMessage": "m", "userId": userID, "expires": expStr}, now, "TokenMalformed", nil},
		{"no authorizer", nil, now, "MissingToken", nil},
		{"empty context", map[string]any{}, now, "MissingToken", nil},
		{"userId of the wrong type", map[string]any{"userId": 5, "expires": expStr}, now, "MissingToken", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := withLambda(tt.ctx).Principal(tt.at)
			if tt.code != "" {
				fe, ok := fault.As(err)
				if !ok || fe.Kind != fault.Unauthorized || fe.Code != tt.code {
					t.Fatalf("Principal() = %+v, %v; want 401 %s", p, err, tt.code)
				}
				if tt.ctx != nil && tt.ctx["authMessage"] != nil && fe.Message != tt.ctx["authMessage"] {
					t.Errorf("message = %q; want the authorizer's %q", fe.Message, tt.ctx["authMessage"])
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.UserID != userID || !p.Expires.Equal(exp) || len(p.Scopes) != len(tt.scopes) {
				t.Errorf("principal = %+v; want %s %v %v", p, userID, tt.scopes, exp)
			}
			for i := range tt.scopes {
				if p.Scopes[i] != tt.scopes[i] {
					t.Errorf("scopes = %v; want %v", p.Scopes, tt.scopes)
				}
			}
		})
	}
}

// The authorizer's context, as API Gateway hands it on, is what Principal reads.
func TestAuthorizerToPrincipal(t *testing.T) {
	f := newAuthFixture(t)
	tok, exp := f.token(t, []string{"chat.join"}, time.Hour)
	resp, err := authorize(t, f, events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := withLambda(resp.Context).Principal(now)
	if err != nil {
		t.Fatal(err)
	}
	if p.UserID != userID || len(p.Scopes) != 1 || p.Scopes[0] != "chat.join" || !p.Expires.Equal(exp) {
		t.Errorf("principal = %+v", p)
	}

	resp, err = authorize(t, f, events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": "Bearer x.y.z"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = withLambda(resp.Context).Principal(now)
	if fe, ok := fault.As(err); !ok || fe.Code != "TokenMalformed" {
		t.Errorf("Principal() = %v; want TokenMalformed", err)
	}
}

func hmacSign(key []byte, method, pathAndQuery, date, host string, body []byte) (hash, auth string) {
	sum := sha256.Sum256(body)
	hash = base64.StdEncoding.EncodeToString(sum[:])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(method + "\n" + pathAndQuery + "\n" + date + ";" + host + ";" + hash))
	return hash, "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=" + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestVerifyHMAC(t *testing.T) {
	key := []byte("access-key-for-tests-0123456789ab")
	id := "8:acs:11111111-1111-1111-1111-111111111111_abc"
	date := now.Format(http.TimeFormat)
	body := []byte(`{"scopes":["chat"]}`)
	// The SDK signs the encoded path; the gateway hands over the decoded one.
	hash, auth := hmacSign(key, "POST", "/identities/8%3Aacs%3A11111111-1111-1111-1111-111111111111_abc/:issueAccessToken?api-version=2023-10-01", date, "localhost:9447", body)

	mk := func(mut func(ev *events.APIGatewayV2HTTPRequest)) *apigw.Request {
		ev := events.APIGatewayV2HTTPRequest{
			RawPath:        "/identities/" + id + "/:issueAccessToken",
			RawQueryString: "api-version=2023-10-01",
			Headers:        map[string]string{"host": "localhost:9447", "x-ms-date": date, "x-ms-content-sha256": hash, "authorization": auth},
			RequestContext: events.APIGatewayV2HTTPRequestContext{HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "POST"}},
		}
		if mut != nil {
			mut(&ev)
		}
		return &apigw.Request{Event: &ev, Body: body}
	}
	tests := []struct {
		name string
		mut  func(ev *events.APIGatewayV2HTTPRequest)
		keys [][]byte
		code string
	}{
		{"decoded path", nil, [][]byte{key}, ""},
		{"encoded path", func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RawPath = "/identities/8%3Aacs%3A11111111-1111-1111-1111-111111111111_abc/:issueAccessToken"
		}, [][]byte{key}, ""},
		{"path from the request context", func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RequestContext.HTTP.Path = ev.RawPath
			ev.RawPath = ""
		}, [][]byte{key}, ""},
		{"Date header instead of x-ms-date", func(ev *events.APIGatewayV2HTTPRequest) {
			ev.Headers["date"] = date
			delete(ev.Headers, "x-ms-date")
		}, [][]byte{key}, ""}, // the signature covers the date's value, whichever header carries it
		{"secondary key", nil, [][]byte{[]byte("other"), key}, ""},
		{"wrong key", nil, [][]byte{[]byte("other")}, "InvalidSignature"},
		{"other user in the path", func(ev *events.APIGatewayV2HTTPRequest) {
			ev.RawPath = "/identities/8:acs:11111111-1111-1111-1111-111111111111_xyz/:issueAccessToken"
		}, [][]byte{key}, "InvalidSignature"},
		{"host without port", func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["host"] = "localhost" }, [][]byte{key}, "InvalidSignature"},
		{"stale", func(ev *events.APIGatewayV2HTTPRequest) {
			old := now.Add(-10 * time.Minute).Format(http.TimeFormat)
			ev.Headers["x-ms-date"] = old
		}, [][]byte{key}, "StaleDate"},
		{"no authorization", func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.Headers, "authorization") }, [][]byte{key}, "MissingAuthorization"},
		{"no date", func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.Headers, "x-ms-date") }, [][]byte{key}, "MissingDate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := mk(tt.mut).VerifyHMAC(tt.keys, now)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("VerifyHMAC() = %v", err)
				}
				return
			}
			fe, ok := fault.As(err)
			if !ok || fe.Code != tt.code || fe.Kind != fault.Unauthorized {
				t.Fatalf("VerifyHMAC() = %v; want 401 %s", err, tt.code)
			}
		})
	}
}
