# Threadline. `make run` starts the local stack; `make test` runs every test.
# SAM builds each function with `make build-<LogicalId>` (BuildMethod: makefile).

SHELL := bash
.DEFAULT_GOAL := help

GO_BUILD := CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -tags lambda.norpc -trimpath -ldflags='-s -w'

# Each function's logical id in template.yaml -> its folder under functions/.
# A test checks this list against template.yaml, functions/ and the local stack.
CreateIdentityFunction    := create-identity
DeleteIdentityFunction    := delete-identity
IssueTokenFunction        := issue-token
RevokeTokensFunction      := revoke-tokens
ChatAuthorizerFunction    := chat-authorizer
CreateThreadFunction      := create-thread
GetThreadFunction         := get-thread
ListThreadsFunction       := list-threads
UpdateThreadFunction      := update-thread
DeleteThreadFunction      := delete-thread
SendMessageFunction       := send-message
ListMessagesFunction      := list-messages
GetMessageFunction        := get-message
UpdateMessageFunction     := update-message
DeleteMessageFunction     := delete-message
ListParticipantsFunction  := list-participants
AddParticipantsFunction   := add-participants
RemoveParticipantFunction := remove-participant
SendReadReceiptFunction   := send-read-receipt
ListReadReceiptsFunction  := list-read-receipts
SendTypingFunction        := send-typing
WsAuthorizerFunction      := ws-authorizer
WsConnectFunction         := ws-connect
WsDisconnectFunction      := ws-disconnect
WsDefaultFunction         := ws-default
DispatchFunction          := dispatch
PollEventsFunction        := poll-events

FUNCTIONS := CreateIdentityFunction DeleteIdentityFunction IssueTokenFunction RevokeTokensFunction \
	ChatAuthorizerFunction CreateThreadFunction GetThreadFunction ListThreadsFunction \
	UpdateThreadFunction DeleteThreadFunction \
	SendMessageFunction ListMessagesFunction GetMessageFunction \
	UpdateMessageFunction DeleteMessageFunction ListParticipantsFunction \
	AddParticipantsFunction RemoveParticipantFunction SendReadReceiptFunction \
	ListReadReceiptsFunction SendTypingFunction \
	WsAuthorizerFunction WsConnectFunction WsDisconnectFunction \
	WsDefaultFunction DispatchFunction PollEventsFunction

.PHONY: help run test deps lint build clean fuzz soak bench coldstart

help: ## list the targets
	@grep -E '^[a-z%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

run: deps ## start the whole local stack (Ctrl-C stops it; data stays in .local/)
	go run ./local/cmd/threadline-local

test: deps lint ## run every test: unit, DynamoDB Local integration, HTTPS end to end, ACS SDK suite, reliability, short fuzz
	go test -count=1 ./...
	@FUZZTIME=2000x ./local/scripts/fuzz.sh

fuzz: ## run every Go fuzz target longer (FUZZTIME=100000x each by default)
	@./local/scripts/fuzz.sh

soak: deps ## the reliability suite at full size: 10,000 messages to 50 clients, faults x10 (minutes)
	THREADLINE_SOAK=1 go test -count=1 -timeout 60m -v -run 'TestLoad|TestFault' ./local

bench: deps ## measure cost, latency, throughput and cold start; writes docs/benchmarks.json and .md (~8 min; BENCH_FLAGS=-h lists options)
	go run ./local/cmd/threadline-bench $(BENCH_FLAGS)

coldstart: ## cold start of every bootstrap under the Lambda Runtime Interface Emulator (part of make bench)
	go run ./local/cmd/threadline-coldstart

deps: ## install what is missing: Java 17, DynamoDB Local, npm packages, Go modules
	@./local/scripts/deps.sh

lint: ## gofmt, go vet and cfn-lint on template.yaml
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.local/*')); \
		if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...
	@./local/scripts/cfn-lint.sh

build: ## build every function's bootstrap into .aws-sam/build/<LogicalId>/
	@for f in $(FUNCTIONS); do $(MAKE) --no-print-directory build-$$f ARTIFACTS_DIR=.aws-sam/build/$$f || exit 1; done

build-%: ## (used by sam build) build one function: make build-CreateThreadFunction ARTIFACTS_DIR=dir
	$(if $($*),,$(error no functions/ folder is mapped to logical id '$*' in the Makefile))
	$(if $(ARTIFACTS_DIR),,$(error ARTIFACTS_DIR is not set; sam build sets it, or pass ARTIFACTS_DIR=<dir>))
	$(GO_BUILD) -o $(ARTIFACTS_DIR)/bootstrap ./functions/$($*)

clean: ## remove build output (keeps .local data)
	rm -rf .aws-sam
