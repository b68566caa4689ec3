// The ACS SDK compatibility suite: every ChatClient and ChatThreadClient
// method except real-time notifications and images, through the official,
// unmodified @azure/communication-chat 1.6.0, against Threadline.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isRestError } from "@azure/core-rest-pipeline";
import { identity, newUser, collect } from "./stack.mjs";

const ME = (u) => ({ kind: "communicationUser", communicationUserId: u.id });

// rejects asserts a call fails with a RestError of the given status and code.
async function rejects(promise, status, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(isRestError(e), `expected a RestError, got ${e}`);
    assert.equal(e.statusCode, status, e.message);
    if (code) assert.equal(e.code, code, e.message);
    return true;
  });
}

test("ChatClient: createChatThread, getChatThreadClient, listChatThreads (byPage, continuation), deleteChatThread", async () => {
  const alice = await newUser();
  const bob = await newUser();

  const created = await alice.chat.createChatThread(
    { topic: "Compat" },
    {
      participants: [
        { id: { communicationUserId: alice.id }, displayName: "Alice" },
        { id: { communicationUserId: bob.id }, displayName: "Bob", metadata: { role: "guest" } },
        { id: { communicationUserId: "8:acs:ffffffff-ffff-ffff-ffff-ffffffffffff_nobody" } },
      ],
      idempotencyToken: "compat-create-1",
      metadata: { project: "x", "another key": "v" },
      retentionPolicy: { kind: "threadCreationDate", deleteThreadAfterDays: 40 },
    },
  );
  const thread = created.chatThread;
  assert.equal(thread.topic, "Compat");
  assert.deepEqual(thread.createdBy, ME(alice));
  assert.deepEqual(thread.metadata, { project: "x", "another key": "v" });
  assert.deepEqual(thread.retentionPolicy, { kind: "threadCreationDate", deleteThreadAfterDays: 40 });
  assert.equal(created.invalidParticipants.length, 1);
  assert.equal(created.invalidParticipants[0].code, "404");
  assert.equal(created.invalidParticipants[0].target, "8:acs:ffffffff-ffff-ffff-ffff-ffffffffffff_nobody");

  // The same idempotency token returns the same thread.
  const again = await alice.chat.createChatThread({ topic: "Compat" }, {
    participants: [
      { id: { communicationUserId: alice.id }, displayName: "Alice" },
      { id: { communicationUserId: bob.id }, displayName: "Bob", metadata: { role: "guest" } },
      { id: { communicationUserId: "8:acs:ffffffff-ffff-ffff-ffff-ffffffffffff_nobody" } },
    ],
    idempotencyToken: "compat-create-1",
    metadata: { project: "x", "another key": "v" },
    retentionPolicy: { kind: "threadCreationDate", deleteThreadAfterDays: 40 },
  });
  assert.equal(again.chatThread.id, thread.id);

  assert.equal(alice.chat.getChatThreadClient(thread.id).threadId, thread.id);

  // Five more threads, then page through six with maxPageSize 2.
  for (let i = 0; i < 5; i++) await alice.chat.createChatThread({ topic: `t${i}` });
  const pages = [];
  for await (const page of alice.chat.listChatThreads({ maxPageSize: 2 }).byPage()) pages.push(page);
  assert.deepEqual(pages.map((p) => p.length), [2, 2, 2]);
  const listed = pages.flat();
  assert.equal(new Set(listed.map((t) => t.id)).size, 6);
  assert.deepEqual(listed.map((t) => t.topic).slice(0, 2), ["t4", "t3"], "newest activity first");
  for (const t of listed) assert.ok(t.lastMessageReceivedOn instanceof Date);

  // A continuation token resumes where a page left off.
  const settings = {};
  const first = await alice.chat.listChatThreads({ maxPageSize: 4 }).byPage(settings).next();
  assert.equal(first.value.length, 4);
  assert.ok(settings.continuationToken, "the SDK exposes the nextLink as continuationToken");
  const rest = (await collect(pagesOf(alice.chat.listChatThreads().byPage({ continuationToken: settings.continuationToken })))).flat();
  assert.deepEqual([...first.value, ...rest].map((t) => t.id), listed.map((t) => t.id));

  // startTime filters by activity.
  const future = await collect(alice.chat.listChatThreads({ startTime: new Date(Date.now() + 3600_000) }));
  assert.equal(future.length, 0);

  await alice.chat.deleteChatThread(thread.id);
  const afterDelete = (await collect(bob.chat.listChatThreads())).find((t) => t.id === thread.id);
  assert.ok(afterDelete.deletedOn instanceof Date);
  await rejects(bob.chat.getChatThreadClient(thread.id).getProperties(), 404, "NotFound");
});

async function* pagesOf(iter) {
  for await (const p of iter) yield p;
}

