package local

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/threadline/threadline/local/acsclient"
)

// TestRevocationClosesWebSockets: a WebSocket's token is checked once, at
// the handshake. Revoking the user's tokens or deleting the user must
// therefore close its open connections (and forget them), or they would
// keep receiving events for up to API Gateway's 2 hours. Another user's
// connection stays open, and the old token cannot connect again.
func TestRevocationClosesWebSockets(t *testing.T) {
	s := startStack(t, withAuthorizerTTL(0))
	cases := []struct {
		name, method, action string
	}{
		{"revoke tokens", http.MethodPost, ":revokeAccessTokens"},
		{"delete identity", http.MethodDelete, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			users := s.users(t, 2)
			target, bystander := users[0], users[1]
			first, second := s.mustDial(t, target.Token, ""), s.mustDial(t, target.Token, "")
			other := s.mustDial(t, bystander.Token, "")
			if n := len(s.connectionIDs(t, target.ID)); n != 2 {
				t.Fatalf("%s has %d registered connections before, want 2", target.ID, n)
			}

			r, err := s.ids.Do(context.Background(), acsclient.Signed{Method: tc.method, Path: acsclient.IdentityPath(target.ID, tc.action), Body: emptyBodyFor(tc.method)})
			if err != nil || r.Status != http.StatusNoContent {
				t.Fatalf("%s: %v %s", tc.name, err, r)
			}
			for i, w := range []*wsClient{first, second} {
				select {
				case <-w.closed:
				case <-time.After(5 * time.Second):
					t.Errorf("connection %d of %s is still open after %s", i+1, target.ID, tc.name)
				}
			}
			if ids := s.connectionIDs(t, target.ID); len(ids) != 0 {
				t.Errorf("%s still has connections registered: %v", target.ID, ids)
			}
			if _, err := s.dial(t, target.Token, ""); err == nil {
				t.Errorf("the revoked token connected again after %s", tc.name)
			}
			select {
			case code := <-other.closed:
				t.Errorf("%s's connection closed (%d) with %s's revocation", bystander.ID, code, target.ID)
			default:
			}
			if n := len(s.connectionIDs(t, bystander.ID)); n != 1 {
				t.Errorf("%s has %d registered connections, want 1", bystander.ID, n)
			}
		})
	}
}

// emptyBodyFor is what the identity SDK sends: an empty JSON body on POST,
// none on DELETE.
func emptyBodyFor(method string) []byte {
	if method == http.MethodPost {
		return []byte{}
	}
	return nil
}
