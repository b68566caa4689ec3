// Smoke test: the official ACS JS SDKs, unmodified, against Threadline.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isRestError } from "@azure/core-rest-pipeline";
import { identity, newUser, collect } from "./stack.mjs";

test("a user and a token from the connection string", async () => {
  const { user, token, expiresOn } = await identity.createUserAndToken(["chat", "voip"], { tokenExpiresInMinutes: 120 });
  assert.match(user.communicationUserId, /^8:acs:[0-9a-f-]{36}_[0-9a-f-]{36}$/);
  assert.equal(token.split(".").length, 3, "the token is a JWT");
  const minutes = (expiresOn.getTime() - Date.now()) / 60000;
  assert.ok(minutes > 118 && minutes <= 120, `token lifetime ${minutes} min, asked for 120`);

  const bare = await identity.createUser();
  const again = await identity.getToken(bare, ["chat.join"]);
  assert.ok(again.expiresOn > new Date(Date.now() + 23 * 3600 * 1000), "default lifetime is 24 h");
  await identity.revokeTokens(bare);
  await identity.deleteUser(bare);
  await assert.rejects(identity.getToken(bare, ["chat"]), (e) => e.statusCode === 404);
});

test("create a thread with a second user, get it, update its topic, list, delete", async () => {
  const alice = await newUser();
  const bob = await newUser();

  const created = await alice.chat.createChatThread(
    { topic: "Lunch" },
    { participants: [{ id: { communicationUserId: bob.id }, displayName: "Bob" }], metadata: { team: "blue" } },
  );
  const thread = created.chatThread;
  assert.match(thread.id, /^19:[a-z2-7]{26}@thread\.v2$/);
  assert.equal(thread.topic, "Lunch");
  assert.deepEqual(thread.createdBy, { kind: "communicationUser", communicationUserId: alice.id });
  assert.deepEqual(thread.metadata, { team: "blue" });
  assert.equal(created.invalidParticipants, undefined);

  const asBob = bob.chat.getChatThreadClient(thread.id);
  const props = await asBob.getProperties();
  assert.equal(props.topic, "Lunch");
  assert.ok(props.createdOn instanceof Date && Math.abs(props.createdOn - Date.now()) < 60000);

  const asAlice = alice.chat.getChatThreadClient(thread.id);
  await asAlice.updateTopic("Dinner");
  assert.equal((await asBob.getProperties()).topic, "Dinner");

  const listed = await collect(bob.chat.listChatThreads());
  const item = listed.find((t) => t.id === thread.id);
  assert.ok(item, "bob's thread list has the thread");
  assert.equal(item.topic, "Dinner");
  assert.ok(item.lastMessageReceivedOn instanceof Date);

  await alice.chat.deleteChatThread(thread.id);
  await assert.rejects(asBob.getProperties(), (e) => isRestError(e) && e.statusCode === 404 && e.code === "NotFound");
  const after = (await collect(bob.chat.listChatThreads())).find((t) => t.id === thread.id);
  assert.ok(after?.deletedOn instanceof Date, "a deleted thread stays in the list with deletedOn");
});

test("a refused call surfaces as RestError with ACS's status and code", async () => {
  const joiner = await newUser(["chat.join"]);
  await assert.rejects(joiner.chat.createChatThread({ topic: "nope" }), (e) => {
    assert.ok(isRestError(e));
    assert.equal(e.statusCode, 403);
    assert.equal(e.code, "Forbidden");
    return true;
  });
});
