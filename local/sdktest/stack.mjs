// Shared setup for the ACS SDK suite: find the stack, make users and clients.
// The Go test that runs this suite (local/sdk_test.go) starts a stack on free
// ports and points THREADLINE_STACK at its stack.json; by hand, run it
// against `make run` with THREADLINE_STACK=.local/stack.json and
// NODE_EXTRA_CA_CERTS=.local/tls/ca.pem.
import { readFileSync } from "node:fs";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

const stackFile = process.env.THREADLINE_STACK ?? new URL("../../.local/stack.json", import.meta.url);
export const stack = JSON.parse(readFileSync(stackFile, "utf8"));
export const endpoint = stack.httpApi + "/";

export const identity = new CommunicationIdentityClient(stack.connectionString);

// newUser creates an identity with a token of the given scopes and a
// ChatClient that uses it.
export async function newUser(scopes = ["chat"]) {
  const { user, token } = await identity.createUserAndToken(scopes);
  const chat = new ChatClient(endpoint, new AzureCommunicationTokenCredential(token));
  return { user, id: user.communicationUserId, token, chat };
}

// collect drains a paged iterator.
export async function collect(iter) {
  const out = [];
  for await (const x of iter) out.push(x);
  return out;
}
