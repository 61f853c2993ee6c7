// The product as its users reach it: the official Firebase JavaScript SDK (`firebase`, pinned in
// package.json) against the Emulator Suite. Written from the contract's sections 1 (who is who),
// 2 (the callables) and 5 (what is recorded, who reads it); docs/api.md for what it leaves there.
//
// Run under scripts/with-emulators.sh, which exports FIRESTORE_EMULATOR_HOST,
// FIREBASE_AUTH_EMULATOR_HOST, FUNCTIONS_BASE_URL and GCLOUD_PROJECT; make test runs this file
// through tests/emulator/test_sdk_client.py. Users sign up through the SDK (e-mail/password or
// anonymously) and create their own profiles and CVs through it, as the rules allow; what only
// the server may write (a premium subscription, the admin claim, the rollout config) is written
// with the emulators' owner credentials, which bypass the rules like the Admin SDK. The clients
// and those helpers are in helpers.mjs, shared with rights.test.mjs.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";

import { createUserWithEmailAndPassword, signInAnonymously } from "firebase/auth";
import {
  collection,
  deleteDoc,
  doc,
  getDoc,
  getDocs,
  limit,
  query,
  setDoc,
  updateDoc,
} from "firebase/firestore";

import {
  FNS,
  ISO_UTC,
  LINKEDIN_EXPORT,
  assertCounts,
  assertUsage,
  closeClients,
  containsLocked,
  createCv,
  ensureGatedConfig,
  eventually,
  fullRequest,
  lists,
  newClient,
  previewRequest,
  rejectsWith,
  serverRead,
  serverWrite,
  setClaims,
  signUp,
  sleep,
  today,
} from "./helpers.mjs";

before(ensureGatedConfig);
after(closeClients);

// ------------------------------------------------------------------------------- 2: every callable

describe("every callable", () => {
  test("refuses a caller without an ID token: functions/unauthenticated", async () => {
    const anonymous = newClient(); // never signed in: no token is sent
    for (const fn of FNS) {
      const request = {
        enrichCVWithExternalData: { cvId: "sdk-any-cv", mode: "preview" },
        trackExternalDataUsage: { event: "feature_discovered" },
        getUserExternalDataUsageStats: {},
        getExternalDataAnalytics: { startDate: today(), endDate: today() },
      }[fn];
      await rejectsWith(anonymous.call(fn, request), "functions/unauthenticated");
    }
  });
});

// ------------------------------------------------------------------------------- 1: who is who

