package identity_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/token"
)

const resource = "11111111-2222-3333-4444-555555555555"

// memStore is an in-memory identity.Store, identity.KeyPublisher,
// token.KeySource and identity.IdentityReader.
type memStore struct {
	mu           sync.Mutex
	ids          map[string]identity.Identity
	keys         map[string]ed25519.PublicKey
	publishCalls int
	publishErr   error
	readErr      error
	createErr    error
	deletes      int
}

func newMemStore() *memStore {
	return &memStore{ids: map[string]identity.Identity{}, keys: map[string]ed25519.PublicKey{}}
}

func (m *memStore) CreateIdentity(_ context.Context, id identity.Identity) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.createErr != nil {
		return m.createErr
	}
	if _, dup := m.ids[id.ID]; dup {
		return errors.New("duplicate identity")
	}
	m.ids[id.ID] = id
	return nil
}

func (m *memStore) Identity(_ context.Context, id string) (*identity.Identity, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.readErr != nil {
		return nil, m.readErr
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
	v, ok := m.ids[id]
	if !ok || !v.DeletedOn.IsZero() {
		return identity.ErrNoIdentity
	}
	v.TokenGen++
	v.RevokedOn = at
	m.ids[id] = v
	return nil
}

func (m *memStore) DeleteIdentity(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.ids[id]
	if !ok {
		return identity.ErrNoIdentity
	}
	v.TokenGen++
	v.DeletedOn = at
	m.ids[id] = v
	m.deletes++
	return nil
}

func (m *memStore) PublishKey(_ context.Context, kid string, pub ed25519.PublicKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.publishCalls++
	if m.publishErr != nil {
		return m.publishErr
	}
	m.keys[kid] = pub
	return nil
}

func (m *memStore) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[kid], nil
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	svc   *identity.Service
	auth  *identity.Authenticator
	store *memStore
	clock *testClock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	signer, err := token.NewSigner([]byte("identity-test-signing-secret"))
	if err != nil {
		t.Fatal(err)
	}
	st := newMemStore()
	clk := &testClock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	svc := &identity.Service{Store: st, Keys: st, Signer: signer, ResourceID: resource, Now: clk.Now}
	auth := &identity.Authenticator{Verifier: &token.Verifier{Keys: st, Now: clk.Now}, Users: st}
	return &fixture{svc: svc, auth: auth, store: st, clock: clk}
}

func intp(n int) *int { return &n }

func wantFault(t *testing.T, err error, kind fault.Kind, code string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok {
		t.Fatalf("err = %v; want fault %s", err, code)
	}
	if fe.Kind != kind || fe.Code != code {
		t.Fatalf("err = %s (kind %v); want %s (kind %v)", fe.Code, fe.Kind, code, kind)
	}
}

