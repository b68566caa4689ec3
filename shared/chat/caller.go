package chat

import (
	"slices"

	"github.com/threadline/threadline/shared/acs"
	"github.com/threadline/threadline/shared/fault"
)

// Caller is the authenticated user behind a request.
type Caller struct {
	UserID string
	Scopes []string
}

// capability is one row of ACS's scope table (reference/acs-chat.md §3.4).
type capability struct {
	name   string
	scopes []string
}

var (
	capManageThread       = capability{"create, update or delete threads", []string{acs.ScopeChat}}
	capManageParticipants = capability{"add or remove participants", []string{acs.ScopeChat, acs.ScopeChatJoin}}
	capChat               = capability{"use chat", []string{acs.ScopeChat, acs.ScopeChatJoin, acs.ScopeChatJoinLimited}}
)

// RequireChat refuses a caller whose token cannot use chat at all (voip and
// voip.join only): real-time events (WebSocket, long poll) are chat too.
func (c Caller) RequireChat() error { return c.require(capChat) }

func (c Caller) require(cp capability) error {
	for _, s := range cp.scopes {
		if slices.Contains(c.Scopes, s) {
			return nil
		}
	}
	return fault.Denied("InsufficientScope", "The access token's scopes (%v) do not allow it to %s; it needs one of %v.", c.Scopes, cp.name, cp.scopes)
}
