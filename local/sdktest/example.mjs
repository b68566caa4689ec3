// The README's example: create two users and a thread with the official ACS
// SDKs against the local stack. Run `make run` in one terminal, then:
//   NODE_EXTRA_CA_CERTS=.local/tls/ca.pem node local/sdktest/example.mjs
import { readFileSync } from "node:fs";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { ChatClient } from "@azure/communication-chat";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

const stack = JSON.parse(readFileSync(new URL("../../.local/stack.json", import.meta.url), "utf8"));

const identity = new CommunicationIdentityClient(stack.connectionString);
const alice = await identity.createUserAndToken(["chat"]);
const bob = await identity.createUser();

const chat = new ChatClient(stack.httpApi, new AzureCommunicationTokenCredential(alice.token));
const { chatThread } = await chat.createChatThread(
  { topic: "Hello from Threadline" },
  { participants: [{ id: bob, displayName: "Bob" }] },
);
console.log("alice:", alice.user.communicationUserId);
console.log("thread:", chatThread.id, "-", chatThread.topic);
for await (const t of chat.listChatThreads()) console.log("alice's threads:", t.id, t.topic);
