// Package token mints and verifies Threadline user access tokens: JWTs signed
// with Ed25519, so the functions that only verify tokens (the authorizers)
// never hold the signing key; they look public keys up by key id.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/threadline/threadline/shared/fault"
)

// Issuer is the iss claim of every token.
const Issuer = "threadline"

// Claims are a token's claims. Scope and SkypeID follow the names ACS uses in
// its own tokens; Gen is the user's token generation at issue time (a
// revocation bumps the user's generation, voiding every older token).
type Claims struct {
	jwt.RegisteredClaims
	Scope      string `json:"acsScope"`
	ResourceID string `json:"resourceId"`
	SkypeID    string `json:"skypeid"`
	Gen        int64  `json:"tgen"`
}

// Scopes returns the token's scopes.
func (c Claims) Scopes() []string {
	if c.Scope == "" {
		return nil
	}
	return strings.Split(c.Scope, ",")
}

// Signer mints tokens with one Ed25519 key.
type Signer struct {
	// key derives the key on first use: the first Ed25519 key derivation in
	// a process builds the curve's base-point tables (about 1 ms), which the
	// identity functions that never mint a token (delete, revoke) need not
	// pay at cold start.
	key func() (ed25519.PrivateKey, string)
}

// NewSigner derives the signing key from a secret (the generated Secrets
// Manager value): the same secret always gives the same key and key id, and
// rotating the secret gives a new key id, so old tokens keep verifying
// against the old published key until it is withdrawn.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < 16 {
		return nil, errors.New("token: the signing secret must be at least 16 bytes")
	}
	seed := sha256.Sum256(append([]byte("threadline-token-signing-v1\x00"), secret...))
	return &Signer{key: sync.OnceValues(func() (ed25519.PrivateKey, string) {
		priv := ed25519.NewKeyFromSeed(seed[:])
		return priv, KeyID(priv.Public().(ed25519.PublicKey))
	})}, nil
}

// maxKeyID bounds a token's kid header before it is looked up: KeyID makes
// 16 characters, and a key store cannot look up just any length (DynamoDB
// keys are at most 2048 bytes).
const maxKeyID = 64

// KeyID names a public key: the first 12 bytes of its SHA-256, base64url.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// KeyID is the id of the signer's key, carried in every token's kid header.
func (s *Signer) KeyID() string {
	_, kid := s.key()
	return kid
}

// PublicKey is the key verifiers need.
func (s *Signer) PublicKey() ed25519.PublicKey {
	priv, _ := s.key()
	return priv.Public().(ed25519.PublicKey)
}

// Issue mints a token for userID.
func (s *Signer) Issue(userID, resourceID string, scopes []string, gen int64, now time.Time, ttl time.Duration) (string, time.Time, error) {
	exp := now.Add(ttl).Truncate(time.Second)
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        uuid.NewString(),
		},
		Scope:      strings.Join(scopes, ","),
		ResourceID: resourceID,
		SkypeID:    strings.TrimPrefix(userID, "8:"),
		Gen:        gen,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	priv, kid := s.key()
	t.Header["kid"] = kid
	signed, err := t.SignedString(priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, exp, nil
}

// KeySource finds a published public key by id; (nil, nil) when unknown.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// Verifier checks signatures and expiry. Public keys never change for a key
// id, so each is fetched once per process.
type Verifier struct {
	Keys KeySource
	Now  func() time.Time
	mu   sync.Mutex
	keys map[string]ed25519.PublicKey
}

// Verify returns the claims of a valid, unexpired token, or a 401 fault that
// says what is wrong with it.
func (v *Verifier) Verify(ctx context.Context, raw string) (Claims, error) {
	var kidErr error
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("no kid header")
		}
		if len(kid) > maxKeyID {
			return nil, fmt.Errorf("unknown signing key (a %d-byte kid)", len(kid)) // not one KeyID makes; not looked up
		}
		pub, err := v.key(ctx, kid)
		if err != nil {
			kidErr = err
			return nil, err
		}
		if pub == nil {
			return nil, fmt.Errorf("unknown signing key %q", kid)
		}
		return pub, nil
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, keyFunc,
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
		jwt.WithTimeFunc(now),
	)
	switch {
	case err == nil:
	case kidErr != nil:
		return Claims{}, kidErr // a failed key lookup is ours, not the caller's
	case errors.Is(err, jwt.ErrTokenExpired):
		return Claims{}, fault.Unauthenticated("TokenExpired", "The access token expired; get a new one from your identity service.")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Claims{}, fault.Unauthenticated("TokenMalformed", "The access token is not a well-formed JWT.")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Claims{}, fault.Unauthenticated("TokenSignatureInvalid", "The access token's signature does not verify; it was not issued by this service.")
	default:
		return Claims{}, fault.Unauthenticated("TokenInvalid", "The access token is not valid: %v.", err)
	}
	if c.Subject == "" {
		return Claims{}, fault.Unauthenticated("TokenInvalid", "The access token names no user.")
	}
	return c, nil
}

func (v *Verifier) key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	v.mu.Lock()
	pub, ok := v.keys[kid]
	v.mu.Unlock()
	if ok {
		return pub, nil
	}
	pub, err := v.Keys.PublicKey(ctx, kid)
	if err != nil || pub == nil {
		return nil, err // an unknown kid is not cached: it may be published a moment later
	}
	v.mu.Lock()
	if v.keys == nil {
		v.keys = map[string]ed25519.PublicKey{}
	}
	v.keys[kid] = pub
	v.mu.Unlock()
	return pub, nil
}
