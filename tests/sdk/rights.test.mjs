// Data rights and the Firestore-triggered records, through the official Firebase JavaScript SDK
// on the Emulator Suite. Written from the contract's sections 1, 2.5 (exportMyExternalData,
// deleteMyExternalData) and 5 (conversions from the users/{uid} trigger; a deleted CV's results);
// docs/api.md only for names the contract leaves open (the export's field names, the keys of the
// deletion's counts).
//
// Users act through the SDK (callables, their own profile and CVs); what only the server writes
// (a subscription turning premium, the admin claim) is written with the emulators' owner
// credentials, which is also how stored documents are checked where the rules let no client
// read them. The triggers run after the write has been answered: they are polled for with a
// deadline (helpers.eventually).

import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { createUserWithEmailAndPassword } from "firebase/auth";
import { collection, deleteDoc, doc, getDoc, getDocs, query, setDoc, updateDoc, where } from "firebase/firestore";

import {
  ISO_UTC,
  closeClients,
  createCv,
  documentUrl,
  encode,
  ensureGatedConfig,
  eventually,
  fullRequest,
  newClient,
  owner,
  previewRequest,
  rejectsWith,
  serverList,
  serverQuery,
  serverRead,
  serverWrite,
  signUp,
  today,
} from "./helpers.mjs";

before(ensureGatedConfig);
after(closeClients);

const PREMIUM = { tier: "premium", status: "active" };
const AUDIT = "external_data_security_audit";

/** The stored conversions of `uid` (read as the server: REST with owner credentials). */
const conversionsOf = (uid) => serverList(`external_data_usage/${uid}/conversions`);

/** Waits until `uid` has `count` stored conversions and answers them. */
const conversionsReach = (uid, count) =>
  eventually(`${count} conversion(s) of ${uid}`, async () => {
    const found = await conversionsOf(uid);
    return found.length >= count && found;
  });

/**
 * A free user with a history in every collection the data-rights functions cover: two CVs, a
 * preview (a funnel event), a refused full enrichment (the gate: a gate event and an
 * unauthorized_access audit entry), a tracked upgrade click; then the server turns the
 * subscription premium (a conversion preceded by the funnel) and a full enrichment of the
 * second CV follows (with an idempotencyKey). Both CVs then hold a stored result.
 */
async function userWithHistory(label) {
  const user = await signUp(label);
  const cvs = [await createCv(user), await createCv(user)];
  const preview = await user.call("enrichCVWithExternalData", previewRequest(cvs[0]));
  await rejectsWith(user.call("enrichCVWithExternalData", fullRequest(cvs[0])), "functions/permission-denied");
  await user.call("trackExternalDataUsage", { event: "upgrade_clicked", cvId: cvs[0], source: "linkedin" });
  const premiumAt = Date.now();
  await serverWrite(`users/${user.uid}`, { subscription: PREMIUM });
  await conversionsReach(user.uid, 1);
  // With an idempotencyKey: the first answer (its enrichment result) is stored for retries too.
  const full = await user.call("enrichCVWithExternalData", { ...fullRequest(cvs[1]), idempotencyKey: `sdk-${randomUUID()}` });
  assert.equal(full.access, "full", "premium after the server's write");
  return { user, cvs, premiumAt, requestIds: [preview.requestId, full.requestId] };
}

/** What the SDK (as the user) and the server see of `uid`'s records, for before/after checks. */
async function snapshot({ user, cvs }) {
  const usage = await getDoc(doc(user.db, "external_data_usage", user.uid));
  const events = await getDocs(collection(user.db, "external_data_usage", user.uid, "events"));
  const conversions = await getDocs(collection(user.db, "external_data_usage", user.uid, "conversions"));
  const results = await Promise.all(cvs.map((cvId) => serverList(`cvs/${cvId}/externalData`)));
  const audit = await serverQuery(AUDIT, "uid", user.uid);
  return {
    usage: usage.exists() ? usage.data() : null,
    events: events.docs.map((d) => d.id).sort(),
    conversions: conversions.docs.map((d) => d.id).sort(),
    results: results.map((docs) => docs.map((d) => `${d.path}:${d.data.requestId}`)),
    audit: audit.map((d) => d.path).sort(),
  };
}

