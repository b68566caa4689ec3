package token_test

// FuzzVerify fuzzes token parsing and verification. A token is built from a
// fuzzed JOSE header and claims set, and either carries a fuzzed signature,
// is a fuzzed string as a whole, or is really signed with a published key.
//
// Properties, for every input:
//   - no panic;
//   - a refusal is a 401 fault with a code and a message: never an opaque
//     error, which the authorizers turn into a 500 (the key source fails
//     the way DynamoDB does for a KEY#<kid> key over 2048 bytes);
//   - an accepted token is, checked independently: three segments, an
//     EdDSA header naming a published key, a valid Ed25519 signature over
//     the first two segments, issuer "threadline", a subject, and an expiry
//     after now. Nothing else is ever accepted.
//
// Short run: go test ./shared/token -run '^$' -fuzz '^FuzzVerify$' -fuzztime 10s

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/shared/fault"
	"github.com/threadline/threadline/shared/token"
)

var (
	fzSeed   = sha256.Sum256([]byte("threadline token fuzz key"))
	fzPriv   = ed25519.NewKeyFromSeed(fzSeed[:])
	fzPub    = fzPriv.Public().(ed25519.PublicKey)
	fzKid    = token.KeyID(fzPub)
	fzSigner = func() *token.Signer {
		s, err := token.NewSigner([]byte("the-real-secret-0123456789"))
		if err != nil {
			panic(err)
		}
		return s
	}()
)

// fzKeys holds the published keys; like the DynamoDB store, it cannot look
// up a KEY#<kid> key longer than 2048 bytes.
type fzKeys map[string]ed25519.PublicKey

func (k fzKeys) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if len("KEY#"+kid) > 2048 {
		return nil, errors.New("dynamodb GetItem: api error ValidationException: Hash primary key values must be under 2048 bytes")
	}
	return k[kid], nil
}

func fzB64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// Token shapes.
const (
	fzSegments = iota // b64(header).b64(claims).signature, the signature as fuzzed
	fzWhole           // the header argument is the whole token
	fzSigned          // b64(header).b64(claims), signed with the published fuzz key
	fzShapes
)

func fzToken(header, claims, sig string, shape uint8) string {
	switch shape % fzShapes {
	case fzWhole:
		return header
	case fzSigned:
		in := fzB64(header) + "." + fzB64(claims)
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(fzPriv, []byte(in)))
	default:
		return fzB64(header) + "." + fzB64(claims) + "." + sig
	}
}

// fzGenuine is the independent check of an accepted token.
func fzGenuine(raw string, keys fzKeys) error {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return fmt.Errorf("%d segments", len(parts))
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "EdDSA" {
		return fmt.Errorf("header %s (%v)", hb, err)
	}
	pub := keys[h.Kid]
	if pub == nil || !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return fmt.Errorf("the signature does not verify under kid %q", h.Kid)
	}
	var c map[string]any
	if err := json.Unmarshal(cb, &c); err != nil {
		return err
	}
	// jwt/v5 reads a NumericDate from a JSON number or a numeric string.
	exp, ok := c["exp"].(float64)
	if s, isString := c["exp"].(string); isString {
		var err error
		exp, err = strconv.ParseFloat(s, 64)
		ok = err == nil
	}
	if sub, _ := c["sub"].(string); c["iss"] != token.Issuer || sub == "" || !ok || exp <= float64(t0.Unix()) {
		return fmt.Errorf("claims %s", cb)
	}
	return nil
}