describe("who is premium, who is admin (contract 1)", () => {
  const DAY = 86_400_000;
  const cases = [
    ["active", { tier: "premium", status: "active" }, true],
    ["trialing until next week", { tier: "premium", status: "trialing", currentPeriodEnd: new Date(Date.now() + 7 * DAY) }, true],
    ["active but the period ended", { tier: "premium", status: "active", currentPeriodEnd: new Date(Date.now() - DAY) }, false],
    ["past_due 1 day (grace 3 days)", { tier: "premium", status: "past_due", currentPeriodEnd: new Date(Date.now() - DAY) }, true],
    ["past_due 4 days", { tier: "premium", status: "past_due", currentPeriodEnd: new Date(Date.now() - 4 * DAY) }, false],
    ["canceled", { tier: "premium", status: "canceled", currentPeriodEnd: new Date(Date.now() + 7 * DAY) }, false],
    ["lifetime", { tier: "premium", status: "canceled", lifetime: true }, true],
    ["free tier, lifetime", { tier: "free", status: "active", lifetime: true }, false],
  ];

  test("premium comes from users/{uid}.subscription as the contract defines it", async () => {
    await Promise.all(cases.map(async ([label, subscription, premium]) => {
      const user = await signUp(`sub-${label.split(" ")[0]}`);
      await serverWrite(`users/${user.uid}`, { subscription });
      const cvId = await createCv(user);
      const request = user.call("enrichCVWithExternalData", fullRequest(cvId));
      if (premium) {
        const answer = await request;
        assert.equal(answer.access, "full", label);
        assert.equal(answer.usage.tier, "premium", label);
      } else {
        await rejectsWith(request, "functions/permission-denied", (e) =>
          assert.equal(e.details?.reason, "premium_required", label),
        );
      }
    }));
  });

  test("a user without a users/{uid} document is free", async () => {
    const client = newClient();
    const { user } = await createUserWithEmailAndPassword(client.auth, `sdk-nodoc-${randomUUID().slice(0, 8)}@example.test`, `pw-${randomUUID()}`);
    client.uid = user.uid;
    const cvId = await createCv(client);
    await rejectsWith(client.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/permission-denied");
    const preview = await client.call("enrichCVWithExternalData", previewRequest(cvId));
    assert.equal(preview.usage.tier, "free");
  });

  test("custom claims never make anyone premium; a role field never makes an admin", async () => {
    const user = await signUp("claims");
    await setClaims(user.uid, { premium: true, tier: "premium", subscription: { tier: "premium", status: "active" } });
    await user.auth.currentUser.getIdToken(true);
    const cvId = await createCv(user);
    await rejectsWith(user.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/permission-denied", (e) =>
      assert.equal(e.details?.reason, "premium_required"),
    );
    const roleAdmin = await signUp("role-admin");
    await serverWrite(`users/${roleAdmin.uid}`, { role: "admin" });
    await rejectsWith(
      roleAdmin.call("getExternalDataAnalytics", { startDate: today(), endDate: today() }),
      "functions/permission-denied",
    );
    await rejectsWith(getDoc(doc(roleAdmin.db, "config", "externalDataRollout")), "permission-denied");
  });
});

// ------------------------------------------------------------------------------- 2.1 enrich

describe("enrichCVWithExternalData", () => {
  test("a malformed request is functions/invalid-argument with details.field naming the field", async () => {
    const user = await signUp("malformed");
    const cvId = await createCv(user);
    const cases = [
      [{ cvId, sources: ["github", "friendster"] }, "sources"],
      [{ cvId, mode: "everything" }, "mode"],
      [{ cvId: "../not an id", mode: "preview" }, "cvId"],
      [{ cvId: "x".repeat(129), mode: "preview" }, "cvId"],
      [{ cvId, mode: "preview", sources: ["website"], website: "ftp://example.test/" }, "website"],
      [{ cvId, mode: "preview", options: { timeoutMs: 999 } }, "options"],
      [{ cvId, mode: "preview", idempotencyKey: "short" }, "idempotencyKey"],
      [{ cvId, mode: "preview", sources: ["github"], github: "lone \ud800 surrogate" }, "github"],
      [{ cvId, mode: "preview", sources: ["web"], name: "x".repeat(200_000) }, "name"],
      [{ cvId, mode: "preview", sources: ["web"], name: JSON.parse(`${"[".repeat(300)}${"]".repeat(300)}`) }, "name"],
      [{ cvId, mode: "preview", sources: ["website"], website: "http://exa mple.test/\u0000" }, "website"],
      [{ cvId, mode: "preview", sources: ["linkedin"], linkedin: { export: "Profile.csv" } }, "linkedin"],
    ];
    for (const [request, field] of cases) {
      await rejectsWith(user.call("enrichCVWithExternalData", request), "functions/invalid-argument", (e) => {
        assert.ok(
          e.details?.field === field || e.details?.field?.startsWith(`${field}.`),
          `${JSON.stringify(request).slice(0, 80)}: details ${JSON.stringify(e.details)}, expected field ${field}`,
        );
      });
    }
  });

  test("a missing CV and another user's CV get the same functions/not-found", async () => {
    const alice = await signUp("alice", { premium: true });
    const bob = await signUp("bob");
    const bobCv = await createCv(bob);
    const missingCv = await rejectsWith(
      alice.call("enrichCVWithExternalData", fullRequest(`sdk-no-such-cv-${randomUUID()}`)),
      "functions/not-found",
    );
    const foreignCv = await rejectsWith(alice.call("enrichCVWithExternalData", fullRequest(bobCv)), "functions/not-found");
    assert.equal(foreignCv.message, missingCv.message, "one answer for both, so ids cannot be probed");
    assert.deepEqual(foreignCv.details, missingCv.details);
    for (const secret of [bob.uid, bob.email, alice.email, "cvs/"]) {
      assert.ok(!foreignCv.message.includes(secret), `message leaks ${secret}: ${foreignCv.message}`);
    }
  });

  test("a free user gets a trimmed preview and is refused full with the premium gate", async () => {
    const user = await signUp("free");
    const cvId = await createCv(user);

    const preview = await user.call("enrichCVWithExternalData", previewRequest(cvId));
    assert.equal(preview.access, "preview");
    assert.equal(preview.status, "success");
    assert.equal(typeof preview.requestId, "string");
    for (const [path, list] of lists(preview.enrichedData)) {
      assert.ok(list.length <= 3, `preview list enrichedData${path} has ${list.length} items`);
    }
    assert.ok(Array.isArray(preview.enrichedData.skills) && preview.enrichedData.skills.length > 0);
    assert.ok(containsLocked(preview.enrichedData), "a trimmed section carries locked: true");
    for (const key of ["preview", "gate", "upgrade"]) {
      assert.equal(typeof preview.messages?.[key], "string", `messages.${key}`);
    }
    assertUsage(preview.usage, { tier: "free", limit: 3, remaining: 2 });

    await rejectsWith(user.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/permission-denied", (e) => {
      assert.equal(e.details?.reason, "premium_required");
      assert.ok(typeof e.details.upgradeUrl === "string" && e.details.upgradeUrl.length > 0, "details.upgradeUrl");
      assert.ok(typeof e.details.message === "string" && e.details.message.length > 0, "details.message");
    });
    // mode defaults to "full": also the gate.
    await rejectsWith(
      user.call("enrichCVWithExternalData", { cvId, sources: ["linkedin"], linkedin: { export: LINKEDIN_EXPORT } }),
      "functions/permission-denied",
      (e) => assert.equal(e.details?.reason, "premium_required"),
    );

    // The refusals consumed no quota (contract 4).
    const again = await user.call("enrichCVWithExternalData", previewRequest(cvId));
    assertUsage(again.usage, { tier: "free", limit: 3, remaining: 1 });
  });

  test("a premium user gets the full answer, or a preview when asking for one", async () => {
    const user = await signUp("premium", { premium: true });
    const cvId = await createCv(user);

    const full = await user.call("enrichCVWithExternalData", fullRequest(cvId));
    assert.equal(full.access, "full");
    assert.equal(full.status, "success");
    assert.equal(typeof full.requestId, "string");
    assert.ok(full.requestId.length > 0);
    assert.equal(typeof full.durationMs, "number");
    assert.equal(typeof full.enrichedData.linkedin, "object");
    assert.ok(Array.isArray(full.enrichedData.skills) && full.enrichedData.skills.length > 3, "7 skills, not trimmed");
    assert.ok(Array.isArray(full.enrichedData.projects));
    assert.ok(!containsLocked(full), "nothing is locked in a full answer");
    assert.equal(full.sources.length, 1);
    const [linkedin] = full.sources;
    assert.equal(linkedin.source, "linkedin");
    assert.equal(linkedin.status, "success");
    assert.ok(linkedin.items > 0);
    assert.equal(typeof linkedin.durationMs, "number");
    assert.equal(typeof linkedin.cached, "boolean");
    assert.equal(linkedin.error, undefined);
    assertUsage(full.usage, { tier: "premium", limit: 100, remaining: 99 });
    assert.equal(typeof full.messages, "object");

    const preview = await user.call("enrichCVWithExternalData", {
      ...previewRequest(cvId),
      sources: ["linkedin", "linkedin"], // duplicates ignored
    });
    assert.equal(preview.access, "preview");
    assert.equal(preview.usage.tier, "premium");
    assert.deepEqual(preview.sources.map((x) => x.source), ["linkedin"]);
    for (const [path, list] of lists(preview.enrichedData)) {
      assert.ok(list.length <= 3, `preview list enrichedData${path} has ${list.length} items`);
    }

    const stats = await user.call("getUserExternalDataUsageStats", {});
    assert.equal(stats.userId, user.uid);
    assert.equal(stats.tier, "premium");
    assert.equal(stats.totals.requests, 2);
    assert.equal(stats.totals.successful, 2);
    assert.equal(stats.totals.full, 1);
    assert.equal(stats.totals.previews, 1);
    assert.deepEqual(stats.bySource.linkedin, { requests: 2, successful: 2, failed: 0 });
    assert.equal(stats.hourly.limit, 100);
    assert.equal(stats.hourly.used, 2);
    assert.equal(stats.hourly.remaining, 98);
    assert.ok(stats.lastUsedAt, "lastUsedAt is set after an enrichment");
  });

  test("a field set to undefined is sent as null by the SDK and means the field is absent", async () => {
    const user = await signUp("undefined", { premium: true });
    const cvId = await createCv(user);
    const out = await user.call("enrichCVWithExternalData", {
      ...fullRequest(cvId),
      mode: undefined, // default "full"
      github: undefined,
      website: undefined,
      name: undefined,
      idempotencyKey: undefined,
      options: { forceRefresh: undefined, timeoutMs: undefined },
    });
    assert.equal(out.access, "full");
    assert.equal(out.status, "success");
    const stats = await user.call("getUserExternalDataUsageStats", { userId: undefined });
    assert.equal(stats.userId, user.uid);
  });

  test("the next call after a CV's deletion is functions/not-found, and writes nothing under it", async () => {
    // The instance keeps a copy of the CV's owner; it may not outlive the CV (contract 2.1:
    // only the owner may enrich it; a missing CV is not-found).
    const user = await signUp("cv-deleted", { premium: true });
    const cvId = await createCv(user);
    assert.equal((await user.call("enrichCVWithExternalData", fullRequest(cvId))).access, "full");
    await deleteDoc(doc(user.db, "cvs", cvId));
    await rejectsWith(user.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/not-found");
    // The deletion trigger removes the first result; the refused call wrote no new one.
    const result = `cvs/${cvId}/externalData/latest`;
    await eventually("the deleted CV's result removed", async () => (await serverRead(result)) === null);
    const again = await user.call("enrichCVWithExternalData", fullRequest(await createCv(user)));
    // The refusal took no unit: 1 of the premium hour's was used before this call.
    assertUsage(again.usage, { tier: "premium", limit: 100, remaining: 98 });
  });

  test("the fourth free enrichment in the hour is functions/resource-exhausted with the limit's details", async () => {
    const user = await signUp("ratelimited");
    const cvId = await createCv(user);
    for (const remaining of [2, 1, 0]) {
      const answer = await user.call("enrichCVWithExternalData", previewRequest(cvId));
      assertUsage(answer.usage, { tier: "free", limit: 3, remaining });
    }
    const started = Date.now();
    await rejectsWith(user.call("enrichCVWithExternalData", previewRequest(cvId)), "functions/resource-exhausted", (e) => {
      const d = e.details;
      assert.equal(d?.tier, "free");
      assert.equal(d.limit, 3);
      assert.equal(d.remaining, 0);
      assert.match(d.resetAt, ISO_UTC);
      assert.ok(Date.parse(d.resetAt) > started - 1000, `resetAt ${d.resetAt} is ahead`);
      assert.ok(Number.isInteger(d.retryAfterSeconds) && d.retryAfterSeconds > 0, `retryAfterSeconds ${d.retryAfterSeconds}`);
      // A weighted pair of hour windows frees the next slot within two hours at most, ...
      assert.ok(d.retryAfterSeconds <= 7200, `retryAfterSeconds ${d.retryAfterSeconds}`);
      // ... at resetAt: both say when the next call will be admitted.
      const gap = Math.abs(Date.parse(d.resetAt) - (Date.now() + d.retryAfterSeconds * 1000));
      assert.ok(gap <= 5000, `resetAt ${d.resetAt} vs retryAfterSeconds ${d.retryAfterSeconds}`);
    });
    const stats = await user.call("getUserExternalDataUsageStats", {});
    assert.equal(stats.totals.rateLimited, 1);
    assert.equal(stats.hourly.remaining, 0);
  });

  test("a retry with the same idempotencyKey gets the first answer and uses no quota", async () => {
    const user = await signUp("idempotent", { premium: true });
    const cvId = await createCv(user);
    const idempotencyKey = `sdk-${randomUUID()}`;
    const first = await user.call("enrichCVWithExternalData", { ...fullRequest(cvId), idempotencyKey });
    const retry = await user.call("enrichCVWithExternalData", { ...fullRequest(cvId), idempotencyKey });
    assert.equal(retry.requestId, first.requestId);
    assert.equal(retry.usage.remaining, first.usage.remaining);
    const stats = await user.call("getUserExternalDataUsageStats", {});
    assert.equal(stats.hourly.used, 1, "the retry consumed no quota");
    await rejectsWith(
      user.call("enrichCVWithExternalData", { ...previewRequest(cvId), idempotencyKey }),
      "functions/invalid-argument",
    );
  });
});

// ------------------------------------------------------------------------------- 2.2 track

describe("trackExternalDataUsage", () => {
  test("records the caller's event under the token's uid, whatever userId says", async () => {
    const user = await signUp("tracker");
    const victim = await signUp("victim");
    const answer = await user.call("trackExternalDataUsage", {
      event: "upgrade_clicked",
      userId: victim.uid,
      source: "linkedin",
      metadata: { button: "header" },
    });
    assert.equal(answer.recorded, true);
    assert.ok(typeof answer.eventId === "string" && answer.eventId.length > 0);
    // Each reads their own events (contract 5): the event is the caller's, never the victim's.
    const mine = await getDocs(collection(user.db, "external_data_usage", user.uid, "events"));
    assert.ok(mine.size >= 1, "the caller's events hold it");
    const theirs = await getDocs(collection(victim.db, "external_data_usage", victim.uid, "events"));
    assert.equal(theirs.size, 0, "nothing was recorded for the userId in the request");
  });

  test("an anonymous Firebase user is a user: their event is recorded", async () => {
    const guest = newClient();
    await signInAnonymously(guest.auth);
    const answer = await guest.call("trackExternalDataUsage", { event: "feature_discovered" });
    assert.equal(answer.recorded, true);
  });

  test("an unknown event or oversized metadata is functions/invalid-argument naming the field", async () => {
    const user = await signUp("badevent");
    await rejectsWith(user.call("trackExternalDataUsage", { event: "bought_a_boat" }), "functions/invalid-argument", (e) =>
      assert.equal(e.details?.field, "event"),
    );
    await rejectsWith(
      user.call("trackExternalDataUsage", { event: "gate_shown", metadata: { blob: "x".repeat(3000) } }),
      "functions/invalid-argument",
      (e) => assert.ok(e.details?.field?.startsWith("metadata"), JSON.stringify(e.details)),
    );
  });

  test("the 61st event in a minute is functions/resource-exhausted", async () => {
    // 60 per minute on a sliding window (a weighted pair of fixed UTC minutes): the 61st is
    // refused for certain only when all 61 calls fall in one minute. A run that crossed a minute
    // boundary is repeated once with a new user (it can cross at most one of the two).
    const minute = () => Math.floor(Date.now() / 60_000);
    for (let attempt = 1; ; attempt++) {
      if (new Date().getUTCSeconds() >= 55) await sleep((61 - new Date().getUTCSeconds()) * 1000);
      const user = await signUp("chatty");
      const first = minute();
      const answers = [];
      for (let batch = 0; batch < 6; batch++) {
        answers.push(
          ...(await Promise.all(
            Array.from({ length: 10 }, () => user.call("trackExternalDataUsage", { event: "preview_viewed" })),
          )),
        );
      }
      assert.equal(answers.filter((a) => a.recorded === true).length, 60);
      const refused = user.call("trackExternalDataUsage", { event: "preview_viewed" });
      await refused.catch(() => {}); // settled before the clock is read
      if (minute() !== first && attempt === 1) continue;
      await rejectsWith(refused, "functions/resource-exhausted", (e) => {
        assert.equal(e.details?.remaining, 0);
        assert.equal(e.details.limit, 60);
        assert.ok(e.details.retryAfterSeconds > 0);
      });
      return;
    }
  });
});

// ------------------------------------------------------------------------------- 2.3 stats

describe("getUserExternalDataUsageStats", () => {
  test("a user with no history gets zeros, never null or NaN counts", async () => {
    const user = await signUp("fresh");
    const stats = await user.call("getUserExternalDataUsageStats", {});
    assert.equal(stats.userId, user.uid);
    assert.equal(stats.tier, "free");
    assertCounts(stats.totals, ["requests", "successful", "failed", "previews", "full", "rateLimited"], "totals");
    assert.ok(Object.values(stats.totals).every((v) => v === 0), JSON.stringify(stats.totals));
    for (const source of ["github", "linkedin", "website", "web"]) {
      assert.deepEqual(stats.bySource[source], { requests: 0, successful: 0, failed: 0 }, source);
    }
    assert.equal(stats.averageDurationMs, 0);
    assert.equal(stats.hourly.limit, 3);
    assert.equal(stats.hourly.used, 0);
    assert.equal(stats.hourly.remaining, 3);
    assert.match(stats.hourly.resetAt, ISO_UTC);
    // No argument at all is the same request.
    assert.equal((await user.call("getUserExternalDataUsageStats")).userId, user.uid);
  });

  test("a user may ask only about themselves; an admin about anyone", async () => {
    const user = await signUp("curious");
    const other = await signUp("private");
    const admin = await signUp("admin", { admin: true });
    await rejectsWith(
      user.call("getUserExternalDataUsageStats", { userId: other.uid }),
      "functions/permission-denied",
      (e) => assert.ok(!e.message.includes(other.uid) && !e.message.includes(other.email), e.message),
    );
    assert.equal((await user.call("getUserExternalDataUsageStats", { userId: user.uid })).userId, user.uid);
    const seen = await admin.call("getUserExternalDataUsageStats", { userId: other.uid });
    assert.equal(seen.userId, other.uid);
    assert.equal(seen.tier, "free");
  });
});

// ------------------------------------------------------------------------------- 2.4 analytics

describe("getExternalDataAnalytics", () => {
  test("an admin gets the period's figures: counts, rates in 0..1, latency, series, security", async () => {
    const admin = await signUp("analyst", { admin: true });
    const day = today();
    const answer = await admin.call("getExternalDataAnalytics", { startDate: day, endDate: day });
    assert.equal(answer.period.startDate, day);
    assert.equal(answer.period.endDate, day);
    assert.equal(answer.period.granularity, "day");
    assertCounts(
      answer.totals,
      ["requests", "successful", "failed", "premiumRequests", "freeRequests", "previews", "fullRequests",
        "gateShown", "upgradeClicks", "conversions", "rateLimited", "unauthorizedAttempts"],
      "totals",
    );
    // This run's own calls are in today's figures.
    assert.ok(answer.totals.requests > 0 && answer.totals.previews > 0 && answer.totals.gateShown > 0, JSON.stringify(answer.totals));
    for (const rate of ["successRate", "errorRate", "conversionRate", "previewEngagementRate"]) {
      const value = answer.rates[rate];
      assert.ok(typeof value === "number" && value >= 0 && value <= 1, `rates.${rate} = ${value}`);
    }
    assertCounts(answer.latencyMs, ["p50", "p95", "p99"], "latencyMs");
    assert.equal(typeof answer.bySource, "object");
    assert.ok(Array.isArray(answer.series) && answer.series.length >= 1);
    for (const bucket of answer.series) {
      assert.ok(bucket.bucket, JSON.stringify(bucket));
      assertCounts(bucket, ["requests", "errors", "p95Ms"], "series[]");
    }
    assertCounts(answer.security, ["unauthorizedAttempts", "rateLimitViolations", "suspiciousActivity"], "security");

    const hourly = await admin.call("getExternalDataAnalytics", { startDate: day, endDate: day, granularity: "hour" });
    assert.equal(hourly.period.granularity, "hour");
  });

  test("an empty period has rates of 0, never NaN", async () => {
    const admin = await signUp("historian", { admin: true });
    const answer = await admin.call("getExternalDataAnalytics", { startDate: "1999-01-01", endDate: "1999-01-31" });
    assert.equal(answer.totals.requests, 0);
    for (const [rate, value] of Object.entries(answer.rates)) assert.equal(value, 0, `rates.${rate}`);
  });

  test("anyone but an admin is functions/permission-denied, premium users included", async () => {
    const day = today();
    for (const user of [await signUp("nosy"), await signUp("nosy-premium", { premium: true })]) {
      await rejectsWith(
        user.call("getExternalDataAnalytics", { startDate: day, endDate: day }),
        "functions/permission-denied",
      );
    }
  });

  test("a bad period is functions/invalid-argument", async () => {
    const admin = await signUp("sloppy", { admin: true });
    await rejectsWith(
      admin.call("getExternalDataAnalytics", { startDate: "yesterday", endDate: today() }),
      "functions/invalid-argument",
      (e) => assert.equal(e.details?.field, "startDate"),
    );
    for (const request of [
      { startDate: "2026-03-10", endDate: "2026-03-09" }, // end before start
      { startDate: "2026-01-01", endDate: "2026-04-03" }, // 93 days
      { startDate: "2026-03-01", endDate: "2026-03-09", granularity: "hour" }, // hours over 7 days
      { startDate: "2026-03-01", endDate: "2026-03-02", granularity: "week" },
    ]) {
      await rejectsWith(admin.call("getExternalDataAnalytics", request), "functions/invalid-argument", (e) =>
        assert.ok(["startDate", "endDate", "granularity"].includes(e.details?.field), `${JSON.stringify(request)}: ${JSON.stringify(e.details)}`),
      );
    }
  });
});

// ------------------------------------------------------------------------------- 1 and 5: Firestore

describe("Firestore from the client (contract 5)", () => {
  let owner_; // premium user with an enriched CV
  let ownerCv;
  let stranger;
  let admin;
  let requestId;

  before(async () => {
    [owner_, stranger, admin] = await Promise.all([
      signUp("reader", { premium: true }),
      signUp("stranger"),
      signUp("reader-admin", { admin: true }),
    ]);
    ownerCv = await createCv(owner_);
    ({ requestId } = await owner_.call("enrichCVWithExternalData", fullRequest(ownerCv)));
  });

  const denied = (promise) => rejectsWith(promise, "permission-denied");

  test("a user reads their own usage stats and events", async () => {
    const stats = await getDoc(doc(owner_.db, "external_data_usage", owner_.uid));
    assert.ok(stats.exists(), "external_data_usage/{uid} exists after an enrichment");
    const events = await getDocs(collection(owner_.db, "external_data_usage", owner_.uid, "events"));
    assert.ok(events.size >= 1);
    // Usage analytics store no e-mail (contract 5).
    const text = JSON.stringify([stats.data(), ...events.docs.map((d) => d.data())]);
    assert.ok(!text.includes(owner_.email), "no e-mail in the usage records");
  });

  test("the CV owner reads their CV's enrichment result", async () => {
    const latest = await getDoc(doc(owner_.db, "cvs", ownerCv, "externalData", "latest"));
    assert.ok(latest.exists(), "cvs/{cvId}/externalData/latest exists");
    assert.equal(latest.get("requestId"), requestId);
    assert.equal(latest.get("userId"), owner_.uid);
  });

  test("nobody else reads a user's usage or results; admins read usage only", async () => {
    await denied(getDoc(doc(stranger.db, "external_data_usage", owner_.uid)));
    await denied(getDocs(collection(stranger.db, "external_data_usage", owner_.uid, "events")));
    await denied(getDoc(doc(stranger.db, "cvs", ownerCv, "externalData", "latest")));
    await denied(getDoc(doc(stranger.db, "cvs", ownerCv)));
    const seenByAdmin = await getDoc(doc(admin.db, "external_data_usage", owner_.uid));
    assert.ok(seenByAdmin.exists(), "admins read usage stats");
    // Results: the CV owner only (contract 5 names no one else).
    await denied(getDoc(doc(admin.db, "cvs", ownerCv, "externalData", "latest")));
  });

  test("nobody reads rate_limits or the source cache, admins included", async () => {
    for (const client of [owner_, stranger, admin]) {
      await denied(getDocs(query(collection(client.db, "rate_limits"), limit(1))));
      await denied(getDocs(query(collection(client.db, "external_data_cache"), limit(1))));
    }
    await denied(getDoc(doc(owner_.db, "rate_limits", `${owner_.uid}_enrich`)));
    await denied(getDoc(doc(admin.db, "external_data_cache", "linkedin")));
  });

  test("admins read metrics, audit and config; users do not", async () => {
    const config = await getDoc(doc(admin.db, "config", "externalDataRollout"));
    assert.equal(config.get("phase"), "full");
    await getDocs(query(collection(admin.db, "external_data_security_audit"), limit(1)));
    await getDocs(query(collection(admin.db, "external_data_metrics"), limit(1)));
    await denied(getDoc(doc(owner_.db, "config", "externalDataRollout")));
    await denied(getDocs(query(collection(owner_.db, "external_data_security_audit"), limit(1))));
    await denied(getDocs(query(collection(owner_.db, "external_data_metrics"), limit(1))));
  });

  test("no client writes a server-owned collection, admins included", async () => {
    const writes = (client) => [
      setDoc(doc(client.db, "external_data_usage", client.uid), { totals: { requests: 0 } }),
      setDoc(doc(client.db, "external_data_usage", client.uid, "events", "forged"), { type: "conversion" }),
      setDoc(doc(client.db, "external_data_usage", client.uid, "conversions", "forged"), { at: new Date() }),
      setDoc(doc(client.db, "cvs", ownerCv, "externalData", "latest"), { userId: client.uid }),
      setDoc(doc(client.db, "rate_limits", `${client.uid}_enrich_0`), { count: 0 }),
      setDoc(doc(client.db, "external_data_cache", "forged"), { data: "x" }),
      setDoc(doc(client.db, "external_data_metrics", "forged"), { requests: 1 }),
      setDoc(doc(client.db, "external_data_security_audit", "forged"), { type: "access_granted" }),
      setDoc(doc(client.db, "config", "externalDataRollout"), { phase: "off" }),
    ];
    for (const client of [owner_, admin]) {
      for (const write of writes(client)) await denied(write);
    }
    await denied(deleteDoc(doc(owner_.db, "cvs", ownerCv, "externalData", "latest")));
    await denied(updateDoc(doc(owner_.db, "external_data_usage", owner_.uid), { "totals.requests": 0 }));
    // The result is still there, untouched.
    const latest = await getDoc(doc(owner_.db, "cvs", ownerCv, "externalData", "latest"));
    assert.equal(latest.get("requestId"), requestId);
  });

  test("a user edits their profile but never subscription, rolloutGroups or role", async () => {
    const me = stranger;
    await updateDoc(doc(me.db, "users", me.uid), { displayName: "Renamed" }); // allowed
    await denied(updateDoc(doc(me.db, "users", me.uid), { subscription: { tier: "premium", status: "active" } }));
    await denied(setDoc(doc(me.db, "users", me.uid), { subscription: { tier: "premium", status: "active", lifetime: true } }, { merge: true }));
    await denied(updateDoc(doc(me.db, "users", me.uid), { "subscription.tier": "premium" }));
    await denied(updateDoc(doc(me.db, "users", me.uid), { rolloutGroups: ["beta-testers"] }));
    await denied(updateDoc(doc(me.db, "users", me.uid), { role: "admin" }));
    // A new user cannot create their profile with a subscription either.
    const newcomer = newClient();
    const { user } = await createUserWithEmailAndPassword(newcomer.auth, `sdk-new-${randomUUID().slice(0, 8)}@example.test`, `pw-${randomUUID()}`);
    await denied(setDoc(doc(newcomer.db, "users", user.uid), { displayName: "New", subscription: { tier: "premium", status: "active" } }));
    // ... nor write another user's profile.
    await denied(setDoc(doc(newcomer.db, "users", owner_.uid), { displayName: "Hijacked" }, { merge: true }));
    // Still free as far as the functions are concerned.
    const cvId = await createCv(me);
    await rejectsWith(me.call("enrichCVWithExternalData", fullRequest(cvId)), "functions/permission-denied", (e) =>
      assert.equal(e.details?.reason, "premium_required"),
    );
  });

  test("a user creates and edits their own CV, never as someone else and never changing userId", async () => {
    const me = stranger;
    const cvId = await createCv(me);
    await updateDoc(doc(me.db, "cvs", cvId), { title: "Edited" });
    await denied(updateDoc(doc(me.db, "cvs", cvId), { userId: owner_.uid }));
    await denied(setDoc(doc(me.db, "cvs", `sdk-cv-${randomUUID()}`), { userId: owner_.uid, title: "Planted" }));
    await denied(updateDoc(doc(me.db, "cvs", ownerCv), { title: "Defaced" }));
  });

  test("a CV re-created under the same id by someone else does not hand over the old result", async () => {
    const first = await signUp("first-owner", { premium: true });
    const cvId = await createCv(first);
    await first.call("enrichCVWithExternalData", fullRequest(cvId));
    assert.ok((await getDoc(doc(first.db, "cvs", cvId, "externalData", "latest"))).exists());
    await deleteDoc(doc(first.db, "cvs", cvId));
    const second = await signUp("second-owner");
    await createCv(second, cvId);
    // Whether or not the deletion trigger has removed it yet, the earlier owner's result is not
    // the new owner's to read.
    await denied(getDoc(doc(second.db, "cvs", cvId, "externalData", "latest")));
  });
});