test("ChatThreadClient: properties, messages, participants, receipts, typing", async () => {
  const alice = await newUser();
  const bob = await newUser();
  const carol = await newUser(["chat.join"]);
  const { chatThread } = await alice.chat.createChatThread({ topic: "Room" }, { participants: [{ id: { communicationUserId: bob.id }, displayName: "Bob" }] });
  const a = alice.chat.getChatThreadClient(chatThread.id);
  const b = bob.chat.getChatThreadClient(chatThread.id);

  // getProperties / updateTopic / updateProperties
  let props = await b.getProperties();
  assert.equal(props.id, chatThread.id);
  assert.deepEqual(props.createdBy, ME(alice));
  await a.updateTopic("Room 2");
  await a.updateProperties({ metadata: { floor: "3" }, retentionPolicy: { kind: "none" } });
  props = await b.getProperties();
  assert.equal(props.topic, "Room 2");
  assert.deepEqual(props.metadata, { floor: "3" });
  assert.deepEqual(props.retentionPolicy, { kind: "none" });
  await a.updateProperties(); // {} changes nothing
  assert.equal((await b.getProperties()).topic, "Room 2");

  // sendMessage / getMessage
  const text = "héllo ☃ 😀 <&>\"' 👩‍👩‍👧";
  const { id: m1 } = await a.sendMessage({ content: text }, { senderDisplayName: "Alice", metadata: { tag: "x" } });
  assert.match(m1, /^\d+$/);
  const got = await b.getMessage(m1);
  assert.equal(got.id, m1);
  assert.equal(got.type, "text");
  assert.equal(got.content.message, text);
  assert.equal(got.senderDisplayName, "Alice");
  assert.deepEqual(got.sender, ME(alice));
  assert.deepEqual(got.metadata, { tag: "x" });
  assert.ok(got.createdOn instanceof Date);
  assert.match(got.sequenceId, /^\d+$/);
  assert.match(got.version, /^\d+$/);
  const { id: m2 } = await b.sendMessage({ content: "<b>bold</b><script>x()</script>" }, { type: "html" });
  const html = await a.getMessage(m2);
  assert.equal(html.type, "html");
  assert.equal(html.content.message, "<b>bold</b>");

  // listMessages: newest first, system messages included, paged.
  const all = await collect(a.listMessages());
  assert.deepEqual(all.slice(0, 2).map((m) => m.id), [m2, m1]);
  const types = all.map((m) => m.type);
  assert.ok(types.includes("participantAdded") && types.includes("topicUpdated"));
  const added = all.find((m) => m.type === "participantAdded");
  assert.deepEqual(added.content.initiator, ME(alice));
  assert.ok(added.content.participants.some((p) => p.id.communicationUserId === bob.id && p.displayName === "Bob"));
  const topic = all.find((m) => m.type === "topicUpdated" && m.content.topic === "Room 2");
  assert.ok(topic, "updateTopic wrote a topicUpdated system message");
  const seqs = all.map((m) => Number(m.sequenceId));
  assert.deepEqual([...seqs].sort((x, y) => y - x), seqs, "newest first by sequenceId");
  const pageSizes = [];
  for await (const page of a.listMessages({ maxPageSize: 2 }).byPage()) pageSizes.push(page.length);
  assert.equal(pageSizes.reduce((x, y) => x + y, 0), all.length);
  assert.ok(pageSizes.every((n) => n <= 2) && pageSizes.length >= 3);
  const since = await collect(a.listMessages({ startTime: got.createdOn }));
  assert.ok(since.length >= 2 && since.every((m) => m.createdOn >= got.createdOn));

  // updateMessage / deleteMessage
  await a.updateMessage(m1, { content: "edited", metadata: { tag: "y" } });
  const edited = await b.getMessage(m1);
  assert.equal(edited.content.message, "edited");
  assert.deepEqual(edited.metadata, { tag: "y" });
  assert.ok(edited.editedOn instanceof Date);
  assert.ok(Number(edited.version) > Number(got.version));
  await rejects(b.updateMessage(m1, { content: "not mine" }), 403, "Forbidden");
  await rejects(b.deleteMessage(m1), 403, "Forbidden");
  await a.deleteMessage(m1);
  const deleted = await b.getMessage(m1);
  assert.ok(deleted.deletedOn instanceof Date);
  assert.equal(deleted.content, undefined);

  // addParticipants / listParticipants (skip paging) / removeParticipant
  const extra = [];
  for (let i = 0; i < 4; i++) extra.push(await identity.createUser());
  const addResult = await a.addParticipants({
    participants: [
      { id: { communicationUserId: carol.id }, displayName: "Carol", shareHistoryTime: new Date(), metadata: { team: "blue" } },
      ...extra.map((u, i) => ({ id: u, displayName: `Extra ${i}` })),
    ],
  });
  assert.equal(addResult.invalidParticipants, undefined);
  const roster = await collect(b.listParticipants());
  assert.equal(roster.length, 7);
  const carolEntry = roster.find((p) => p.id.communicationUserId === carol.id);
  assert.equal(carolEntry.displayName, "Carol");
  assert.deepEqual(carolEntry.metadata, { team: "blue" });
  assert.ok(carolEntry.shareHistoryTime instanceof Date);
  assert.deepEqual(carolEntry.id, { kind: "communicationUser", communicationUserId: carol.id });
  const skipped = await collect(b.listParticipants({ maxPageSize: 3, skip: 2 }));
  assert.deepEqual(skipped.map((p) => p.id.communicationUserId), roster.slice(2).map((p) => p.id.communicationUserId));
  const rosterPages = [];
  for await (const page of b.listParticipants({ maxPageSize: 3 }).byPage()) rosterPages.push(page.length);
  assert.deepEqual(rosterPages, [3, 3, 1]);

  // Carol joined with shareHistoryTime = now: no earlier message is hers to see.
  const c = carol.chat.getChatThreadClient(chatThread.id);
  const carolSees = await collect(c.listMessages());
  assert.ok(!carolSees.some((m) => m.id === m2), "carol must not see messages from before her share time");
  await rejects(c.getMessage(m2), 404, "NotFound");
  await c.sendMessage({ content: "hi from carol" });

  await a.removeParticipant({ communicationUserId: extra[0].communicationUserId });
  await c.removeParticipant({ communicationUserId: carol.id }); // leaves (chat.join may)
  assert.equal((await collect(a.listParticipants())).length, 5);
  await rejects(c.sendMessage({ content: "gone" }), 403, "Forbidden");
  const removedMsg = (await collect(a.listMessages({ maxPageSize: 5 }))).find((m) => m.type === "participantRemoved");
  assert.ok(removedMsg.content.participants[0].id.communicationUserId === carol.id);

  // sendReadReceipt / listReadReceipts
  const { id: m3 } = await a.sendMessage({ content: "read me" });
  await b.sendReadReceipt({ chatMessageId: m3 });
  const receipts = await collect(a.listReadReceipts());
  const bobs = receipts.find((r) => r.sender.communicationUserId === bob.id);
  assert.equal(bobs.chatMessageId, m3);
  assert.ok(bobs.readOn instanceof Date);
  assert.deepEqual(bobs.sender, ME(bob));
  await rejects(b.sendReadReceipt({ chatMessageId: "12345" }), 404, "NotFound");

  // sendTypingNotification: true when sent, false when the SDK throttles it.
  assert.equal(await b.sendTypingNotification({ senderDisplayName: "Bob" }), true);
  assert.equal(await b.sendTypingNotification(), false);
});