func FuzzVerify(f *testing.F) {
	hdr := func(kid string) string { return `{"alg":"EdDSA","kid":` + strconv.Quote(kid) + `,"typ":"JWT"}` }
	exp := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	good := `{"iss":"threadline","sub":"` + user + `","exp":` + exp + `,"iat":` + strconv.FormatInt(t0.Unix(), 10) + `,"acsScope":"chat","tgen":0}`
	issued, _, err := fzSigner.Issue(user, "res", []string{"chat"}, 0, t0, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	realParts := strings.Split(issued, ".")
	headers := []string{hdr(fzKid), hdr(fzSigner.KeyID()), hdr(""), hdr("no-such-kid"), hdr(strings.Repeat("k", 2100)),
		`{"alg":"none","kid":"` + fzKid + `"}`, `{"alg":"HS256","kid":"` + fzKid + `"}`, `{"alg":"RS256","kid":"` + fzKid + `"}`,
		`{"alg":"EdDSA","kid":5}`, `{"alg":"EdDSA","kid":null}`, `{"alg":"EdDSA"}`, `{"kid":"` + fzKid + `"}`, `{}`, `[]`, `null`, ``, `{`,
		`{"alg":"EdDSA","kid":"` + fzKid + `","crit":["exp"]}`, `{"alg":"EdDSA","kid":"` + fzKid + `","b64":false}`}
	claims := []string{good, `{}`, `null`, `[]`, `{`,
		strings.Replace(good, `"exp":`+exp, `"exp":`+strconv.FormatInt(t0.Add(-time.Second).Unix(), 10), 1),
		strings.Replace(good, `"exp":`+exp+`,`, ``, 1), strings.Replace(good, `"exp":`+exp, `"exp":"`+exp+`"`, 1),
		strings.Replace(good, `"exp":`+exp, `"exp":1e309`, 1), strings.Replace(good, `"exp":`+exp, `"exp":-1e308`, 1),
		strings.Replace(good, `"exp":`+exp, `"exp":`+exp+`.999`, 1),
		strings.Replace(good, `"iss":"threadline"`, `"iss":"someone-else"`, 1), strings.Replace(good, `"iss":"threadline",`, ``, 1),
		strings.Replace(good, `"sub":"`+user+`"`, `"sub":""`, 1), strings.Replace(good, `"sub":"`+user+`"`, `"sub":5`, 1),
		strings.Replace(good, `"iat"`, `"nbf"`, 1), strings.Replace(good, `"acsScope":"chat"`, `"acsScope":["chat"]`, 1),
		strings.Replace(good, `"tgen":0`, `"tgen":"0"`, 1), strings.Replace(good, `"tgen":0`, `"tgen":1e30`, 1),
		strings.Replace(good, `"iat":`, `"aud":["x"],"iat":`, 1), `{"iss":"threadline","sub":"x","exp":` + exp + `,"nbf":` + exp + `}`}
	for _, h := range headers {
		for shape := uint8(0); shape < fzShapes; shape++ {
			f.Add(h, good, realParts[2], shape)
		}
	}
	for _, c := range claims {
		f.Add(hdr(fzKid), c, "", uint8(fzSigned))
		f.Add(hdr(fzSigner.KeyID()), c, realParts[2], uint8(fzSegments))
	}
	for _, raw := range []string{issued, issued + ".", issued[:len(issued)-1], realParts[0] + "." + realParts[1] + ".", "..", "a.b.c", " " + issued, "Bearer " + issued, strings.Repeat(".", 1000)} {
		f.Add(raw, "", "", uint8(fzWhole))
	}
	keys := fzKeys{fzKid: fzPub, fzSigner.KeyID(): fzSigner.PublicKey()}
	f.Fuzz(func(t *testing.T, header, claims, sig string, shape uint8) {
		raw := fzToken(header, claims, sig, shape)
		v := &token.Verifier{Keys: keys, Now: clock(t0)}
		c, err := v.Verify(context.Background(), raw)
		if err != nil {
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Unauthorized || fe.Code == "" || fe.Message == "" {
				t.Fatalf("Verify refused with %v; want a 401 fault", err)
			}
			return
		}
		if err := fzGenuine(raw, keys); err != nil {
			t.Fatalf("Verify accepted a token that is not genuine (%v): %q", err, raw)
		}
		if c.Subject == "" || c.Issuer != token.Issuer || c.ExpiresAt == nil || !c.ExpiresAt.After(t0) {
			t.Fatalf("accepted claims %+v", c)
		}
	})
}
