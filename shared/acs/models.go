package acs

import "encoding/json"

// ChatParticipant is the wire form of a participant in requests and responses.
type ChatParticipant struct {
	CommunicationIdentifier Identifier        `json:"communicationIdentifier"`
	DisplayName             string            `json:"displayName,omitempty"`
	ShareHistoryTime        *Time             `json:"shareHistoryTime,omitempty"`
	Metadata                map[string]string `json:"metadata,omitempty"`
}

// RetentionPolicy is ChatRetentionPolicy: {"kind":"threadCreationDate","deleteThreadAfterDays":N} or {"kind":"none"}.
type RetentionPolicy struct {
	Kind                  string `json:"kind"`
	DeleteThreadAfterDays *int   `json:"deleteThreadAfterDays,omitempty"`
}

// CreateChatThreadRequest is the body of POST /chat/threads.
type CreateChatThreadRequest struct {
	Topic           *string           `json:"topic"`
	Participants    []ChatParticipant `json:"participants"`
	Metadata        map[string]string `json:"metadata"`
	RetentionPolicy *RetentionPolicy  `json:"retentionPolicy"`
}

// ChatThreadProperties is the body of GET /chat/threads/{id}.
type ChatThreadProperties struct {
	ID              string            `json:"id"`
	Topic           string            `json:"topic"`
	CreatedOn       Time              `json:"createdOn"`
	CreatedBy       *Identifier       `json:"createdByCommunicationIdentifier,omitempty"`
	DeletedOn       *Time             `json:"deletedOn,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	RetentionPolicy *RetentionPolicy  `json:"retentionPolicy,omitempty"`
}

// CommunicationError is one error, also used for partial failures.
type CommunicationError struct {
	Code       string               `json:"code"`
	Message    string               `json:"message"`
	Target     string               `json:"target,omitempty"`
	Details    []CommunicationError `json:"details,omitempty"`
	InnerError *CommunicationError  `json:"innererror,omitempty"`
}

// ErrorResponse is CommunicationErrorResponse, the body of every 4xx and 5xx.
type ErrorResponse struct {
	Error CommunicationError `json:"error"`
}

// CreateChatThreadResult is the 201 body of POST /chat/threads.
type CreateChatThreadResult struct {
	ChatThread          ChatThreadProperties `json:"chatThread"`
	InvalidParticipants []CommunicationError `json:"invalidParticipants,omitempty"`
}

// ChatThreadItem is one entry of GET /chat/threads.
type ChatThreadItem struct {
	ID                    string `json:"id"`
	Topic                 string `json:"topic"`
	DeletedOn             *Time  `json:"deletedOn,omitempty"`
	LastMessageReceivedOn *Time  `json:"lastMessageReceivedOn,omitempty"`
}

// Page is the x-ms-pageable collection shape: {"value":[…],"nextLink":"…"}.
// Value is always an array (never null): on page 2 and later the SDKs stop
// paging when value is missing, even if nextLink is set.
type Page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// MarshalJSON keeps an empty page as "value": [].
func (p Page[T]) MarshalJSON() ([]byte, error) {
	type page Page[T]
	if p.Value == nil {
		p.Value = []T{}
	}
	return json.Marshal(page(p))
}

// UpdateChatThreadRequest is the merge-patch body of PATCH /chat/threads/{id}.
// Raw messages keep the difference between an absent member and null.
type UpdateChatThreadRequest struct {
	Topic           json.RawMessage `json:"topic"`
	Metadata        json.RawMessage `json:"metadata"`
	RetentionPolicy json.RawMessage `json:"retentionPolicy"`
}

// Identity API shapes (api-version 2023-10-01).

// CreateIdentityRequest is the optional body of POST /identities.
type CreateIdentityRequest struct {
	CreateTokenWithScopes []string `json:"createTokenWithScopes"`
	ExpiresInMinutes      *int     `json:"expiresInMinutes"`
}

// IssueTokenRequest is the body of POST /identities/{id}/:issueAccessToken.
type IssueTokenRequest struct {
	Scopes           []string `json:"scopes"`
	ExpiresInMinutes *int     `json:"expiresInMinutes"`
}

// AccessToken is CommunicationIdentityAccessToken.
type AccessToken struct {
	Token     string `json:"token"`
	ExpiresOn Time   `json:"expiresOn"`
}

// IdentityRef is CommunicationIdentity.
type IdentityRef struct {
	ID string `json:"id"`
}

// CreateIdentityResult is the 201 body of POST /identities.
type CreateIdentityResult struct {
	Identity    IdentityRef  `json:"identity"`
	AccessToken *AccessToken `json:"accessToken,omitempty"`
}

// SendChatMessageRequest is the body of POST …/messages.
type SendChatMessageRequest struct {
	Content           *string           `json:"content"`
	SenderDisplayName string            `json:"senderDisplayName"`
	Type              string            `json:"type"`
	Metadata          map[string]string `json:"metadata"`
}

// SendChatMessageResult is the 201 body of POST …/messages.
type SendChatMessageResult struct {
	ID string `json:"id"`
}

// UpdateChatMessageRequest is the merge-patch body of PATCH …/messages/{id}.
type UpdateChatMessageRequest struct {
	Content  json.RawMessage `json:"content"`
	Metadata json.RawMessage `json:"metadata"`
}

// ChatMessageContent is a message's content; which fields are set depends on
// the message type.
type ChatMessageContent struct {
	Message      string            `json:"message,omitempty"`
	Topic        string            `json:"topic,omitempty"`
	Participants []ChatParticipant `json:"participants,omitempty"`
	Initiator    *Identifier       `json:"initiatorCommunicationIdentifier,omitempty"`
}

// ChatMessage is a message in its latest state.
type ChatMessage struct {
	ID                string              `json:"id"`
	Type              string              `json:"type"`
	SequenceID        string              `json:"sequenceId"`
	Version           string              `json:"version"`
	Content           *ChatMessageContent `json:"content,omitempty"`
	SenderDisplayName string              `json:"senderDisplayName,omitempty"`
	CreatedOn         Time                `json:"createdOn"`
	Sender            *Identifier         `json:"senderCommunicationIdentifier,omitempty"`
	DeletedOn         *Time               `json:"deletedOn,omitempty"`
	EditedOn          *Time               `json:"editedOn,omitempty"`
	Metadata          map[string]string   `json:"metadata,omitempty"`
}

// AddChatParticipantsRequest is the body of POST …/participants/:add.
type AddChatParticipantsRequest struct {
	Participants []ChatParticipant `json:"participants"`
}

// AddChatParticipantsResult is the 201 body of POST …/participants/:add.
type AddChatParticipantsResult struct {
	InvalidParticipants []CommunicationError `json:"invalidParticipants,omitempty"`
}

// SendReadReceiptRequest is the body of POST …/readReceipts.
type SendReadReceiptRequest struct {
	ChatMessageID *string `json:"chatMessageId"`
}

// ChatMessageReadReceipt is one entry of GET …/readReceipts.
type ChatMessageReadReceipt struct {
	Sender        Identifier `json:"senderCommunicationIdentifier"`
	ChatMessageID string     `json:"chatMessageId"`
	ReadOn        Time       `json:"readOn"`
}

// SendTypingNotificationRequest is the optional body of POST …/typing.
type SendTypingNotificationRequest struct {
	SenderDisplayName string `json:"senderDisplayName"`
}
