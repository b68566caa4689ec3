// Package identity is the ACS Identity API's rules: users, their tokens,
// revocation and deletion, and the authentication of chat requests against
// them. It knows nothing of AWS; storage is behind the interfaces below.
package identity

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/token"
)

// Token lifetimes, as ACS allows them (reference/acs-chat.md §7.3).
const (
	MinTokenMinutes     = 60
	MaxTokenMinutes     = 1440
	DefaultTokenMinutes = 1440
)

// Identity is a user of this resource.
type Identity struct {
	ID        string
	CreatedOn time.Time
	TokenGen  int64     // tokens minted at a lower generation are revoked
	RevokedOn time.Time // the last revocation
	DeletedOn time.Time // zero while the user exists
}

// ErrNoIdentity is returned by a Store for an unknown or deleted user.
var ErrNoIdentity = errors.New("identity: no such live identity")

// Store keeps identities.
type Store interface {
	CreateIdentity(ctx context.Context, id Identity) error
	Identity(ctx context.Context, id string) (*Identity, error) // nil when it never existed
	RevokeTokens(ctx context.Context, id string, at time.Time) error
	DeleteIdentity(ctx context.Context, id string, at time.Time) error
}

// KeyPublisher makes the signing key's public half available to verifiers.
type KeyPublisher interface {
	PublishKey(ctx context.Context, kid string, pub ed25519.PublicKey) error
}

// Service implements the Identity API.
type Service struct {
	Store      Store
	Keys       KeyPublisher
	Signer     *token.Signer
	ResourceID string
	Now        func() time.Time
	// Connections closes the user's open WebSocket connections when its
	// tokens are revoked or it is deleted: a connection's token is checked
	// once, at the handshake, so it would otherwise outlive the revocation
	// by up to API Gateway's 2 hours. Nil: no real-time API to close.
	Connections ConnectionCloser

	publishMu sync.Mutex
	published bool
}

// ConnectionCloser closes every open real-time connection of a user.
type ConnectionCloser interface {
	CloseUser(ctx context.Context, userID string) error
}

