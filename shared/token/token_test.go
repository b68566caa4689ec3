package token_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/token"
)

const user = "8:acs:11111111-1111-1111-1111-111111111111_00000000-0000-0000-0000-000000000001"

// fakeKeys is an in-memory KeySource that counts lookups.
type fakeKeys struct {
	mu    sync.Mutex
	keys  map[string]ed25519.PublicKey
	err   error
	calls map[string]int
}

func newFakeKeys() *fakeKeys {
	return &fakeKeys{keys: map[string]ed25519.PublicKey{}, calls: map[string]int{}}
}

func (f *fakeKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[kid]++
	if f.err != nil {
		return nil, f.err
	}
	return f.keys[kid], nil
}

func (f *fakeKeys) add(s *token.Signer) { f.keys[s.KeyID()] = s.PublicKey() }

func (f *fakeKeys) count(kid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[kid]
}

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func mustSigner(t *testing.T, secret string) *token.Signer {
	t.Helper()
	s, err := token.NewSigner([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantFault(t *testing.T, err error, code string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("err = %v; want fault %s", err, code)
	}
	if fe.Code != code || fe.Kind != fault.Unauthorized {
		t.Fatalf("err = %s (kind %v); want %s (Unauthorized)", fe.Code, fe.Kind, code)
	}
}

func clock(at time.Time) func() time.Time { return func() time.Time { return at } }

func TestNewSigner(t *testing.T) {
	if _, err := token.NewSigner([]byte("short")); err == nil {
		t.Error("NewSigner(5 bytes) succeeded; want an error")
	}
	a1 := mustSigner(t, "secret-number-one-0123456789")
	a2 := mustSigner(t, "secret-number-one-0123456789")
	b := mustSigner(t, "secret-number-two-0123456789")
	if a1.KeyID() != a2.KeyID() || !a1.PublicKey().Equal(a2.PublicKey()) {
		t.Error("the same secret gave different keys")
	}
	if a1.KeyID() == b.KeyID() || a1.PublicKey().Equal(b.PublicKey()) {
		t.Error("different secrets gave the same key")
	}
	if a1.KeyID() != token.KeyID(a1.PublicKey()) {
		t.Errorf("KeyID() = %q; want token.KeyID(PublicKey()) = %q", a1.KeyID(), token.KeyID(a1.PublicKey()))
	}
	if n := len(a1.KeyID()); n != 16 { // 12 bytes, base64url without padding
		t.Errorf("KeyID length = %d; want 16", n)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	s := mustSigner(t, "round-trip-secret-0123456789")
	keys := newFakeKeys()
	keys.add(s)
	tests := []struct {
		name   string
		scopes []string
		gen    int64
		ttl    time.Duration
	}{
		{"chat, 24h", []string{"chat"}, 0, 24 * time.Hour},
		{"chat+voip, gen 3, 1h", []string{"chat", "voip"}, 3, time.Hour},
		{"chat.join.limited", []string{"chat.join.limited"}, 7, 90 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(123 * time.Millisecond)
			raw, exp, err := s.Issue(user, "res-1", tt.scopes, tt.gen, now, tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if want := now.Add(tt.ttl).Truncate(time.Second); !exp.Equal(want) {
				t.Errorf("exp = %v; want %v", exp, want)
			}
			v := &token.Verifier{Keys: keys, Now: clock(now.Add(time.Minute))}
			c, err := v.Verify(context.Background(), raw)
			if err != nil {
				t.Fatalf("Verify() = %v", err)
			}
			if c.Subject != user {
				t.Errorf("sub = %q; want %q", c.Subject, user)
			}
			if !slices.Equal(c.Scopes(), tt.scopes) {
				t.Errorf("scopes = %v; want %v", c.Scopes(), tt.scopes)
			}
			if c.Gen != tt.gen {
				t.Errorf("gen = %d; want %d", c.Gen, tt.gen)
			}
			if c.ExpiresAt == nil || !c.ExpiresAt.Time.Equal(exp) {
				t.Errorf("exp claim = %v; want %v", c.ExpiresAt, exp)
			}
			if c.Issuer != token.Issuer {
				t.Errorf("iss = %q; want %q", c.Issuer, token.Issuer)
			}
			if c.ResourceID != "res-1" {
				t.Errorf("resourceId = %q; want res-1", c.ResourceID)
			}
			if c.SkypeID != strings.TrimPrefix(user, "8:") {
				t.Errorf("skypeid = %q", c.SkypeID)
			}
			if c.ID == "" {
				t.Error("jti is empty")
			}
		})
	}
}

func TestIssueHeaderAndClaimNames(t *testing.T) {
	s := mustSigner(t, "header-secret-0123456789")
	raw, _, err := s.Issue(user, "res", []string{"chat", "voip"}, 2, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr, claims map[string]any
	for i, dst := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	if hdr["alg"] != "EdDSA" || hdr["kid"] != s.KeyID() {
		t.Errorf("header = %v; want alg EdDSA, kid %s", hdr, s.KeyID())
	}
	if claims["acsScope"] != "chat,voip" || claims["tgen"] != float64(2) || claims["sub"] != user {
		t.Errorf("claims = %v", claims)
	}
	if claims["exp"] != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("exp = %v; want %d", claims["exp"], t0.Add(time.Hour).Unix())
	}
}

func TestClaimsScopesEmpty(t *testing.T) {
	if got := (token.Claims{}).Scopes(); got != nil {
		t.Errorf("Scopes() of no scope = %v; want nil", got)
	}
}

// ownToken signs arbitrary claims with a key the test controls.
func ownToken(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func goodClaims() token.Claims {
	return token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: token.Issuer, Subject: user,
			IssuedAt: jwt.NewNumericDate(t0), ExpiresAt: jwt.NewNumericDate(t0.Add(time.Hour)),
		},
		Scope: "chat",
	}
}

func TestVerifyRefusals(t *testing.T) {
	s := mustSigner(t, "the-real-secret-0123456789")
	other := mustSigner(t, "another-secret-0123456789")
	keys := newFakeKeys()
	keys.add(s)

	// A key pair the test owns, published under its own kid.
	ownPub, ownPriv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ownKid := token.KeyID(ownPub)
	keys.keys[ownKid] = ownPub

	valid, _, err := s.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	byOther, _, err := other.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, ".")

	// The payload of a valid token with the scope changed, signature kept.
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"chat"`, `"chat,voip"`, 1))) + "." + parts[2]

	noneTok := ownToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, s.KeyID(), goodClaims())
	hsWithPub := ownToken(t, jwt.SigningMethodHS256, []byte(s.PublicKey()), s.KeyID(), goodClaims())
	hsWithSecret := ownToken(t, jwt.SigningMethodHS256, []byte("the-real-secret-0123456789"), s.KeyID(), goodClaims())
	otherKeyClaimingKid := ownToken(t, jwt.SigningMethodEdDSA, ownPriv, s.KeyID(), goodClaims())
	noKid := ownToken(t, jwt.SigningMethodEdDSA, ownPriv, "", goodClaims())

	wrongIss := goodClaims()
	wrongIss.Issuer = "someone-else"
	noExp := goodClaims()
	noExp.ExpiresAt = nil
	noSub := goodClaims()
	noSub.Subject = ""

	tests := []struct {
		name string
		raw  string
		now  time.Time
		code string
	}{
		{"expired", valid, t0.Add(time.Hour + time.Second), "TokenExpired"},
		{"expired long ago", valid, t0.Add(48 * time.Hour), "TokenExpired"},
		{"signed by another secret (unknown kid)", byOther, t0, "TokenSignatureInvalid"},
		{"signed by another key under the real kid", otherKeyClaimingKid, t0, "TokenSignatureInvalid"},
		{"unknown kid", ownToken(t, jwt.SigningMethodEdDSA, ownPriv, "no-such-kid", goodClaims()), t0, "TokenSignatureInvalid"},
		{"no kid", noKid, t0, "TokenSignatureInvalid"},
		{"tampered payload", tampered, t0, "TokenSignatureInvalid"},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:10], t0, "TokenSignatureInvalid"},
		{"alg none", noneTok, t0, "TokenSignatureInvalid"},
		{"alg HS256 keyed with the public key", hsWithPub, t0, "TokenSignatureInvalid"},
		{"alg HS256 keyed with the secret", hsWithSecret, t0, "TokenSignatureInvalid"},
		{"malformed: garbage", "not-a-jwt", t0, "TokenMalformed"},
		{"malformed: empty", "", t0, "TokenMalformed"},
		{"malformed: two parts", parts[0] + "." + parts[1], t0, "TokenMalformed"},
		{"malformed: bad base64 payload", parts[0] + ".@@@." + parts[2], t0, "TokenMalformed"},
		{"wrong issuer", ownToken(t, jwt.SigningMethodEdDSA, ownPriv, ownKid, wrongIss), t0, "TokenInvalid"},
		{"no exp", ownToken(t, jwt.SigningMethodEdDSA, ownPriv, ownKid, noExp), t0, "TokenInvalid"},
		{"no subject", ownToken(t, jwt.SigningMethodEdDSA, ownPriv, ownKid, noSub), t0, "TokenInvalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &token.Verifier{Keys: keys, Now: clock(tt.now)}
			c, err := v.Verify(context.Background(), tt.raw)
			if err == nil {
				t.Fatalf("Verify() = %+v; want %s", c, tt.code)
			}
			wantFault(t, err, tt.code)
		})
	}

	// The test's own key verifies a well-formed token: the refusals above
	// are about the token, not the harness.
	v := &token.Verifier{Keys: keys, Now: clock(t0)}
	if _, err := v.Verify(context.Background(), ownToken(t, jwt.SigningMethodEdDSA, ownPriv, ownKid, goodClaims())); err != nil {
		t.Fatalf("control token refused: %v", err)
	}
}

func TestVerifyCachesKeys(t *testing.T) {
	s := mustSigner(t, "cache-secret-0123456789")
	keys := newFakeKeys()
	keys.add(s)
	v := &token.Verifier{Keys: keys, Now: clock(t0)}
	for i := 0; i < 5; i++ {
		raw, _, err := s.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if n := keys.count(s.KeyID()); n != 1 {
		t.Errorf("KeySource called %d times for a known kid; want 1", n)
	}

	// An unknown kid is looked up every time: it may be published later.
	other := mustSigner(t, "late-secret-0123456789")
	raw, _, err := other.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(context.Background(), raw); err == nil {
			t.Fatal("unknown kid verified")
		}
	}
	if n := keys.count(other.KeyID()); n != 3 {
		t.Errorf("KeySource called %d times for an unknown kid; want 3", n)
	}
	keys.mu.Lock()
	keys.add(other)
	keys.mu.Unlock()
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("Verify after publishing = %v", err)
	}
}

func TestVerifyKeySourceError(t *testing.T) {
	s := mustSigner(t, "err-secret-0123456789")
	keys := newFakeKeys()
	boom := errors.New("dynamodb: throttled")
	keys.err = boom
	v := &token.Verifier{Keys: keys, Now: clock(t0)}
	raw, _, err := s.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), raw)
	if !errors.Is(err, boom) {
		t.Fatalf("Verify() = %v; want the KeySource error", err)
	}
	if _, ok := fault.As(err); ok {
		t.Fatalf("Verify() = fault %v; a KeySource failure must not be a refusal", err)
	}

	// A failed lookup is not cached: once the store recovers, it works.
	keys.mu.Lock()
	keys.err = nil
	keys.add(s)
	keys.mu.Unlock()
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Fatalf("Verify after recovery = %v", err)
	}
}

func TestVerifyConcurrent(t *testing.T) {
	s := mustSigner(t, "concurrent-secret-0123456789")
	keys := newFakeKeys()
	keys.add(s)
	v := &token.Verifier{Keys: keys, Now: clock(t0)}
	raw, _, err := s.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(context.Background(), raw); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
