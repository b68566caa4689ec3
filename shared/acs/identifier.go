// Package acs holds the Azure Communication Services wire vocabulary that
// Threadline speaks: identifier models, timestamps, api-versions and the JSON
// shapes of requests and responses. It knows nothing of AWS or of storage.
package acs

import "strings"

// Identifier kinds, spelled exactly as the ACS SDKs expect them (case matters:
// the JS SDK turns "CommunicationUser" into kind "unknown").
const (
	KindCommunicationUser  = "communicationUser"
	KindPhoneNumber        = "phoneNumber"
	KindMicrosoftTeamsUser = "microsoftTeamsUser"
	KindMicrosoftTeamsApp  = "microsoftTeamsApp"
	KindUnknown            = "unknown"
)

// Identifier is the REST wire form of CommunicationIdentifierModel. Requests
// carry rawId plus one nested model and never kind; responses carry all three.
type Identifier struct {
	Kind               string              `json:"kind,omitempty"`
	RawID              string              `json:"rawId,omitempty"`
	CommunicationUser  *CommunicationUser  `json:"communicationUser,omitempty"`
	PhoneNumber        *PhoneNumber        `json:"phoneNumber,omitempty"`
	MicrosoftTeamsUser *MicrosoftTeamsUser `json:"microsoftTeamsUser,omitempty"`
	MicrosoftTeamsApp  *MicrosoftTeamsApp  `json:"microsoftTeamsApp,omitempty"`
}

// CommunicationUser is the nested model of an ACS user.
type CommunicationUser struct {
	ID string `json:"id"`
}

// PhoneNumber is the nested model of a PSTN participant.
type PhoneNumber struct {
	Value string `json:"value"`
}

// MicrosoftTeamsUser is the nested model of a Teams user.
type MicrosoftTeamsUser struct {
	UserID      string `json:"userId"`
	IsAnonymous bool   `json:"isAnonymous,omitempty"`
	Cloud       string `json:"cloud,omitempty"`
}

// MicrosoftTeamsApp is the nested model of a Teams app or bot.
type MicrosoftTeamsApp struct {
	AppID string `json:"appId"`
	Cloud string `json:"cloud,omitempty"`
}

// User returns the response form of an ACS user identifier: the safest shape
// for every SDK (kind, rawId and the nested model, all consistent).
func User(rawID string) Identifier {
	return Identifier{Kind: KindCommunicationUser, RawID: rawID, CommunicationUser: &CommunicationUser{ID: rawID}}
}

// UserRef is User for places where the field is optional in the wire model.
func UserRef(rawID string) *Identifier {
	if rawID == "" {
		return nil
	}
	id := User(rawID)
	return &id
}

// ResolveUser returns the ACS user id a request identifier names. ok is false
// when the identifier names something other than an ACS user (a phone number,
// a Teams user or app) or is self-contradictory; reason then says why.
func ResolveUser(id Identifier) (rawID string, ok bool, reason string) {
	nested := 0
	for _, present := range []bool{id.CommunicationUser != nil, id.PhoneNumber != nil, id.MicrosoftTeamsUser != nil, id.MicrosoftTeamsApp != nil} {
		if present {
			nested++
		}
	}
	switch {
	case nested > 1:
		return id.RawID, false, "an identifier may carry only one of communicationUser, phoneNumber, microsoftTeamsUser, microsoftTeamsApp"
	case id.CommunicationUser != nil:
		u := id.CommunicationUser.ID
		if u == "" {
			return "", false, "communicationUser.id is empty"
		}
		if id.RawID != "" && id.RawID != u {
			return id.RawID, false, "rawId and communicationUser.id name different users"
		}
		if !IsACSUserID(u) {
			return u, false, "communicationUser.id is not an Azure Communication Services user id (8:acs:<resource>_<id>)"
		}
		return u, true, ""
	case nested == 1:
		return id.RawID, false, "only Azure Communication Services users (8:acs:…) can take part in Threadline chats"
	case id.RawID == "":
		return "", false, "the identifier has neither rawId nor communicationUser.id"
	case IsACSUserID(id.RawID):
		return id.RawID, true, ""
	default:
		return id.RawID, false, "rawId is not an Azure Communication Services user id (8:acs:<resource>_<id>)"
	}
}

// IsACSUserID reports whether s has the shape of a user id Threadline issues:
// 8:acs:<resource uuid>_<user id>, that is
// ^8:acs:[0-9a-fA-F-]{36}_[0-9A-Za-z-]{1,128}$. It is written out rather than
// compiled as that regexp because the {1,128} repetition made compiling it
// at package init a measurable part of every function's cold start.
func IsACSUserID(s string) bool {
	rest, ok := strings.CutPrefix(s, "8:acs:")
	if !ok || len(rest) < 36+1+1 || len(rest) > 36+1+128 || rest[36] != '_' {
		return false
	}
	for i := 0; i < 36; i++ {
		if c := rest[i]; !isHex(c) && c != '-' {
			return false
		}
	}
	for i := 37; i < len(rest); i++ {
		if c := rest[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// UserResource returns the resource id part of an ACS user id.
func UserResource(rawID string) string {
	rest, ok := strings.CutPrefix(rawID, "8:acs:")
	if !ok {
		return ""
	}
	res, _, _ := strings.Cut(rest, "_")
	return res
}
