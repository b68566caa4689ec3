package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/threadline/threadline/local"
	"github.com/threadline/threadline/local/acsclient"
)

// session is what every command needs: the stack, clients for it, the book.
type session struct {
	info   local.Info
	hc     *http.Client
	ids    *acsclient.Identity
	book   *book
	stderr io.Writer
}

// stackPath is -stack, or .local/stack.json at the repository root.
func stackPath(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	root, err := local.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("%w (or pass -stack)", err)
	}
	return filepath.Join(root, ".local", "stack.json"), nil
}

func openSession(stackFlag string, stderr io.Writer) (*session, error) {
	path, err := stackPath(stackFlag)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no %s: start the stack with `make run` first", path)
	}
	if err != nil {
		return nil, err
	}
	s := &session{stderr: stderr}
	if err := json.Unmarshal(raw, &s.info); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.hc, err = acsclient.HTTPClient(s.info.CACert); err != nil {
		return nil, err
	}
	endpoint, key, err := acsclient.ParseConnectionString(s.info.ConnectionString)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.ids = &acsclient.Identity{Endpoint: endpoint, Key: key, HTTP: s.hc}
	if s.book, err = loadBook(filepath.Join(filepath.Dir(path), "cli-users.json"), s.info.ResourceID); err != nil {
		return nil, err
	}
	return s, nil
}

// userID is the ACS id of a name, creating the identity on first use.
func (s *session) userID(ctx context.Context, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	if id := s.book.user(name); id != "" {
		return id, nil
	}
	u, err := s.ids.CreateUser(ctx, "chat")
	if err != nil {
		return "", fmt.Errorf("create %s: %w (is the stack running?)", name, err)
	}
	s.book.setUser(name, u.ID)
	if err := s.book.save(); err != nil {
		return "", err
	}
	fmt.Fprintf(s.stderr, "created user %s = %s\n", name, u.ID)
	return u.ID, nil
}

// token issues a fresh chat token for a name; a user the stack no longer
// knows (its identity was deleted) is created again.
func (s *session) token(ctx context.Context, name string) (string, error) {
	id, err := s.userID(ctx, name)
	if err != nil {
		return "", err
	}
	tok, status, err := s.issue(ctx, id)
	if status == http.StatusNotFound {
		s.book.setUser(name, "")
		if id, err = s.userID(ctx, name); err != nil {
			return "", err
		}
		tok, _, err = s.issue(ctx, id)
	}
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", name, err)
	}
	return tok, nil
}

// issue is acsclient.Identity.IssueToken with the status kept, to tell a
// deleted identity from a stack that is down.
func (s *session) issue(ctx context.Context, id string) (string, int, error) {
	body, _ := json.Marshal(map[string]any{"scopes": []string{"chat"}})
	resp, err := s.ids.Do(ctx, acsclient.Signed{Method: http.MethodPost, Path: acsclient.IdentityPath(id, ":issueAccessToken"), Body: body})
	if err != nil {
		return "", 0, err
	}
	if resp.Status != http.StatusOK {
		return "", resp.Status, fmt.Errorf("issue token: %s", resp)
	}
	var out struct{ Token string }
	return out.Token, resp.Status, resp.JSON(&out)
}

// tokenSource hands the real-time client a token per (re)connect, issuing
// a new one every refreshEvery rather than on every connect.
func (s *session) tokenSource(name string, refreshEvery time.Duration) func(context.Context) (string, error) {
	var (
		mu     sync.Mutex
		tok    string
		issued time.Time
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if tok != "" && time.Since(issued) < refreshEvery {
			return tok, nil
		}
		t, err := s.token(ctx, name)
		if err != nil {
			return "", err
		}
		tok, issued = t, time.Now()
		return tok, nil
	}
}

func (s *session) chat(token string) *acsclient.Chat {
	return &acsclient.Chat{Endpoint: s.info.HTTPAPI, Token: token, HTTP: s.hc}
}
