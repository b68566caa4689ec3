package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/threadline/threadline/local/rtclient"
)

// party is an ACS participant or identifier as events carry them.
type party struct {
	RawID                   string `json:"rawId"`
	DisplayName             string `json:"displayName"`
	CommunicationIdentifier *struct {
		RawID string `json:"rawId"`
	} `json:"communicationIdentifier"`
}

func (p party) id() string {
	if p.CommunicationIdentifier != nil {
		return p.CommunicationIdentifier.RawID
	}
	return p.RawID
}

// eventData is the union of the data fields the lines show.
type eventData struct {
	Sender            party   `json:"sender"`
	SenderDisplayName string  `json:"senderDisplayName"`
	Message           string  `json:"message"`
	ContentOmitted    bool    `json:"contentOmitted"`
	ID                string  `json:"id"`
	ChatMessageID     string  `json:"chatMessageId"`
	CreatedBy         party   `json:"createdBy"`
	UpdatedBy         party   `json:"updatedBy"`
	DeletedBy         party   `json:"deletedBy"`
	AddedBy           party   `json:"addedBy"`
	RemovedBy         party   `json:"removedBy"`
	Participants      []party `json:"participants"`
	ParticipantsAdded []party `json:"participantsAdded"`
	ParticipantsGone  []party `json:"participantsRemoved"`
	Properties        struct {
		Topic string `json:"topic"`
	} `json:"properties"`
}

// formatEvent renders one event as a line:
//
//	12:03:04 chatMessageReceived 19:abc…@thread.v2 bob: hello
//
// names maps an ACS id to the CLI's name ("" when unknown).
func formatEvent(ev rtclient.Event, names func(id string) string) string {
	var d eventData
	_ = json.Unmarshal(ev.Data, &d)
	who := func(p party, display string) string {
		if n := names(p.id()); n != "" {
			return n
		}
		if display == "" {
			display = p.DisplayName
		}
		if display != "" {
			return display
		}
		return shortID(p.id())
	}
	list := func(ps []party) string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			out = append(out, who(p, ""))
		}
		return strings.Join(out, ", ")
	}
	var what string
	switch ev.Type {
	case "chatMessageReceived":
		what = who(d.Sender, d.SenderDisplayName) + ": " + messageText(d)
	case "chatMessageEdited":
		what = who(d.Sender, d.SenderDisplayName) + " edited: " + messageText(d)
	case "chatMessageDeleted":
		what = who(d.Sender, d.SenderDisplayName) + " deleted message " + d.ID
	case "readReceiptReceived":
		what = who(d.Sender, "") + " read message " + d.ChatMessageID
	case "typingIndicatorReceived":
		what = who(d.Sender, d.SenderDisplayName) + " is typing"
	case "chatThreadCreated":
		what = fmt.Sprintf("%s created %q with %s", who(d.CreatedBy, ""), d.Properties.Topic, list(d.Participants))
	case "chatThreadPropertiesUpdated":
		what = fmt.Sprintf("%s set the topic to %q", who(d.UpdatedBy, ""), d.Properties.Topic)
	case "chatThreadDeleted":
		what = who(d.DeletedBy, "") + " deleted the thread"
	case "participantsAdded":
		what = who(d.AddedBy, "") + " added " + list(d.ParticipantsAdded)
	case "participantsRemoved":
		what = who(d.RemovedBy, "") + " removed " + list(d.ParticipantsGone)
	default:
		what = string(ev.Data)
	}
	at := ev.OccurredOn
	if at.IsZero() {
		at = time.Now()
	}
	return fmt.Sprintf("%s %s %s %s", at.Local().Format("15:04:05"), ev.Type, shortThread(ev.ThreadID), what)
}

func messageText(d eventData) string {
	if d.ContentOmitted {
		return "(too big to push; fetch message " + d.ID + ")"
	}
	return strings.ReplaceAll(d.Message, "\n", "⏎")
}

// shortThread keeps a thread id recognisable in a line: 19:abc…@thread.v2.
func shortThread(id string) string {
	const pre, suf = "19:", "@thread.v2"
	if !strings.HasPrefix(id, pre) || !strings.HasSuffix(id, suf) || len(id) <= len(pre)+len(suf)+6 {
		return id
	}
	return id[:len(pre)+6] + "…" + suf
}

// shortID shortens an unknown user id to its last characters.
func shortID(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}
