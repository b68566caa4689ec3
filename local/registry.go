package local

import (
	"log/slog"

	"github.com/threadline/threadline/shared/apigw"
	"github.com/threadline/threadline/shared/chatapi"
	"github.com/threadline/threadline/shared/identity"
	"github.com/threadline/threadline/shared/identityapi"
	"github.com/threadline/threadline/shared/store"
)

// deps are what the functions get locally in place of their environment:
// the same store, and the secrets that Secrets Manager holds in AWS.
type deps struct {
	store         *store.Store
	resourceID    string
	accessKey     []byte
	signingSecret []byte
	log           func(function string) *slog.Logger
}

func (d deps) identityAPI() (*identityapi.API, error) {
	return identityapi.New(d.store, d.resourceID, [][]byte{d.accessKey}, d.signingSecret)
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
		return apigw.HTTP("CreateThread", d.log("create-thread"), chatapi.New(d.store).CreateThread), nil
	},
	"GetThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("GetThread", d.log("get-thread"), chatapi.New(d.store).GetThread), nil
	},
	"ListThreadsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListThreads", d.log("list-threads"), chatapi.New(d.store).ListThreads), nil
	},
	"UpdateThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("UpdateThread", d.log("update-thread"), chatapi.New(d.store).UpdateThread), nil
	},
	"DeleteThreadFunction": func(d deps) (any, error) {
		return apigw.HTTP("DeleteThread", d.log("delete-thread"), chatapi.New(d.store).DeleteThread), nil
	},
	"SendMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("SendMessage", d.log("send-message"), chatapi.New(d.store).SendMessage), nil
	},
	"ListMessagesFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListMessages", d.log("list-messages"), chatapi.New(d.store).ListMessages), nil
	},
	"GetMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("GetMessage", d.log("get-message"), chatapi.New(d.store).GetMessage), nil
	},
	"UpdateMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("UpdateMessage", d.log("update-message"), chatapi.New(d.store).UpdateMessage), nil
	},
	"DeleteMessageFunction": func(d deps) (any, error) {
		return apigw.HTTP("DeleteMessage", d.log("delete-message"), chatapi.New(d.store).DeleteMessage), nil
	},
	"ListParticipantsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListParticipants", d.log("list-participants"), chatapi.New(d.store).ListParticipants), nil
	},
	"AddParticipantsFunction": func(d deps) (any, error) {
		return apigw.HTTP("AddParticipants", d.log("add-participants"), chatapi.New(d.store).AddParticipants), nil
	},
	"RemoveParticipantFunction": func(d deps) (any, error) {
		return apigw.HTTP("RemoveParticipant", d.log("remove-participant"), chatapi.New(d.store).RemoveParticipant), nil
	},
	"SendReadReceiptFunction": func(d deps) (any, error) {
		return apigw.HTTP("SendReadReceipt", d.log("send-read-receipt"), chatapi.New(d.store).SendReadReceipt), nil
	},
	"ListReadReceiptsFunction": func(d deps) (any, error) {
		return apigw.HTTP("ListReadReceipts", d.log("list-read-receipts"), chatapi.New(d.store).ListReadReceipts), nil
	},
	"SendTypingFunction": func(d deps) (any, error) {
		return apigw.HTTP("SendTyping", d.log("send-typing"), chatapi.New(d.store).SendTyping), nil
	},
}
