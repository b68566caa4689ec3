package acs

// Token scopes, as ACS names them (reference/acs-chat.md §7.2).
const (
	ScopeChat            = "chat"
	ScopeVoIP            = "voip"
	ScopeChatJoin        = "chat.join"
	ScopeChatJoinLimited = "chat.join.limited"
	ScopeVoIPJoin        = "voip.join"
)

// Scopes are all the scopes a token may carry, in ACS's order.
var Scopes = []string{ScopeChat, ScopeVoIP, ScopeChatJoin, ScopeChatJoinLimited, ScopeVoIPJoin}
