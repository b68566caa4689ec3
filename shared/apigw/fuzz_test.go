package apigw_test

// FuzzAuthorizer fuzzes the chat API's Lambda authorizer with any
// Authorization header (or identity source): Bearer parsing, token
// verification and the user lookup behind it, then the operation side that
// reads the verdict (Request.Principal).
//
// Properties, for every header:
//   - no panic and no error: an error makes API Gateway answer 500 (the key
//     and user stores fail as DynamoDB does for keys over 2048 bytes);
//   - the request is always let through with a verdict: a user (the live
//     one, a chat scope list and an expiry after now) for a genuine token,
//     or an error code and message, which Principal turns into the ACS 401
//     with that code;
//   - only headers carrying a token the signer issued for a live user pass.
//
// Short run: go test ./shared/apigw -run '^$' -fuzz '^FuzzAuthorizer$' -fuzztime 10s

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/token"
)

// fzUsers is an identity.IdentityReader and token.KeySource with
// DynamoDB's key limit.
type fzUsers struct {
	ids  map[string]identity.Identity
	keys map[string]ed25519.PublicKey
}

var errFzKey = errors.New("dynamodb GetItem: api error ValidationException: Hash primary key values must be under 2048 bytes")

func (u fzUsers) Identity(_ context.Context, id string) (*identity.Identity, error) {
	if len("U#"+id) > 2048 {
		return nil, errFzKey
	}
	v, ok := u.ids[id]
	if !ok {
		return nil, nil
	}
	return &v, nil
}

func (u fzUsers) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if len("KEY#"+kid) > 2048 {
		return nil, errFzKey
	}
	return u.keys[kid], nil
}

func FuzzAuthorizer(f *testing.F) {
	signer, err := token.NewSigner([]byte("apigw-fuzz-signing-secret"))
	if err != nil {
		f.Fatal(err)
	}
	deleted := "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000002"
	revoked := "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000003"
	users := fzUsers{
		ids: map[string]identity.Identity{
			userID:  {ID: userID, CreatedOn: now.Add(-time.Hour)},
			deleted: {ID: deleted, CreatedOn: now.Add(-time.Hour), TokenGen: 1, DeletedOn: now.Add(-time.Minute)},
			revoked: {ID: revoked, CreatedOn: now.Add(-time.Hour), TokenGen: 1},
		},
		keys: map[string]ed25519.PublicKey{signer.KeyID(): signer.PublicKey()},
	}
	issue := func(user string, scopes []string, ttl time.Duration) string {
		raw, _, err := signer.Issue(user, "res", scopes, 0, now, ttl)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	good := issue(userID, []string{"chat", "voip"}, time.Hour)
	for _, h := range []string{
		"Bearer " + good, "bearer " + good, "BEARER  " + good + "  ", "Bearer", "Bearer ", "Bearer  ", "", " ", "Basic dXNlcjpwYXNz",
		"Bearer " + issue(userID, nil, time.Hour), "Bearer " + issue(userID, []string{"chat"}, -time.Minute), "Bearer " + issue(deleted, []string{"chat"}, time.Hour),
		"Bearer " + issue(revoked, []string{"chat"}, time.Hour), "Bearer " + issue("8:acs:nobody", []string{"chat"}, time.Hour),
		"Bearer " + good[:len(good)-2], "Bearer a.b.c",
		"Bearer\t" + good, "Bearer " + good + " extra", "Bearer " + strings.Repeat("x", 5000),
		"Bearer " + base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","kid":"`+strings.Repeat("k", 2100)+`"}`)) + ".e30.AAAA",
	} {
		f.Add(h, false)
		f.Add(h, true)
	}
	auth := &identity.Authenticator{Verifier: &token.Verifier{Keys: users, Now: func() time.Time { return now }}, Users: users}
	f.Fuzz(func(t *testing.T, header string, fromSource bool) {
		header = strings.ToValidUTF8(header, "\uFFFD")
		ev := events.APIGatewayV2CustomAuthorizerV2Request{Headers: map[string]string{"authorization": header}}
		if fromSource {
			ev = events.APIGatewayV2CustomAuthorizerV2Request{IdentitySource: []string{header}}
		}
		resp, err := apigw.Authorizer(auth, discard())(context.Background(), ev)
		if err != nil {
			t.Fatalf("the authorizer failed (API Gateway answers 500): %v", err)
		}
		if !resp.IsAuthorized {
			t.Fatalf("refused at the gateway (an unreadable 403): %+v", resp)
		}
		c := resp.Context
		p, perr := withLambda(c).Principal(now)
		if code, _ := c["authError"].(string); code != "" {
			msg, _ := c["authMessage"].(string)
			if msg == "" || c["userId"] != nil {
				t.Fatalf("refusal context %v", c)
			}
			fe, ok := fault.As(perr)
			if !ok || fe.Kind != fault.Unauthorized || fe.Code != code {
				t.Fatalf("Principal = %v; want the 401 %s", perr, code)
			}
			return
		}
		exp, _ := strconv.ParseInt(c["expires"].(string), 10, 64)
		if c["userId"] != userID || exp <= now.Unix() {
			t.Fatalf("let %q through with context %v", header, c)
		}
		if perr != nil || p.UserID != userID {
			t.Fatalf("Principal = %+v, %v", p, perr)
		}
	})
}
