package identity

import (
	"context"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/token"
)

// Principal is an authenticated chat caller.
type Principal struct {
	UserID  string
	Scopes  []string
	Expires time.Time
}

// IdentityReader is what authentication needs of the identity store.
type IdentityReader interface {
	Identity(ctx context.Context, id string) (*Identity, error)
}

// Authenticator checks a bearer token: signature, expiry, and that its user
// still exists and has not revoked it.
type Authenticator struct {
	Verifier *token.Verifier
	Users    IdentityReader
}

// Authenticate takes an Authorization header value ("Bearer <jwt>").
func (a *Authenticator) Authenticate(ctx context.Context, authorization string) (Principal, error) {
	scheme, raw, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if authorization == "" {
		return Principal{}, fault.Unauthenticated("MissingToken", "The Authorization header is missing; send Authorization: Bearer <access token>.")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
		return Principal{}, fault.Unauthenticated("InvalidAuthorizationHeader", "The Authorization header must be \"Bearer <access token>\".")
	}
	c, err := a.Verifier.Verify(ctx, strings.TrimSpace(raw))
	if err != nil {
		return Principal{}, err
	}
	id, err := a.Users.Identity(ctx, c.Subject)
	if err != nil {
		return Principal{}, err
	}
	switch {
	case id == nil || !id.DeletedOn.IsZero():
		return Principal{}, fault.Unauthenticated("IdentityDeleted", "The access token's user no longer exists.")
	case c.Gen < id.TokenGen:
		return Principal{}, fault.Unauthenticated("TokenRevoked", "The access token was revoked; get a new one from your identity service.")
	}
	return Principal{UserID: c.Subject, Scopes: c.Scopes(), Expires: c.ExpiresAt.Time}, nil
}

// NewAuthenticator builds an Authenticator that finds signing keys and users
// in the given stores.
func NewAuthenticator(keys token.KeySource, users IdentityReader) *Authenticator {
	return &Authenticator{Verifier: &token.Verifier{Keys: keys}, Users: users}
}
