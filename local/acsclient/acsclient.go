// Package acsclient is a small Go client for the ACS REST APIs Threadline
// serves: an Identity client that signs requests with the connection
// string's access key exactly as the ACS SDKs do, and a Chat client that
// sends a bearer token. Tests use it for raw requests (bad input included);
// tools use it to talk to a stack.
package acsclient

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/threadline/threadline/shared/hmacauth"
)

// Response is a raw HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// ErrorCode is the ACS error code of an error response ("" when none).
func (r Response) ErrorCode() (code, inner string) {
	var e struct {
		Error struct {
			Code       string `json:"code"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	if e.Error.InnerError != nil {
		inner = e.Error.InnerError.Code
	}
	return e.Error.Code, inner
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// HTTPClient trusts the CA in caFile (the local stack's), or the system
// roots when caFile is empty.
func HTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acsclient: no certificate in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// Identity calls the Identity API with HMAC signatures.
type Identity struct {
	Endpoint string // https://host:port (no trailing slash)
	Key      []byte
	HTTP     *http.Client
	Now      func() time.Time // the x-ms-date to sign with; time.Now when nil
}

// ParseConnectionString splits "endpoint=…;accesskey=…".
func ParseConnectionString(cs string) (endpoint string, key []byte, err error) {
	var ak string
	for _, part := range strings.Split(cs, ";") {
		k, v, _ := strings.Cut(part, "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "endpoint":
			endpoint = strings.TrimSuffix(strings.TrimSpace(v), "/")
		case "accesskey":
			ak = strings.TrimSpace(v)
		}
	}
	if endpoint == "" || ak == "" {
		return "", nil, errors.New("acsclient: a connection string needs endpoint= and accesskey=")
	}
	key, err = base64.StdEncoding.DecodeString(ak)
	return endpoint, key, err
}

// Signed is one request to sign; Mutate may tamper with it after signing.
type Signed struct {
	Method string
	Path   string // path and query, already encoded, e.g. /identities?api-version=2023-10-01
	Body   []byte
	Mutate func(*http.Request)
}

// Do sends a signed request.
func (c *Identity) Do(ctx context.Context, s Signed) (Response, error) {
	u := c.Endpoint + s.Path
	req, err := http.NewRequestWithContext(ctx, s.Method, u, bytes.NewReader(s.Body))
	if err != nil {
		return Response{}, err
	}
	c.Sign(req, s.Body)
	if s.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Mutate != nil {
		s.Mutate(req)
	}
	return do(c.HTTP, req)
}

// Sign adds x-ms-date, x-ms-content-sha256 and Authorization the way the
// SDK's access-key policy does (reference/acs-wire.md §2).
func (c *Identity) Sign(req *http.Request, body []byte) {
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	date := now().UTC().Format(http.TimeFormat)
	sum := sha256.Sum256(body)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	pq := req.URL.EscapedPath()
	if q := hmacauth.NormalizeQuery(req.URL.RawQuery); q != "" {
		pq += "?" + q
	}
	toSign := req.Method + "\n" + pq + "\n" + date + ";" + req.URL.Host + ";" + hash
	m := hmac.New(sha256.New, c.Key)
	m.Write([]byte(toSign))
	req.Header.Set("x-ms-date", date)
	req.Header.Set("x-ms-content-sha256", hash)
	req.Header.Set("Authorization", "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="+base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

// User is an identity with a token.
type User struct {
	ID    string
	Token string
}

// CreateUser creates an identity and a token with the given scopes.
func (c *Identity) CreateUser(ctx context.Context, scopes ...string) (User, error) {
	body, _ := json.Marshal(map[string]any{"createTokenWithScopes": scopes})
	resp, err := c.Do(ctx, Signed{Method: http.MethodPost, Path: "/identities?api-version=2023-10-01", Body: body})
	if err != nil {
		return User{}, err
	}
	if resp.Status != http.StatusCreated {
		return User{}, fmt.Errorf("acsclient: create identity: %s", resp)
	}
	var out struct {
		Identity    struct{ ID string }
		AccessToken struct{ Token string }
	}
	if err := resp.JSON(&out); err != nil {
		return User{}, err
	}
	return User{ID: out.Identity.ID, Token: out.AccessToken.Token}, nil
}

// IssueToken mints another token for a user.
func (c *Identity) IssueToken(ctx context.Context, id string, scopes ...string) (string, error) {
	body, _ := json.Marshal(map[string]any{"scopes": scopes})
	resp, err := c.Do(ctx, Signed{Method: http.MethodPost, Path: IdentityPath(id, ":issueAccessToken"), Body: body})
	if err != nil {
		return "", err
	}
	if resp.Status != http.StatusOK {
		return "", fmt.Errorf("acsclient: issue token: %s", resp)
	}
	var out struct{ Token string }
	return out.Token, resp.JSON(&out)
}

// IdentityPath is /identities/{id}[/action]?api-version=…, with the id
// encoded as the SDKs encode it.
func IdentityPath(id, action string) string {
	p := "/identities/" + url.PathEscape(id)
	p = strings.ReplaceAll(p, ":", "%3A")
	if action != "" {
		p += "/" + action
	}
	return p + "?api-version=2023-10-01"
}

// Chat calls the Chat API with a bearer token.
type Chat struct {
	Endpoint string
	Token    string
	HTTP     *http.Client
}

// Request is one chat request; Body is marshalled as JSON unless it is []byte.
type Request struct {
	Method  string
	Path    string // path and query, encoded
	Body    any
	Headers map[string]string
}

// Do sends a chat request.
func (c *Chat) Do(ctx context.Context, r Request) (Response, error) {
	var body io.Reader
	var raw []byte
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return Response{}, err
		}
	}
	if raw != nil {
		body = bytes.NewReader(raw)
	}
	u := r.Path
	if !strings.HasPrefix(u, "https://") {
		u = c.Endpoint + r.Path
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, body)
	if err != nil {
		return Response{}, err
	}
	if raw != nil {
		ct := "application/json"
		if r.Method == http.MethodPatch {
			ct = "application/merge-patch+json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	return do(c.HTTP, req)
}

// ThreadPath is /chat/threads/{id}[/rest]?api-version=2025-03-15 with the id
// encoded as the SDKs encode it.
func ThreadPath(threadID, rest string) string {
	p := "/chat/threads/" + strings.NewReplacer(":", "%3A", "@", "%40").Replace(url.PathEscape(threadID))
	if rest != "" {
		p += "/" + rest
	}
	return p + "?api-version=2025-03-15"
}

// Participant is the request form of an ACS user participant.
func Participant(id, displayName string) map[string]any {
	return map[string]any{
		"communicationIdentifier": map[string]any{"rawId": id, "communicationUser": map[string]any{"id": id}},
		"displayName":             displayName,
	}
}

func do(hc *http.Client, req *http.Request) (Response, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, err
}