/** True when the uid's usage document, events, conversions and its CVs' results are all gone. */
async function nothingStored(uid, cvs) {
  const [usage, events, conversions, ...results] = await Promise.all([
    serverRead(`external_data_usage/${uid}`),
    serverList(`external_data_usage/${uid}/events`),
    serverList(`external_data_usage/${uid}/conversions`),
    ...cvs.map((cvId) => serverList(`cvs/${cvId}/externalData`)),
  ]);
  return usage === null && events.length === 0 && conversions.length === 0 && results.every((r) => r.length === 0);
}

/** Server-side creation of many documents ({path, fields}), 500 to a commit (the REST API's limit). */
async function serverCommit(docs) {
  const url = `${documentUrl("").replace(/\/documents\/$/, "/documents")}:commit`;
  for (let i = 0; i < docs.length; i += 500) {
    await owner("POST", url, {
      writes: docs.slice(i, i + 500).map(({ path, fields }) => ({
        update: { name: new URL(documentUrl(path)).pathname.replace(/^\/v1\//, ""), fields: encode(fields).mapValue.fields },
      })),
    });
  }
}

/** The unsalted digests a "salted hash" must not be (nor start with). */
const unsaltedDigests = (uid) => ["md5", "sha1", "sha256", "sha512"].map((alg) => createHash(alg).update(uid).digest("hex"));

function assertSaltedHashOf(value, uid, label) {
  assert.equal(typeof value, "string", `${label}: uid is a string (${value})`);
  assert.ok(value.length >= 16, `${label}: ${value} is a hash`);
  assert.ok(!value.includes(uid), `${label}: ${value} still carries the uid`);
  for (const digest of unsaltedDigests(uid)) {
    assert.ok(!digest.startsWith(value.toLowerCase()), `${label}: ${value} is an unsalted digest of the uid`);
  }
}

// ------------------------------------------------------------------------------- 2.5 export

describe("exportMyExternalData (contract 2.5)", () => {
  let alice;
  let bob;

  before(async () => {
    // One after the other, since a "socket hang up" failed this hook (answered internal before
    // our code ran). Its cause was the emulator's proxy reusing an idle connection gunicorn had
    // closed, now kept open under the emulator (functions/common/serving.py); the hooks stay
    // sequential until that fix has held over many runs.
    alice = await userWithHistory("export-alice");
    bob = await userWithHistory("export-bob");
  });

  test("answers everything stored about the caller, in the contract's shape", async () => {
    // Every call is recorded as an event, this export too: what is stored just before the export
    // must all be in it, and it may hold nothing that is not stored just after.
    const stats = await alice.user.call("getUserExternalDataUsageStats", {});
    const mine = await snapshot(alice);
    const started = Date.now();
    const answer = await alice.user.call("exportMyExternalData", {});
    const stored = await snapshot(alice);

    assert.equal(answer.userId, alice.user.uid);
    assert.match(answer.generatedAt, ISO_UTC);
    assert.ok(Math.abs(Date.parse(answer.generatedAt) - started) < 60_000, `generatedAt ${answer.generatedAt}`);
    for (const key of ["events", "results", "conversions", "audit"]) {
      assert.ok(Array.isArray(answer[key]), `${key} is a list: ${JSON.stringify(answer[key])?.slice(0, 200)}`);
    }

    // stats: the usage stats, the same counts the stats callable reports.
    assert.equal(typeof answer.stats, "object");
    assert.ok(answer.stats !== null, "stats after three enrichments");
    for (const [key, value] of Object.entries(answer.stats.totals ?? {})) {
      assert.equal(value, stats.totals[key], `stats.totals.${key}`);
    }
    assert.equal(answer.stats.totals?.requests, stats.totals.requests);
    assert.ok(stats.totals.requests >= 3, JSON.stringify(stats.totals));

    // events: every usage and funnel event stored for the user (the ones the user reads).
    const exported = answer.events.map((e) => e.id);
    assert.deepEqual(mine.events.filter((id) => !exported.includes(id)), [], "every stored event is exported");
    assert.deepEqual(exported.filter((id) => !stored.events.includes(id)), [], "every exported event is stored");
    for (const type of ["preview", "gate", "upgrade_clicked", "full"]) {
      assert.ok(answer.events.some((e) => e.type === type), `the ${type} event is there: ${answer.events.map((e) => e.type)}`);
    }

    // results: one per enriched CV, the stored result ({cvId, ...}).
    assert.deepEqual(answer.results.map((r) => r.cvId).sort(), [...alice.cvs].sort());
    for (const [i, cvId] of alice.cvs.entries()) {
      const result = answer.results.find((r) => r.cvId === cvId);
      assert.equal(result.requestId, alice.requestIds[i], `the result of ${cvId}`);
      const stored = await getDoc(doc(alice.user.db, "cvs", cvId, "externalData", "latest"));
      assert.equal(stored.get("requestId"), result.requestId, "the result the CV owner reads");
    }

    // conversions: the one the server recorded, with its time and the funnel before it.
    assert.equal(answer.conversions.length, 1, JSON.stringify(answer.conversions));
    const [conversion] = answer.conversions;
    assert.ok(Date.parse(conversion.at) >= alice.premiumAt - 2000, `conversion at ${conversion.at}`);
    assert.equal(conversion.precededByFunnel, true, JSON.stringify(conversion));

    // audit: the user's security records (the gate's unauthorized_access among them), all theirs.
    assert.ok(answer.audit.length >= 2, JSON.stringify(answer.audit));
    for (const entry of answer.audit) assert.equal(entry.uid, alice.user.uid, JSON.stringify(entry));
    assert.ok(
      answer.audit.some((e) => e.type === "unauthorized_access" && e.reason === "premium_required"),
      `the gate is audited: ${JSON.stringify(answer.audit.map((e) => e.type))}`,
    );
    assert.ok(answer.audit.some((e) => e.type === "access_granted"), "the enrichments are audited");

    // Nothing about anyone else; no e-mail and no raw IP (contract 5).
    const text = JSON.stringify(answer);
    for (const foreign of [bob.user.uid, bob.user.email, ...bob.cvs, ...bob.requestIds]) {
      assert.ok(!text.includes(foreign), `the export carries another user's ${foreign}`);
    }
    assert.ok(!text.includes(alice.user.email), "no e-mail address in what the functions store");
    assert.ok(!text.includes("127.0.0.1"), "no raw IP in what the functions store");
  });

  test("acts on the caller only; an admin may export a user's data for support, audited", async () => {
    await rejectsWith(
      bob.user.call("exportMyExternalData", { userId: alice.user.uid }),
      "functions/permission-denied",
      (e) => assert.ok(!e.message.includes(alice.user.uid), e.message),
    );
    const admin = await signUp("rights-admin", { admin: true });
    const answer = await admin.call("exportMyExternalData", { userId: bob.user.uid });
    assert.equal(answer.userId, bob.user.uid);
    assert.deepEqual(answer.results.map((r) => r.cvId).sort(), [...bob.cvs].sort());
    assert.ok(!JSON.stringify(answer).includes(alice.user.uid));
    // Recorded in the audit, which admins read from the client (contract 5).
    const audit = await getDocs(query(collection(admin.db, AUDIT), where("uid", "==", bob.user.uid)));
    assert.ok(
      audit.docs.some((d) => JSON.stringify(d.data()).includes(admin.uid)),
      `an audit entry about ${bob.user.uid} names the admin: ${JSON.stringify(audit.docs.map((d) => d.data()))}`,
    );
  });

  test("a CV moved to another user: the result stored for the earlier owner stays theirs, not the new owner's", async () => {
    // The server moves a CV to another user (only the server may change userId, contract 5); the
    // result stored for the earlier owner stays under it, and the rules keep it from the new
    // owner (contract 5: only while the stored result's userId is the caller).
    const [first, second] = await Promise.all([signUp("transfer-from", { premium: true }), signUp("transfer-to")]);
    const cvId = await createCv(first);
    await first.call("enrichCVWithExternalData", fullRequest(cvId));
    await serverWrite(`cvs/${cvId}`, { userId: second.uid });
    await rejectsWith(getDoc(doc(second.db, "cvs", cvId, "externalData", "latest")), "permission-denied");
    const answer = await second.call("exportMyExternalData", { userId: second.uid }); // their own uid: allowed
    assert.equal(answer.userId, second.uid);
    // The new owner's export must not carry the earlier owner's result, which contract 5 forbids
    // them to read; the earlier owner's holds it (2.5: everything stored about the user), and
    // their erasure removes it. (Results used to be picked by the CV's current owner.)
    assert.ok(!JSON.stringify(answer).includes(first.uid), JSON.stringify(answer.results));
    const theirs = await first.call("exportMyExternalData", {});
    assert.deepEqual(theirs.results.map((r) => [r.cvId, r.userId]), [[cvId, first.uid]]);
    const erased = await first.call("deleteMyExternalData", {});
    assert.equal(erased.deleted.externalData, 1, JSON.stringify(erased.deleted));
    assert.equal(await serverRead(`cvs/${cvId}/externalData/latest`), null, "the result was erased");
  });

  test("refuses a caller without an ID token: functions/unauthenticated", async () => {
    const anonymous = newClient();
    for (const fn of ["exportMyExternalData", "deleteMyExternalData"]) {
      await rejectsWith(anonymous.call(fn, {}), "functions/unauthenticated");
      await rejectsWith(anonymous.call(fn, { userId: alice.user.uid }), "functions/unauthenticated");
    }
    assert.equal((await conversionsOf(alice.user.uid)).length, 1, "nothing was deleted");
  });

  test("5 calls per user per hour: the 6th export, or the 6th deletion, is functions/resource-exhausted", async () => {
    const [exporter, deleter] = await Promise.all([signUp("export-5"), signUp("delete-5")]);
    for (const [user, fn] of [[exporter, "exportMyExternalData"], [deleter, "deleteMyExternalData"]]) {
      for (let i = 0; i < 5; i++) await user.call(fn, {});
      await rejectsWith(user.call(fn, {}), "functions/resource-exhausted", (e) => {
        assert.equal(e.details?.limit, 5, JSON.stringify(e.details));
        assert.equal(e.details.remaining, 0);
        assert.match(e.details.resetAt, ISO_UTC);
        assert.ok(Number.isInteger(e.details.retryAfterSeconds) && e.details.retryAfterSeconds > 0);
      });
    }
  });
});

// ------------------------------------------------------------------------------- 2.5 delete

describe("deleteMyExternalData (contract 2.5)", () => {
  let alice;
  let bob;

  before(async () => {
    // One after the other, since a "socket hang up" failed this hook (answered internal before
    // our code ran). Its cause was the emulator's proxy reusing an idle connection gunicorn had
    // closed, now kept open under the emulator (functions/common/serving.py); the hooks stay
    // sequential until that fix has held over many runs.
    alice = await userWithHistory("erase-alice");
    bob = await userWithHistory("erase-bob");
  });

  test("erases the caller's records, keeps their audit under a salted hash, leaves others alone", async () => {
    const uid = alice.user.uid;
    const mine = await snapshot(alice);
    const theirs = await snapshot(bob);
    assert.ok(mine.usage && mine.events.length >= 4 && mine.conversions.length === 1, JSON.stringify(mine));
    assert.ok(mine.results.every((r) => r.length === 1), "both CVs have a stored result");
    assert.ok(mine.audit.length >= 2, "the user has audit entries");
    for (const name of ["rate_limits", "external_data_idempotency"]) {
      const held = (await serverList(name)).filter((d) => d.id.includes(uid) || JSON.stringify(d.data).includes(uid));
      assert.ok(held.length >= 1, `the user has documents in ${name}`);
    }

    const erasedAt = Date.now();
    const answer = await alice.user.call("deleteMyExternalData", {});
    // {deleted: {collection: count, ...}}, the counts of what was there.
    assert.equal(typeof answer.deleted, "object", JSON.stringify(answer));
    assert.equal(answer.deleted.external_data_usage, 1, JSON.stringify(answer.deleted));
    assert.equal(answer.deleted.events, mine.events.length, JSON.stringify(answer.deleted));
    assert.equal(answer.deleted.conversions, 1, JSON.stringify(answer.deleted));
    assert.equal(answer.deleted.externalData, 2, JSON.stringify(answer.deleted));
    assert.ok(answer.deleted.rate_limits >= 1, JSON.stringify(answer.deleted));

    // As the user, through the SDK: the usage stats, events and conversions are gone.
    assert.equal((await getDoc(doc(alice.user.db, "external_data_usage", uid))).exists(), false);
    assert.equal((await getDocs(collection(alice.user.db, "external_data_usage", uid, "events"))).size, 0);
    assert.equal((await getDocs(collection(alice.user.db, "external_data_usage", uid, "conversions"))).size, 0);
    // The results: the rules let the owner read a stored result only while its userId is theirs,
    // so a missing one reads as permission-denied, never as the old result.
    for (const cvId of alice.cvs) {
      await rejectsWith(getDoc(doc(alice.user.db, "cvs", cvId, "externalData", "latest")), "permission-denied");
    }
    // As the server: nothing left of usage, events, conversions, results or rate-limit counters.
    assert.ok(await nothingStored(uid, alice.cvs), "usage, events, conversions and results are gone");
    for (const name of ["rate_limits", "external_data_idempotency"]) {
      // Rate-limit counters, and the stored first answers of idempotent retries (a copy of the
      // enrichment result): nothing that names the user is left.
      const left = (await serverList(name)).filter((d) => d.id.includes(uid) || JSON.stringify(d.data).includes(uid));
      assert.deepEqual(left.map((d) => d.path), [], `${name}: nothing of the user is left`);
    }
    // The CVs themselves are the product's data, not the functions' records: they stay.
    for (const cvId of alice.cvs) assert.ok((await getDoc(doc(alice.user.db, "cvs", cvId))).exists());

    // The audit entries stay, each with the uid replaced by one salted hash, and no trace of the uid.
    const naming = (await serverList(AUDIT)).filter((d) => JSON.stringify(d.data).includes(uid));
    assert.deepEqual(naming.map((d) => d.data), [], "no audit entry names the uid any more (the erasure's own included)");
    const kept = await Promise.all(mine.audit.map((path) => serverRead(path)));
    const hashes = new Set();
    for (const [i, entry] of kept.entries()) {
      assert.ok(entry, `audit entry ${mine.audit[i]} was kept`);
      assertSaltedHashOf(entry.uid, uid, mine.audit[i]);
      assert.ok(!JSON.stringify(entry).includes(uid), `${mine.audit[i]} still names the uid: ${JSON.stringify(entry)}`);
      hashes.add(entry.uid);
    }
    assert.equal(hashes.size, 1, `one hash for one uid: ${[...hashes]}`);

    // The other user is untouched.
    assert.deepEqual(await snapshot(bob), theirs, "another user's records are unchanged");

    // A later export shows nothing left (audit entries under the plain uid from before: none).
    const later = await alice.user.call("exportMyExternalData", {});
    assert.equal(later.userId, uid);
    assert.deepEqual([later.events, later.results, later.conversions], [[], [], []], JSON.stringify(later));
    const counts = Object.values(later.stats?.totals ?? {});
    assert.ok(counts.every((n) => n === 0), `stats after the erasure: ${JSON.stringify(later.stats)}`);
    const old = later.audit.filter((e) => Date.parse(e.at) < erasedAt);
    assert.deepEqual(old, [], "no audit entry from before the erasure under the plain uid");
  });

  test("acts on the caller only; an admin may erase a user's records for support", async () => {
    const [target, other] = await Promise.all([userWithHistory("erase-target"), signUp("erase-other")]);
    await rejectsWith(
      other.call("deleteMyExternalData", { userId: target.user.uid }),
      "functions/permission-denied",
      (e) => assert.ok(!e.message.includes(target.user.uid), e.message),
    );
    assert.equal((await conversionsOf(target.user.uid)).length, 1, "the refused call deleted nothing");
    assert.ok(await serverRead(`external_data_usage/${target.user.uid}`), "the refused call deleted nothing");

    const admin = await signUp("erase-admin", { admin: true });
    const answer = await admin.call("deleteMyExternalData", { userId: target.user.uid });
    assert.equal(answer.deleted.external_data_usage, 1, JSON.stringify(answer));
    assert.ok(await nothingStored(target.user.uid, target.cvs), "the admin's erasure removed the user's records");
    // Recorded in the audit: an entry names the admin who acted (the user's uid is hashed there).
    const byAdmin = (await serverList(AUDIT)).filter((d) => JSON.stringify(d.data).includes(admin.uid));
    assert.ok(byAdmin.length >= 1, "the support erasure is audited with the admin");
    assert.ok(byAdmin.every((d) => !JSON.stringify(d.data).includes(target.user.uid)), JSON.stringify(byAdmin.map((d) => d.data)));

    // When the admin's own records are erased, the audit of what they did for support keeps no
    // trace of their uid either.
    await admin.call("deleteMyExternalData", {});
    const naming = (await serverList(AUDIT)).filter((d) => JSON.stringify(d.data).includes(admin.uid));
    assert.deepEqual(naming.map((d) => d.data), [], "no audit entry names the erased admin's uid");
  });

  test("a long history (more events than one Firestore batch takes) is exported and erased whole", async () => {
    // 60 tracked events a minute are allowed (contract 2.2): a heavy user reaches hundreds within
    // the events' lifetime. 650 such events are seeded as the server writes them.
    const heavy = await userWithHistory("erase-heavy");
    const uid = heavy.user.uid;
    const at = Date.now() - 3_600_000;
    const seeded = Array.from({ length: 650 }, (_, i) => ({
      path: `external_data_usage/${uid}/events/sdk-seeded-${String(i).padStart(4, "0")}`,
      fields: { uid, type: "preview_viewed", fn: "trackExternalDataUsage", outcome: "success", at: new Date(at + i * 1000) },
    }));
    await serverCommit(seeded);
    const stored = (await serverList(`external_data_usage/${uid}/events`)).length;
    assert.ok(stored >= 654, `${stored} events stored`);

    const exported = await heavy.user.call("exportMyExternalData", {});
    assert.ok(exported.events.length >= stored, `${exported.events.length} of ${stored} events exported`);
    const answer = await heavy.user.call("deleteMyExternalData", {});
    assert.ok(answer.deleted.events >= stored, JSON.stringify(answer.deleted));
    assert.equal((await serverList(`external_data_usage/${uid}/events`)).length, 0, "every event is erased");
    assert.ok(await nothingStored(uid, heavy.cvs));
  });

  test("deleting users/{uid} runs the same erasure", async () => {
    const gone = await userWithHistory("erase-account");
    const uid = gone.user.uid;
    const audit = (await serverQuery(AUDIT, "uid", uid)).map((d) => d.path);
    assert.ok(audit.length >= 2);
    // Only the server deletes a user document (the rules refuse the user).
    await rejectsWith(deleteDoc(doc(gone.user.db, "users", uid)), "permission-denied");
    await owner("DELETE", documentUrl(`users/${uid}`));
    await eventually("the erasure after users/{uid} was deleted", () => nothingStored(uid, gone.cvs));
    await eventually("the audit kept under the hash", async () => (await serverQuery(AUDIT, "uid", uid)).length === 0);
    for (const path of audit) assertSaltedHashOf((await serverRead(path))?.uid, uid, path);
  });
});

// ------------------------------------------------------------------------------- 5 conversions

describe("conversions from the users/{uid} trigger (contract 5)", () => {
  test("a subscription turning premium is a conversion, with its time and whether a preview or gate preceded it", async () => {
    const admin = await signUp("conversion-admin", { admin: true });
    const analytics = () => admin.call("getExternalDataAnalytics", { startDate: today(), endDate: today() });
    const before_ = (await analytics()).totals.conversions;

    const [previewed, gated, cold] = await Promise.all([signUp("conv-preview"), signUp("conv-gate"), signUp("conv-cold")]);
    // A user without a users/{uid} document (never wrote a profile): the server's write creates it.
    const bare = newClient();
    bare.uid = (await createUserWithEmailAndPassword(bare.auth, `sdk-bare-${randomUUID().slice(0, 8)}@example.test`, `pw-${randomUUID()}`)).user.uid;
    const cv = await createCv(previewed);
    await previewed.call("enrichCVWithExternalData", previewRequest(cv));
    const gatedCv = await createCv(gated);
    await rejectsWith(gated.call("enrichCVWithExternalData", fullRequest(gatedCv)), "functions/permission-denied");

    const users = [[previewed, true], [gated, true], [cold, false], [bare, false]];
    const written = Date.now();
    await Promise.all(users.map(([user]) => serverWrite(`users/${user.uid}`, { subscription: PREMIUM })));
    for (const [user, preceded] of users) {
      const [conversion] = await conversionsReach(user.uid, 1);
      const at = Date.parse(conversion.data.at);
      assert.ok(at >= written - 2000 && at <= Date.now() + 2000, `conversion at ${conversion.data.at}, written ${new Date(written).toISOString()}`);
      assert.equal(conversion.data.precededByFunnel, preceded, `${user.uid}: ${JSON.stringify(conversion.data)}`);
      // The user's own export shows the same (contract 2.5).
      const exported = await user.call("exportMyExternalData", {});
      assert.equal(exported.conversions.length, 1);
      assert.equal(exported.conversions[0].precededByFunnel, preceded);
    }
    // The admin's analytics count them (other tests may add more meanwhile, never fewer).
    const after_ = (await analytics()).totals.conversions;
    assert.ok(after_ >= before_ + users.length, `totals.conversions ${before_} -> ${after_}`);
  });

  test("a preview or gate counts only within the 7 days before the subscription turned premium", async () => {
    // The user's latest preview or gate as the functions store it (external_data_usage/{uid}
    // .lastFunnelAt, README "Configuration"), seeded as the server would have written it.
    const DAY = 86_400_000;
    const [recent, stale] = await Promise.all([signUp("conv-6-days"), signUp("conv-8-days")]);
    await serverWrite(`external_data_usage/${recent.uid}`, { uid: recent.uid, lastFunnelAt: new Date(Date.now() - 6 * DAY) });
    await serverWrite(`external_data_usage/${stale.uid}`, { uid: stale.uid, lastFunnelAt: new Date(Date.now() - 8 * DAY) });
    await Promise.all([recent, stale].map((user) => serverWrite(`users/${user.uid}`, { subscription: PREMIUM })));
    assert.equal((await conversionsReach(recent.uid, 1))[0].data.precededByFunnel, true, "a preview 6 days before");
    assert.equal((await conversionsReach(stale.uid, 1))[0].data.precededByFunnel, false, "a preview 8 days before");
  });

  test("only a subscription turning premium converts: not a renewal, not a recovery within the grace days", async () => {
    const DAY = 86_400_000;
    const user = await signUp("conv-renewals");
    const path = `users/${user.uid}`;
    await serverWrite(path, { subscription: { ...PREMIUM, currentPeriodEnd: new Date(Date.now() + 30 * DAY) } });
    await conversionsReach(user.uid, 1);
    // Still premium all along: past_due within the grace days, recovered, renewed.
    await serverWrite(path, { subscription: { tier: "premium", status: "past_due", currentPeriodEnd: new Date(Date.now() - DAY) } });
    await serverWrite(path, { subscription: { ...PREMIUM, currentPeriodEnd: new Date(Date.now() + 30 * DAY) } });
    await serverWrite(path, { subscription: { ...PREMIUM, currentPeriodEnd: new Date(Date.now() + 60 * DAY) } });
    // Canceled, then premium again: it turns premium, the second conversion. Whatever order
    // the trigger runs the writes in, a conversion from the writes above would be counted by
    // the time this one is seen only if recorded before it; seen after, it would be a third.
    await serverWrite(path, { subscription: { tier: "premium", status: "canceled" } });
    await serverWrite(path, { subscription: PREMIUM });
    const conversions = await conversionsReach(user.uid, 2);
    assert.equal(conversions.length, 2, JSON.stringify(conversions.map((c) => c.data)));
    // past_due beyond the 3 grace days is free (contract 1): paying again turns premium.
    await serverWrite(path, { subscription: { tier: "premium", status: "past_due", currentPeriodEnd: new Date(Date.now() - 4 * DAY) } });
    await serverWrite(path, { subscription: { ...PREMIUM, currentPeriodEnd: new Date(Date.now() + 30 * DAY) } });
    assert.equal((await conversionsReach(user.uid, 3)).length, 3);
  });

  test("a client writing its own subscription is refused and records no conversion", async () => {
    const user = await signUp("conv-forger");
    const cvId = await createCv(user);
    await user.call("enrichCVWithExternalData", previewRequest(cvId)); // a funnel event: a conversion would be counted
    await rejectsWith(updateDoc(doc(user.db, "users", user.uid), { subscription: PREMIUM }), "permission-denied");
    await rejectsWith(setDoc(doc(user.db, "users", user.uid), { subscription: { ...PREMIUM, lifetime: true } }, { merge: true }), "permission-denied");
    // Client claims are events, never conversions (contract 2.2).
    assert.equal((await user.call("trackExternalDataUsage", { event: "upgrade_completed_view" })).recorded, true);
    // Still free for the functions.
    await rejectsWith(user.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/permission-denied");

    // The server's write now records the one conversion; the trigger runs in write order, so a
    // conversion from the refused writes would have been stored before it.
    const written = Date.now();
    await serverWrite(`users/${user.uid}`, { subscription: PREMIUM });
    const conversions = await conversionsReach(user.uid, 1);
    assert.equal(conversions.length, 1, JSON.stringify(conversions));
    assert.ok(Date.parse(conversions[0].data.at) >= written - 2000, "the conversion is the server write's");
  });
});

// ------------------------------------------------------------------------------- 5 CV deletion

describe("deleting a CV (contract 5)", () => {
  test("deletes its externalData, and only that CV's", async () => {
    const user = await signUp("cv-deleter", { premium: true });
    const [doomed, kept] = [await createCv(user), await createCv(user)];
    const results = await Promise.all([doomed, kept].map((cvId) => user.call("enrichCVWithExternalData", fullRequest(cvId))));
    assert.equal((await serverList(`cvs/${doomed}/externalData`)).length, 1);

    await deleteDoc(doc(user.db, "cvs", doomed));
    await eventually("the deleted CV's externalData is gone", async () => (await serverList(`cvs/${doomed}/externalData`)).length === 0);
    const latest = await getDoc(doc(user.db, "cvs", kept, "externalData", "latest"));
    assert.equal(latest.get("requestId"), results[1].requestId, "the other CV's result stays");
  });
});