var idPattern = regexp.MustCompile(`^8:acs:` + resource + `_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestCreateIdentity(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		scopes  []string
		expires *int
		wantTok bool
		wantTTL time.Duration
		code    string
	}{
		{"no scopes", nil, nil, false, 0, ""},
		{"empty scopes", []string{}, nil, false, 0, ""},
		{"chat, default lifetime", []string{"chat"}, nil, true, 24 * time.Hour, ""},
		{"chat+voip, 60 minutes", []string{"chat", "voip"}, intp(60), true, time.Hour, ""},
		{"1440 minutes", []string{"chat"}, intp(1440), true, 24 * time.Hour, ""},
		{"90 minutes", []string{"chat.join"}, intp(90), true, 90 * time.Minute, ""},
		{"59 minutes", []string{"chat"}, intp(59), false, 0, "InvalidExpiresInMinutes"},
		{"1441 minutes", []string{"chat"}, intp(1441), false, 0, "InvalidExpiresInMinutes"},
		{"0 minutes", []string{"chat"}, intp(0), false, 0, "InvalidExpiresInMinutes"},
		{"negative minutes", []string{"chat"}, intp(-60), false, 0, "InvalidExpiresInMinutes"},
		{"unknown scope", []string{"chat", "admin"}, nil, false, 0, "InvalidScopes"},
		{"scope with wrong case", []string{"Chat"}, nil, false, 0, "InvalidScopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			id, tok, err := f.svc.CreateIdentity(ctx, tt.scopes, tt.expires)
			if tt.code != "" {
				wantFault(t, err, fault.BadRequest, tt.code)
				if len(f.store.ids) != 0 {
					t.Errorf("a refused request stored %d identities", len(f.store.ids))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !idPattern.MatchString(id.ID) {
				t.Errorf("id = %q; want 8:acs:<resource>_<uuid>", id.ID)
			}
			if !acs.IsACSUserID(id.ID) {
				t.Errorf("id %q is not an ACS user id", id.ID)
			}
			if !id.CreatedOn.Equal(f.clock.Now()) {
				t.Errorf("CreatedOn = %v; want %v", id.CreatedOn, f.clock.Now())
			}
			if _, ok := f.store.ids[id.ID]; !ok {
				t.Errorf("identity %s was not stored", id.ID)
			}
			if (tok != nil) != tt.wantTok {
				t.Fatalf("token = %v; want token %v", tok, tt.wantTok)
			}
			if tok == nil {
				if f.store.publishCalls != 0 {
					t.Errorf("the key was published for a request without a token")
				}
				return
			}
			if want := f.clock.Now().Add(tt.wantTTL); !tok.ExpiresOn.Equal(want) {
				t.Errorf("ExpiresOn = %v; want %v", tok.ExpiresOn, want)
			}
			p, err := f.auth.Authenticate(ctx, "Bearer "+tok.Token)
			if err != nil {
				t.Fatalf("Authenticate(new token) = %v", err)
			}
			if p.UserID != id.ID || !slices.Equal(p.Scopes, tt.scopes) || !p.Expires.Equal(tok.ExpiresOn) {
				t.Errorf("principal = %+v; want user %s scopes %v expires %v", p, id.ID, tt.scopes, tok.ExpiresOn)
			}
		})
	}
}

func TestCreateIdentityUniqueIDs(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for i := 0; i < 50; i++ {
		id, _, err := f.svc.CreateIdentity(context.Background(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[id.ID] {
			t.Fatalf("duplicate id %s", id.ID)
		}
		seen[id.ID] = true
	}
}

func TestCreateIdentityStoreError(t *testing.T) {
	f := newFixture(t)
	boom := errors.New("store down")
	f.store.createErr = boom
	if _, _, err := f.svc.CreateIdentity(context.Background(), []string{"chat"}, nil); !errors.Is(err, boom) {
		t.Fatalf("CreateIdentity() = %v; want the store error", err)
	}
}

func TestIssueToken(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	live, _, err := f.svc.CreateIdentity(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deleted, _, err := f.svc.CreateIdentity(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteIdentity(ctx, deleted.ID); err != nil {
		t.Fatal(err)
	}
	unknown := "8:acs:" + resource + "_00000000-0000-0000-0000-00000000dead"

	tests := []struct {
		name    string
		user    string
		scopes  []string
		expires *int
		kind    fault.Kind
		code    string
	}{
		{"live user", live.ID, []string{"chat"}, nil, 0, ""},
		{"duplicate scopes", live.ID, []string{"chat", "chat", "voip"}, intp(120), 0, ""},
		{"unknown user", unknown, []string{"chat"}, nil, fault.NotFound, "IdentityNotFound"},
		{"deleted user", deleted.ID, []string{"chat"}, nil, fault.NotFound, "IdentityNotFound"},
		{"no scopes", live.ID, nil, nil, fault.BadRequest, "InvalidScopes"},
		{"bad scope", live.ID, []string{"voip", "chat.admin"}, nil, fault.BadRequest, "InvalidScopes"},
		{"59 minutes", live.ID, []string{"chat"}, intp(59), fault.BadRequest, "InvalidExpiresInMinutes"},
		{"1441 minutes", live.ID, []string{"chat"}, intp(1441), fault.BadRequest, "InvalidExpiresInMinutes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := f.svc.IssueToken(ctx, tt.user, tt.scopes, tt.expires)
			if tt.code != "" {
				wantFault(t, err, tt.kind, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ttl := 24 * time.Hour
			if tt.expires != nil {
				ttl = time.Duration(*tt.expires) * time.Minute
			}
			if want := f.clock.Now().Add(ttl); !tok.ExpiresOn.Equal(want) {
				t.Errorf("ExpiresOn = %v; want %v", tok.ExpiresOn, want)
			}
			p, err := f.auth.Authenticate(ctx, "Bearer "+tok.Token)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Compact(slices.Clone(tt.scopes))
			if p.UserID != tt.user || !slices.Equal(p.Scopes, want) {
				t.Errorf("principal = %+v; want %s with %v", p, tt.user, want)
			}
		})
	}
}

func TestKeyPublishedOnce(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, _, err := f.svc.CreateIdentity(ctx, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.IssueToken(ctx, id.ID, []string{"chat"}, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 5; i++ {
		if _, _, err := f.svc.CreateIdentity(ctx, []string{"voip"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if f.store.publishCalls != 1 {
		t.Errorf("PublishKey called %d times across 26 mints; want 1", f.store.publishCalls)
	}
	if pub := f.store.keys[f.svc.Signer.KeyID()]; !pub.Equal(f.svc.Signer.PublicKey()) {
		t.Errorf("published key does not match the signer's")
	}
}

func TestKeyPublishFailureIsRetried(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, _, err := f.svc.CreateIdentity(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("publish failed")
	f.store.publishErr = boom
	if _, err := f.svc.IssueToken(ctx, id.ID, []string{"chat"}, nil); !errors.Is(err, boom) {
		t.Fatalf("IssueToken() = %v; want the publish error (no token may leave before its key is published)", err)
	}
	f.store.publishErr = nil
	tok, err := f.svc.IssueToken(ctx, id.ID, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.store.publishCalls != 2 {
		t.Errorf("PublishKey called %d times; want 2 (a failure is retried)", f.store.publishCalls)
	}
	if _, err := f.auth.Authenticate(ctx, "Bearer "+tok.Token); err != nil {
		t.Errorf("Authenticate() = %v", err)
	}
}

func TestRevokeTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, first, err := f.svc.CreateIdentity(ctx, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.svc.IssueToken(ctx, id.ID, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if err := f.svc.RevokeTokens(ctx, id.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.store.ids[id.ID].RevokedOn; !got.Equal(f.clock.Now()) {
		t.Errorf("RevokedOn = %v; want %v", got, f.clock.Now())
	}
	for _, tok := range []string{first.Token, second.Token} {
		_, err := f.auth.Authenticate(ctx, "Bearer "+tok)
		wantFault(t, err, fault.Unauthorized, "TokenRevoked")
	}
	f.clock.Advance(time.Second)
	after, err := f.svc.IssueToken(ctx, id.ID, []string{"chat", "voip"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.auth.Authenticate(ctx, "Bearer "+after.Token)
	if err != nil {
		t.Fatalf("a token issued after the revocation was refused: %v", err)
	}
	if p.UserID != id.ID {
		t.Errorf("UserID = %s; want %s", p.UserID, id.ID)
	}

	// A second revocation voids the new token too.
	if err := f.svc.RevokeTokens(ctx, id.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.auth.Authenticate(ctx, "Bearer "+after.Token)
	wantFault(t, err, fault.Unauthorized, "TokenRevoked")
}

func TestRevokeTokensUnknownOrDeleted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	err := f.svc.RevokeTokens(ctx, "8:acs:"+resource+"_nobody")
	wantFault(t, err, fault.NotFound, "IdentityNotFound")

	id, _, err := f.svc.CreateIdentity(ctx, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteIdentity(ctx, id.ID); err != nil {
		t.Fatal(err)
	}
	err = f.svc.RevokeTokens(ctx, id.ID)
	wantFault(t, err, fault.NotFound, "IdentityNotFound")
}

func TestDeleteIdentity(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, tok, err := f.svc.CreateIdentity(ctx, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.auth.Authenticate(ctx, "Bearer "+tok.Token); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.DeleteIdentity(ctx, id.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.auth.Authenticate(ctx, "Bearer "+tok.Token)
	wantFault(t, err, fault.Unauthorized, "IdentityDeleted")

	if err := f.svc.DeleteIdentity(ctx, id.ID); err != nil {
		t.Fatalf("second DeleteIdentity() = %v; want success", err)
	}
	if f.store.deletes != 1 {
		t.Errorf("store deletes = %d; want 1 (the second delete writes nothing)", f.store.deletes)
	}
	err = f.svc.DeleteIdentity(ctx, "8:acs:"+resource+"_never")
	wantFault(t, err, fault.NotFound, "IdentityNotFound")
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, tok, err := f.svc.CreateIdentity(ctx, []string{"chat", "voip"}, intp(60))
	if err != nil {
		t.Fatal(err)
	}
	// A token for a user the store has never heard of (signed by our key).
	ghost, _, err := f.svc.Signer.Issue("8:acs:"+resource+"_ghost", resource, []string{"chat"}, 0, f.clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header string
		code   string
	}{
		{"bearer", "Bearer " + tok.Token, ""},
		{"lower-case bearer", "bearer " + tok.Token, ""},
		{"upper-case BEARER", "BEARER " + tok.Token, ""},
		{"extra spaces", "  Bearer   " + tok.Token + "  ", ""},
		{"missing", "", "MissingToken"},
		{"basic", "Basic x", "InvalidAuthorizationHeader"},
		{"scheme only", "Bearer", "InvalidAuthorizationHeader"},
		{"scheme and blank", "Bearer    ", "InvalidAuthorizationHeader"},
		{"token without scheme", tok.Token, "InvalidAuthorizationHeader"},
		{"malformed token", "Bearer abc", "TokenMalformed"},
		{"user never existed", "Bearer " + ghost, "IdentityDeleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := f.auth.Authenticate(ctx, tt.header)
			if tt.code != "" {
				wantFault(t, err, fault.Unauthorized, tt.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.UserID != id.ID || !slices.Equal(p.Scopes, []string{"chat", "voip"}) || !p.Expires.Equal(tok.ExpiresOn) {
				t.Errorf("principal = %+v", p)
			}
		})
	}
}

func TestAuthenticateExpired(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, tok, err := f.svc.CreateIdentity(ctx, []string{"chat"}, intp(60))
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(59 * time.Minute)
	if _, err := f.auth.Authenticate(ctx, "Bearer "+tok.Token); err != nil {
		t.Fatalf("Authenticate before expiry = %v", err)
	}
	f.clock.Advance(2 * time.Minute)
	_, err = f.auth.Authenticate(ctx, "Bearer "+tok.Token)
	wantFault(t, err, fault.Unauthorized, "TokenExpired")
}

func TestAuthenticateStoreError(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, tok, err := f.svc.CreateIdentity(ctx, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("read failed")
	f.store.readErr = boom
	_, err = f.auth.Authenticate(ctx, "Bearer "+tok.Token)
	if !errors.Is(err, boom) {
		t.Fatalf("Authenticate() = %v; want the store error", err)
	}
	if _, ok := fault.As(err); ok {
		t.Fatalf("a store failure became a refusal: %v", err)
	}
}

func TestNewAuthenticator(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	_, tok, err := f.svc.CreateIdentity(ctx, []string{"chat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := identity.NewAuthenticator(f.store, f.store)
	// NewAuthenticator uses the wall clock; the token was minted at the
	// fixture's fixed 2025 time with a 24 h lifetime, so it is expired now.
	_, err = a.Authenticate(ctx, "Bearer "+tok.Token)
	wantFault(t, err, fault.Unauthorized, "TokenExpired")
	_, err = a.Authenticate(ctx, "")
	wantFault(t, err, fault.Unauthorized, "MissingToken")
}
