package local

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
)

func TestIdentityOperations(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()

	// createUser sends an empty body with Content-Type application/json.
	r, err := s.ids.Do(ctx, acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Identity    struct{ ID string }
		AccessToken *struct{ Token, ExpiresOn string }
	}
	if r.Status != http.StatusCreated || r.JSON(&created) != nil || !strings.HasPrefix(created.Identity.ID, "8:acs:"+s.Secrets.ResourceID+"_") || created.AccessToken != nil {
		t.Fatalf("create without token: %s", r)
	}
	id := created.Identity.ID

	// Issue a token with a custom lifetime.
	r, _ = s.ids.Do(ctx, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(id, ":issueAccessToken"),
		Body: []byte(`{"scopes":["chat","voip"],"expiresInMinutes":60}`)})
	var tok struct{ Token, ExpiresOn string }
	if r.Status != http.StatusOK || r.JSON(&tok) != nil || tok.Token == "" {
		t.Fatalf("issue token: %s", r)
	}
	exp, err := time.Parse(time.RFC3339Nano, tok.ExpiresOn)
	if err != nil || exp.Sub(time.Now()) > time.Hour || exp.Sub(time.Now()) < 59*time.Minute {
		t.Errorf("expiresOn %s is not an hour away", tok.ExpiresOn)
	}
	if r := s.do(t, tok.Token, acsclient.Request{Method: http.MethodGet, Path: "/chat/threads?api-version=2025-03-15"}); r.Status != http.StatusOK {
		t.Errorf("the issued token does not work: %s", r)
	}

	// Revoke, then delete twice (a retried delete succeeds), then it is gone.
	for _, step := range []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"revoke", http.MethodPost, acsclient.IdentityPath(id, ":revokeAccessTokens"), http.StatusNoContent},
		{"delete", http.MethodDelete, acsclient.IdentityPath(id, ""), http.StatusNoContent},
		{"delete again", http.MethodDelete, acsclient.IdentityPath(id, ""), http.StatusNoContent},
		{"revoke a deleted user", http.MethodPost, acsclient.IdentityPath(id, ":revokeAccessTokens"), http.StatusNotFound},
	} {
		r, err := s.ids.Do(ctx, acsclient.Signed{Method: step.method, Path: step.path})
		if err != nil || r.Status != step.status {
			t.Errorf("%s: %v %s", step.name, err, r)
		}
	}
	r, _ = s.ids.Do(ctx, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(id, ":issueAccessToken"), Body: []byte(`{"scopes":["chat"]}`)})
	acsError(t, "token for a deleted user", r, 404, "NotFound", "IdentityNotFound")
}

func TestIdentityBadInput(t *testing.T) {
	s := startStack(t)
	ctx := context.Background()
	user := s.user(t)
	wrongKey := &acsclient.Identity{Endpoint: s.ids.Endpoint, Key: []byte("0123456789abcdef0123456789abcdef"), HTTP: s.ids.HTTP}
	stale := &acsclient.Identity{Endpoint: s.ids.Endpoint, Key: s.ids.Key, HTTP: s.ids.HTTP, Now: func() time.Time { return time.Now().Add(-6 * time.Minute) }}
	retried := &acsclient.Identity{Endpoint: s.ids.Endpoint, Key: s.ids.Key, HTTP: s.ids.HTTP, Now: func() time.Time { return time.Now().Add(-4 * time.Minute) }}
	create := acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte(`{}`)}

	cases := []struct {
		name        string
		client      *acsclient.Identity
		req         acsclient.Signed
		status      int
		code, inner string
	}{
		{"wrong key", wrongKey, create, 401, "Unauthorized", "InvalidSignature"},
		{"stale date", stale, create, 401, "Unauthorized", "StaleDate"},
		{"tampered body", s.ids, acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte(`{}`),
			Mutate: func(r *http.Request) {
				r.Body = http.NoBody
				r.ContentLength = 0
			}}, 401, "Unauthorized", "ContentHashMismatch"},
		{"tampered path", s.ids, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(user.ID, ":revokeAccessTokens"),
			Mutate: func(r *http.Request) { r.URL.Path = strings.Replace(r.URL.Path, "revoke", "Revoke", 1) }}, 404, "", ""},
		{"tampered query", s.ids, acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte(`{}`),
			Mutate: func(r *http.Request) { r.URL.RawQuery = "api-version=2022-10-01" }}, 401, "Unauthorized", "InvalidSignature"},
		{"no signature", s.ids, acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte(`{}`),
			Mutate: func(r *http.Request) { r.Header.Del("Authorization") }}, 401, "Unauthorized", "MissingAuthorization"},
		{"missing api-version", s.ids, acsclient.Signed{Method: http.MethodPost, Path: "/identities", Body: []byte(`{}`)}, 400, "MissingApiVersion", ""},
		{"token lifetime of 30 minutes", s.ids, acsclient.Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: []byte(`{"createTokenWithScopes":["chat"],"expiresInMinutes":30}`)}, 400, "InvalidExpiresInMinutes", ""},
		{"unknown scope", s.ids, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(user.ID, ":issueAccessToken"), Body: []byte(`{"scopes":["admin"]}`)}, 400, "InvalidScopes", ""},
		{"no scopes", s.ids, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(user.ID, ":issueAccessToken"), Body: []byte(`{"scopes":[]}`)}, 400, "InvalidScopes", ""},
		{"malformed JSON", s.ids, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(user.ID, ":issueAccessToken"), Body: []byte(`{"scopes":`)}, 400, "InvalidRequestBody", ""},
		{"unknown identity", s.ids, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath("8:acs:"+s.Secrets.ResourceID+"_nobody", ":issueAccessToken"), Body: []byte(`{"scopes":["chat"]}`)}, 404, "NotFound", "IdentityNotFound"},
	}
	for _, c := range cases {
		r, err := c.client.Do(ctx, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if c.code == "" { // answered by API Gateway (no such route)
			if r.Status != c.status {
				t.Errorf("%s: %s", c.name, r)
			}
			continue
		}
		acsError(t, c.name, r, c.status, c.code, c.inner)
	}

	// A retry of a request signed 4 minutes ago still passes (the SDKs do not re-sign retries).
	if r, err := retried.Do(ctx, create); err != nil || r.Status != http.StatusCreated {
		t.Errorf("request signed 4 minutes ago: %v %s", err, r)
	}
}
