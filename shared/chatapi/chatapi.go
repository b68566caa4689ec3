// Package chatapi is the ACS Chat REST API over the chat domain: one Handler
// per operation, translating the ACS wire shapes (shared/acs) to and from the
// domain types (shared/chat).
package chatapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strconv"
	"time"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/fault"
)

// API serves the chat operations.
type API struct {
	Chat *chat.Service
	Now  func() time.Time
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// begin does what every chat operation does first: authenticate the caller
// and check the api-version.
func (a *API) begin(r *apigw.Request) (chat.Caller, string, error) {
	p, err := r.Principal(a.now())
	if err != nil {
		return chat.Caller{}, "", err
	}
	v, err := apiVersion(r, acs.ChatAPIVersions)
	if err != nil {
		return chat.Caller{}, "", err
	}
	return chat.Caller{UserID: p.UserID, Scopes: p.Scopes}, v, nil
}

func apiVersion(r *apigw.Request, supported []string) (string, error) {
	v := r.Query.Get("api-version")
	if msg := acs.VersionProblem(v, supported); msg != "" {
		code := "UnsupportedApiVersion"
		if v == "" {
			code = "MissingApiVersion"
		}
		return "", fault.Invalid(code, "api-version", "%s", msg)
	}
	return v, nil
}

func intParam(r *apigw.Request, name string) (int, error) {
	s := r.Query.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fault.Invalid("InvalidQueryParameter", name, "%s must be an integer; it was %q.", name, s)
	}
	return n, nil
}

func timeParam(r *apigw.Request, name string) (time.Time, error) {
	s := r.Query.Get(name)
	if s == "" || s == "0" { // the service's own nextLinks use startTime=0 for "no bound"
		return time.Time{}, nil
	}
	t, err := acs.ParseTime(s)
	if err != nil {
		return time.Time{}, fault.Invalid("InvalidQueryParameter", name, "%s: %v.", name, err)
	}
	return t, nil
}

func bodyHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// threadPath is the escaped path of a thread, as the SDKs themselves encode it.
func threadPath(id string) string { return "/chat/threads/" + acs.EscapePathSegment(id) }

// nextLink builds an absolute nextLink that carries every filter and the
// api-version: the SDKs request it verbatim and add nothing.
func nextLink(r *apigw.Request, path string, params url.Values, version string) string {
	q := ""
	for _, k := range []string{"syncState", "skip", "maxPageSize", "startTime"} {
		if v := params.Get(k); v != "" {
			q += k + "=" + url.QueryEscape(v) + "&"
		}
	}
	return r.BaseURL() + path + "?" + q + "api-version=" + url.QueryEscape(version)
}

func participantsIn(in []acs.ChatParticipant) ([]chat.NewParticipant, []chat.InvalidParticipant) {
	var ok []chat.NewParticipant
	var bad []chat.InvalidParticipant
	for _, p := range in {
		id, valid, reason := acs.ResolveUser(p.CommunicationIdentifier)
		if !valid {
			code := "400"
			if p.CommunicationIdentifier.PhoneNumber != nil || p.CommunicationIdentifier.MicrosoftTeamsUser != nil || p.CommunicationIdentifier.MicrosoftTeamsApp != nil {
				code = "403"
			}
			bad = append(bad, chat.InvalidParticipant{Target: id, Code: code, Message: reason})
			continue
		}
		np := chat.NewParticipant{UserID: id, DisplayName: p.DisplayName, Metadata: p.Metadata}
		if p.ShareHistoryTime != nil {
			np.ShareHistoryTime = p.ShareHistoryTime.Time
		}
		ok = append(ok, np)
	}
	return ok, bad
}

func invalidOut(in []chat.InvalidParticipant) []acs.CommunicationError {
	out := make([]acs.CommunicationError, 0, len(in))
	for _, p := range in {
		out = append(out, acs.CommunicationError{Code: p.Code, Message: p.Message, Target: p.Target})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func retentionIn(p *acs.RetentionPolicy) (chat.Retention, error) {
	if p == nil {
		return chat.Retention{}, nil
	}
	switch p.Kind {
	case chat.RetentionNone:
		return chat.Retention{Kind: chat.RetentionNone}, nil
	case chat.RetentionThreadCreationDate:
		if p.DeleteThreadAfterDays == nil {
			return chat.Retention{}, fault.Invalid("InvalidRetentionPolicy", "retentionPolicy.deleteThreadAfterDays",
				"deleteThreadAfterDays is required when retentionPolicy.kind is threadCreationDate.")
		}
		return chat.Retention{Kind: p.Kind, Days: *p.DeleteThreadAfterDays}, nil
	default:
		return chat.Retention{}, fault.Invalid("InvalidRetentionPolicy", "retentionPolicy.kind",
			"retentionPolicy.kind must be %q or %q; it was %q.", chat.RetentionThreadCreationDate, chat.RetentionNone, p.Kind)
	}
}

func retentionOut(r chat.Retention) *acs.RetentionPolicy {
	switch r.Kind {
	case chat.RetentionNone:
		return &acs.RetentionPolicy{Kind: r.Kind}
	case chat.RetentionThreadCreationDate:
		days := r.Days
		return &acs.RetentionPolicy{Kind: r.Kind, DeleteThreadAfterDays: &days}
	default:
		return nil
	}
}

func threadOut(t chat.Thread, now time.Time) acs.ChatThreadProperties {
	return acs.ChatThreadProperties{
		ID: t.ID, Topic: t.Topic, CreatedOn: acs.Time{Time: t.CreatedOn},
		CreatedBy: acs.UserRef(t.CreatedBy), DeletedOn: acs.TimeRef(t.DeletedAt(now)),
		Metadata: t.Metadata, RetentionPolicy: retentionOut(t.Retention),
	}
}

// Storage is what the chat API keeps.
type Storage interface {
	chat.ThreadStore
	chat.Directory
	chat.RequestLog
	chat.MessageStore
	chat.ParticipantStore
	chat.ReceiptStore
}

// New builds the chat API on a store, with the rate limits to apply.
func New(st Storage, rates chat.RateLimits) *API {
	return &API{Chat: &chat.Service{Threads: st, Users: st, Requests: st, Messages: st, Participants: st, Receipts: st, Rates: rates}}
}
