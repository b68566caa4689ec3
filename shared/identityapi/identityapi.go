// Package identityapi is the ACS Identity REST API (api-version 2023-10-01)
// over the identity domain, for the customer's trusted backend: every call is
// HMAC-signed with the resource's access key.
package identityapi

import (
	"context"
	"net/http"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/token"
)

// API serves the identity operations.
type API struct {
	Identity *identity.Service
	Keys     [][]byte // the access keys a signature may use
	Now      func() time.Time
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// begin authenticates the trusted caller and checks the api-version.
func (a *API) begin(r *apigw.Request) error {
	if err := r.VerifyHMAC(a.Keys, a.now()); err != nil {
		return err
	}
	v := r.Query.Get("api-version")
	if msg := acs.VersionProblem(v, acs.IdentityAPIVersions); msg != "" {
		code := "UnsupportedApiVersion"
		if v == "" {
			code = "MissingApiVersion"
		}
		return fault.Invalid(code, "api-version", "%s", msg)
	}
	return nil
}

// CreateIdentity is POST /identities. The SDK's createUser sends an empty
// body with Content-Type application/json; that means "no token".
func (a *API) CreateIdentity(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	if err := a.begin(r); err != nil {
		return apigw.Response{}, err
	}
	var req acs.CreateIdentityRequest
	if err := apigw.DecodeJSON(r, &req, true); err != nil {
		return apigw.Response{}, err
	}
	id, tok, err := a.Identity.CreateIdentity(ctx, req.CreateTokenWithScopes, req.ExpiresInMinutes)
	if err != nil {
		return apigw.Response{}, err
	}
	out := acs.CreateIdentityResult{Identity: acs.IdentityRef{ID: id.ID}}
	if tok != nil {
		out.AccessToken = &acs.AccessToken{Token: tok.Token, ExpiresOn: acs.Time{Time: tok.ExpiresOn}}
	}
	return apigw.JSON(http.StatusCreated, out), nil
}

// DeleteIdentity is DELETE /identities/{id}.
func (a *API) DeleteIdentity(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	if err := a.begin(r); err != nil {
		return apigw.Response{}, err
	}
	if err := a.Identity.DeleteIdentity(ctx, r.PathParam("id")); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

// IssueToken is POST /identities/{id}/:issueAccessToken.
func (a *API) IssueToken(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	if err := a.begin(r); err != nil {
		return apigw.Response{}, err
	}
	var req acs.IssueTokenRequest
	if err := apigw.DecodeJSON(r, &req, false); err != nil {
		return apigw.Response{}, err
	}
	tok, err := a.Identity.IssueToken(ctx, r.PathParam("id"), req.Scopes, req.ExpiresInMinutes)
	if err != nil {
		return apigw.Response{}, err
	}
	return apigw.JSON(http.StatusOK, acs.AccessToken{Token: tok.Token, ExpiresOn: acs.Time{Time: tok.ExpiresOn}}), nil
}

// RevokeTokens is POST /identities/{id}/:revokeAccessTokens.
func (a *API) RevokeTokens(ctx context.Context, r *apigw.Request) (apigw.Response, error) {
	if err := a.begin(r); err != nil {
		return apigw.Response{}, err
	}
	if err := a.Identity.RevokeTokens(ctx, r.PathParam("id")); err != nil {
		return apigw.Response{}, err
	}
	return apigw.NoContent(http.StatusNoContent), nil
}

// Storage is what the identity API keeps: identities and published keys.
type Storage interface {
	identity.Store
	identity.KeyPublisher
}

// New builds the identity API for a resource from its access key(s) and its
// token-signing secret.
func New(st Storage, resourceID string, accessKeys [][]byte, signingSecret []byte) (*API, error) {
	signer, err := token.NewSigner(signingSecret)
	if err != nil {
		return nil, err
	}
	svc := &identity.Service{Store: st, Keys: st, Signer: signer, ResourceID: resourceID}
	return &API{Identity: svc, Keys: accessKeys}, nil
}
