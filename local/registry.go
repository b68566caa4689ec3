package local

import (
	"log/slog"
	"time"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/bus"
	"github.com/threadline/threadline/shared/chat"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/dispatch"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/identityapi"
	"github.com/threadline/threadline/shared/obs"
	"github.com/threadline/threadline/shared/ratelimit"
	"github.com/threadline/threadline/shared/realtime"
	"github.com/threadline/threadline/shared/sanitize"
	"github.com/threadline/threadline/shared/store"
	"github.com/threadline/threadline/shared/wsapi"
)

// deps are what the functions get locally in place of their environment:
// the same stores and clients, and the secrets that Secrets Manager holds in
// AWS.
type deps struct {
	store           *store.Store
	rt              *store.Realtime
	pusher          realtime.Pusher    // the real management API client, pointed at the local WebSocket API
	async           wsapi.AsyncInvoker // the local Lambda host
	feedRetention   time.Duration
	partners        bus.Publisher // the real EventBridge client, pointed at the local bus
	userLevelEvents bool
	rateLimitScale  float64
	resourceID      string
	accessKey       []byte
	signingSecret   []byte
	log             func(function string) *slog.Logger
}

func (d deps) reader() *realtime.Reader {
	return &realtime.Reader{Feed: d.rt, Messages: d.store, Retention: d.feedRetention}
}

// rates gives each function an in-memory limiter of its own, as each
// Lambda function has instances of its own.
func (d deps) rates() chat.RateLimits {
	return chat.RateLimits{Scale: d.rateLimitScale, Limiter: ratelimit.NewLimiter(0)}
}

func (d deps) identityAPI() (*identityapi.API, error) {
	api, err := identityapi.New(d.store, d.resourceID, [][]byte{d.accessKey}, d.signingSecret)
	if err != nil {
		return nil, err
	}
	if closer, ok := d.pusher.(realtime.Disconnecter); ok {
		api.Identity.Connections = realtime.ConnectionCloser{Connections: d.rt, Closer: closer}
	}
	return api, nil
}

