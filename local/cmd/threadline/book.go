package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// book is cli-users.json: the CLI's names for ACS users, and the thread it
// made for each pair of them. Identities belong to one stack's resource, so
// a book written for another one (the stack's data was reset) starts over.
type book struct {
	mu         sync.Mutex // listen reads names while its token source may add users
	path       string
	ResourceID string            `json:"resourceId"`
	Users      map[string]string `json:"users"`   // name -> ACS user id
	Threads    map[string]string `json:"threads"` // pairKey -> thread id
}

func loadBook(path, resourceID string) (*book, error) {
	b := &book{path: path}
	raw, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(raw, b); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if b.ResourceID != resourceID {
		// Ids from another resource would all be unknown to this stack.
		b.Users, b.Threads = nil, nil
	}
	b.ResourceID = resourceID
	if b.Users == nil {
		b.Users = map[string]string{}
	}
	if b.Threads == nil {
		b.Threads = map[string]string{}
	}
	return b, nil
}

// save merges our entries into the file as it is now, so two terminals
// adding different users do not undo each other, and replaces it atomically.
func (b *book) save() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur, err := loadBook(b.path, b.ResourceID)
	if err != nil {
		return err
	}
	for k, v := range b.Users {
		cur.Users[k] = v
	}
	for k, v := range b.Threads {
		cur.Threads[k] = v
	}
	b.Users, b.Threads = cur.Users, cur.Threads
	raw, _ := json.MarshalIndent(b, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(b.path), ".cli-users-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), b.path)
}

// nameOf is the name of a user id, re-reading the file once when the id is
// unknown (another terminal may have just added it); "" if still unknown.
func (b *book) nameOf(id string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := b.lookup(id); n != "" {
		return n
	}
	if fresh, err := loadBook(b.path, b.ResourceID); err == nil {
		b.Users, b.Threads = fresh.Users, fresh.Threads
	}
	return b.lookup(id)
}

func (b *book) lookup(id string) string {
	for n, uid := range b.Users {
		if uid == id {
			return n
		}
	}
	return ""
}

// user is the id of a name ("" if unknown).
func (b *book) user(name string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Users[name]
}

// setUser records a name's id; "" forgets it.
func (b *book) setUser(name, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id == "" {
		delete(b.Users, name)
		return
	}
	b.Users[name] = id
}

// thread is the pair's thread, re-reading the file once when unknown: the
// other user's terminal may have just made it.
func (b *book) thread(key string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id := b.Threads[key]; id != "" {
		return id
	}
	if fresh, err := loadBook(b.path, b.ResourceID); err == nil {
		for k, v := range fresh.Threads {
			if _, ok := b.Threads[k]; !ok {
				b.Threads[k] = v
			}
		}
	}
	return b.Threads[key]
}

func (b *book) setThread(key, id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Threads[key] = id
}

// names lists the known names, sorted.
func (b *book) names() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.Users))
	for n := range b.Users {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// pairKey names the thread of two users whichever of them sends.
func pairKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "+" + b
}

func checkName(name string) error {
	if name == "" {
		return errors.New("a user name is required (-as NAME)")
	}
	if strings.ContainsAny(name, "+ \t\n") {
		return fmt.Errorf("user name %q: no spaces or '+'", name)
	}
	return nil
}