// closeConnections ends the user's live connections after a revocation; a
// failure fails the call (500), and the caller's retry, which repeats the
// revocation harmlessly, closes them.
func (s *Service) closeConnections(ctx context.Context, userID string) error {
	if s.Connections == nil {
		return nil
	}
	if err := s.Connections.CloseUser(ctx, userID); err != nil {
		return fmt.Errorf("close the connections of %s: %w", userID, err)
	}
	return nil
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// IssuedToken is a freshly minted token.
type IssuedToken struct {
	Token     string
	ExpiresOn time.Time
}

// CreateIdentity creates a user and, when scopes are given, a first token.
func (s *Service) CreateIdentity(ctx context.Context, scopes []string, expiresInMinutes *int) (Identity, *IssuedToken, error) {
	var ttl time.Duration
	if len(scopes) > 0 {
		var err error
		if ttl, err = checkTokenRequest("createTokenWithScopes", scopes, expiresInMinutes); err != nil {
			return Identity{}, nil, err
		}
	}
	now := s.now()
	id := Identity{ID: "8:acs:" + s.ResourceID + "_" + uuid.NewString(), CreatedOn: now}
	if err := s.Store.CreateIdentity(ctx, id); err != nil {
		return Identity{}, nil, err
	}
	if len(scopes) == 0 {
		return id, nil, nil
	}
	tok, err := s.mint(ctx, id, scopes, now, ttl)
	if err != nil {
		return Identity{}, nil, err
	}
	return id, &tok, nil
}

// IssueToken mints a token for an existing user.
func (s *Service) IssueToken(ctx context.Context, userID string, scopes []string, expiresInMinutes *int) (IssuedToken, error) {
	if len(scopes) == 0 {
		return IssuedToken{}, fault.Invalid("InvalidScopes", "scopes", "scopes is required and must name at least one of %v.", acs.Scopes)
	}
	ttl, err := checkTokenRequest("scopes", scopes, expiresInMinutes)
	if err != nil {
		return IssuedToken{}, err
	}
	id, err := s.live(ctx, userID)
	if err != nil {
		return IssuedToken{}, err
	}
	return s.mint(ctx, *id, scopes, s.now(), ttl)
}

// RevokeTokens voids every token the user holds now; tokens issued later work.
func (s *Service) RevokeTokens(ctx context.Context, userID string) error {
	if !acs.IsACSUserID(userID) {
		return noIdentity(userID)
	}
	if err := s.Store.RevokeTokens(ctx, userID, s.now()); errors.Is(err, ErrNoIdentity) {
		return noIdentity(userID)
	} else if err != nil {
		return err
	}
	return s.closeConnections(ctx, userID)
}

// DeleteIdentity deletes a user and voids its tokens. Deleting a deleted user
// succeeds, so a retried delete does not fail.
func (s *Service) DeleteIdentity(ctx context.Context, userID string) error {
	if !acs.IsACSUserID(userID) {
		return noIdentity(userID)
	}
	id, err := s.Store.Identity(ctx, userID)
	if err != nil {
		return err
	}
	if id == nil {
		return noIdentity(userID)
	}
	if id.DeletedOn.IsZero() {
		if err := s.Store.DeleteIdentity(ctx, userID, s.now()); err != nil {
			return err
		}
	}
	// Also on a repeated delete: the retry of a delete whose close failed.
	return s.closeConnections(ctx, userID)
}

func (s *Service) live(ctx context.Context, userID string) (*Identity, error) {
	if !acs.IsACSUserID(userID) {
		return nil, noIdentity(userID) // not an id this service issues, nor one a key could hold
	}
	id, err := s.Store.Identity(ctx, userID)
	if err != nil {
		return nil, err
	}
	if id == nil || !id.DeletedOn.IsZero() {
		return nil, noIdentity(userID)
	}
	return id, nil
}

func noIdentity(userID string) error {
	return fault.Missing("IdentityNotFound", "id", "There is no identity %s in this resource.", userID)
}

func (s *Service) mint(ctx context.Context, id Identity, scopes []string, now time.Time, ttl time.Duration) (IssuedToken, error) {
	if err := s.publish(ctx); err != nil {
		return IssuedToken{}, err
	}
	tok, exp, err := s.Signer.Issue(id.ID, s.ResourceID, dedupe(scopes), id.TokenGen, now, ttl)
	if err != nil {
		return IssuedToken{}, err
	}
	return IssuedToken{Token: tok, ExpiresOn: exp}, nil
}

// publish makes sure the verifiers can find the signing key before the first
// token that needs it leaves this process.
func (s *Service) publish(ctx context.Context) error {
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if s.published {
		return nil
	}
	if err := s.Keys.PublishKey(ctx, s.Signer.KeyID(), s.Signer.PublicKey()); err != nil {
		return err
	}
	s.published = true
	return nil
}

func checkTokenRequest(target string, scopes []string, expiresInMinutes *int) (time.Duration, error) {
	for _, sc := range scopes {
		if !slices.Contains(acs.Scopes, sc) {
			return 0, fault.Invalid("InvalidScopes", target, "%q is not a token scope; use one of %s.", sc, strings.Join(acs.Scopes, ", "))
		}
	}
	minutes := DefaultTokenMinutes
	if expiresInMinutes != nil {
		minutes = *expiresInMinutes
		if minutes < MinTokenMinutes || minutes > MaxTokenMinutes {
			return 0, fault.Invalid("InvalidExpiresInMinutes", "expiresInMinutes",
				"expiresInMinutes must be between %d and %d; it was %d.", MinTokenMinutes, MaxTokenMinutes, minutes)
		}
	}
	return time.Duration(minutes) * time.Minute, nil
}

func dedupe(scopes []string) []string {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