// handlers builds every function's handler exactly as its
// functions/<dir>/main.go does, keyed by the template's logical id. The
// consistency test checks this map against template.yaml, the Makefile and
// functions/.
var handlers = map[string]func(d deps) (any, error){
	"CreateIdentityFunction": func(d deps) (any, error) {
		api, err := d.identityAPI()
		return apigw.HTTP("CreateIdentity", d.log("create-identity"), api.CreateIdentity), err
	},
	"DeleteIdentityFunction": func(d deps) (any, error) {
		api, err := d.identityAPI()
		return apigw.HTTP("DeleteIdentity", d.log("delete-identity"), api.DeleteIdentity), err
	},
	"IssueTokenFunction": func(d deps) (any, error) {
		api, err := d.identityAPI()
		return apigw.HTTP("IssueToken", d.log("issue-token"), api.IssueToken), err
	},
	"RevokeTokensFunction": func(d deps) (any, error) {
		api, err := d.identityAPI()
		return apigw.HTTP("RevokeTokens", d.log("revoke-tokens"), api.RevokeTokens), err
	},
	"ChatAuthorizerFunction": func(d deps) (any, error) {
		return apigw.Authorizer(identity.NewAuthenticator(d.store, d.store), d.log("chat-authorizer")), nil
	},
	"CreateThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("CreateThread", d.log("create-thread"), chatapi.New(d.store, d.rates()).CreateThread), nil
	},
	"GetThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("GetThread", d.log("get-thread"), chatapi.New(d.store, d.rates()).GetThread), nil
	},
	"ListThreadsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListThreads", d.log("list-threads"), chatapi.New(d.store, d.rates()).ListThreads), nil
	},
	"UpdateThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("UpdateThread", d.log("update-thread"), chatapi.New(d.store, d.rates()).UpdateThread), nil
	},
	"DeleteThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("DeleteThread", d.log("delete-thread"), chatapi.New(d.store, d.rates()).DeleteThread), nil
	},
	"SendMessageFunction": func(d deps) (any, error) {
		api := chatapi.New(d.store, d.rates())
		api.Chat.HTML = sanitize.HTML()
		return apigw.HTTP("SendMessage", d.log("send-message"), api.SendMessage), nil
	},
	"ListMessagesFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListMessages", d.log("list-messages"), chatapi.New(d.store, d.rates()).ListMessages), nil
	},
	"GetMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("GetMessage", d.log("get-message"), chatapi.New(d.store, d.rates()).GetMessage), nil
	},
	"UpdateMessageFunction": func(d deps) (any, error) {
		api := chatapi.New(d.store, d.rates())
		api.Chat.HTML = sanitize.HTML()
		return apigw.HTTP("UpdateMessage", d.log("update-message"), api.UpdateMessage), nil
	},
	"DeleteMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("DeleteMessage", d.log("delete-message"), chatapi.New(d.store, d.rates()).DeleteMessage), nil
	},
	"ListParticipantsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListParticipants", d.log("list-participants"), chatapi.New(d.store, d.rates()).ListParticipants), nil
	},
	"AddParticipantsFunction": func(d deps) (any, error) {
		return apigw.HTTP("AddParticipants", d.log("add-participants"), chatapi.New(d.store, d.rates()).AddParticipants), nil
	},
	"RemoveParticipantFunction": func(d deps) (any, error) {
		return apigw.HTTP("RemoveParticipant", d.log("remove-participant"), chatapi.New(d.store, d.rates()).RemoveParticipant), nil
	},
	"SendReadReceiptFunction": func(d deps) (any, error) {
		return apigw.HTTP("SendReadReceipt", d.log("send-read-receipt"), chatapi.New(d.store, d.rates()).SendReadReceipt), nil
	},
	"ListReadReceiptsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListReadReceipts", d.log("list-read-receipts"), chatapi.New(d.store, d.rates()).ListReadReceipts), nil
	},
	"SendTypingFunction": func(d deps) (any, error) {
		api := chatapi.New(d.store, d.rates())
		api.Chat.Typing = &realtime.Typist{Roster: d.store, Connections: d.rt, Pusher: d.pusher}
		return apigw.HTTP("SendTyping", d.log("send-typing"), api.SendTyping), nil
	},
	"WsAuthorizerFunction": func(d deps) (any, error) {
		return wsapi.Authorizer(identity.NewAuthenticator(d.store, d.store), d.log("ws-authorizer")), nil
	},
	"WsConnectFunction": func(d deps) (any, error) {
		return wsapi.Connect(&realtime.Sessions{Connections: d.rt}, d.async, "WsDefaultFunction", d.log("ws-connect")), nil
	},
	"WsDisconnectFunction": func(d deps) (any, error) {
		return wsapi.Disconnect(&realtime.Sessions{Connections: d.rt}, d.log("ws-disconnect")), nil
	},
	"WsDefaultFunction": func(d deps) (any, error) {
		return wsapi.Default(&realtime.Sessions{Connections: d.rt, Reader: d.reader(), Pusher: d.pusher}, d.log("ws-default")), nil
	},
	"DispatchFunction": func(d deps) (any, error) {
		log := d.log("dispatch")
		return dispatch.Handler(&realtime.Dispatcher{
			Roster: d.store, Feed: d.rt, Connections: d.rt, Pusher: d.pusher, Retention: d.feedRetention, Log: log,
			Metrics: obs.Counter{}, Partners: d.partners, UserLevelEvents: d.userLevelEvents,
		}, log), nil
	},
	"PollEventsFunction": func(d deps) (any, error) {
		return apigw.HTTP("PollEvents", d.log("poll-events"), chatapi.PollEvents(d.reader(), nil)), nil
	},
}