test("refused calls surface as RestError with ACS's status and code", async () => {
  const alice = await newUser();
  const outsider = await newUser();
  const limited = await newUser(["chat.join.limited"]);
  const { chatThread } = await alice.chat.createChatThread({ topic: "Refusals" }, { participants: [{ id: { communicationUserId: limited.id } }] });
  const o = outsider.chat.getChatThreadClient(chatThread.id);
  await rejects(o.getProperties(), 403, "Forbidden");
  await rejects(o.sendMessage({ content: "x" }), 403, "Forbidden");
  await rejects(o.listMessages().next(), 403, "Forbidden");
  await rejects(limited.chat.getChatThreadClient(chatThread.id).addParticipants({ participants: [{ id: { communicationUserId: outsider.id } }] }), 403, "Forbidden");
  await rejects(limited.chat.deleteChatThread(chatThread.id), 403, "Forbidden");
  await rejects(alice.chat.getChatThreadClient("19:aaaaaaaaaaaaaaaaaaaaaaaaaa@thread.v2").getProperties(), 404, "NotFound");
  await rejects(alice.chat.getChatThreadClient(chatThread.id).getMessage("1"), 404, "NotFound");
  await rejects(alice.chat.createChatThread({ topic: "" }), 400, "InvalidTopic");
  await rejects(alice.chat.getChatThreadClient(chatThread.id).sendMessage({ content: "x".repeat(28 * 1024 + 1) }), 413, "MessageTooLarge");

  // A revoked token is refused with ACS's 401 (after the authorizer cache; see TestRevokedToken… for that part).
  const { user, token } = await identity.createUserAndToken(["chat"]);
  await identity.deleteUser(user);
  const { ChatClient } = await import("@azure/communication-chat");
  const { AzureCommunicationTokenCredential } = await import("@azure/communication-common");
  const { endpoint } = await import("./stack.mjs");
  const ghost = new ChatClient(endpoint, new AzureCommunicationTokenCredential(token));
  await rejects(collect(ghost.listChatThreads()), 401, "Unauthorized");
});
