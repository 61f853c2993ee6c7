// Shared by the tests/sdk/*.test.mjs files: the environment scripts/with-emulators.sh exports,
// client apps of the official Firebase JavaScript SDK connected to the emulators, the emulators'
// owner credentials for what only the server may write (they bypass the rules like the Admin
// SDK), and the assertions the files share. Not a test file itself (node --test runs
// *.test.mjs only).

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";

import { deleteApp, initializeApp } from "firebase/app";
import { connectAuthEmulator, createUserWithEmailAndPassword, getAuth } from "firebase/auth";
import { connectFirestoreEmulator, doc, getFirestore, setDoc, setLogLevel, terminate } from "firebase/firestore";
import { connectFunctionsEmulator, getFunctions, httpsCallable } from "firebase/functions";

// ------------------------------------------------------------------------------- environment

const missing = ["FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST", "FUNCTIONS_BASE_URL"]
  .filter((name) => !process.env[name]);
if (missing.length) {
  throw new Error(`${missing.join(", ")} not set: run under scripts/with-emulators.sh (make test does)`);
}
export const FIRESTORE_HOST = process.env.FIRESTORE_EMULATOR_HOST;
export const AUTH_HOST = process.env.FIREBASE_AUTH_EMULATOR_HOST;
export const FUNCTIONS_URL = new URL(process.env.FUNCTIONS_BASE_URL); // http://host:port/PROJECT/REGION
export const [PROJECT, REGION] = FUNCTIONS_URL.pathname.split("/").filter(Boolean);
assert.ok(PROJECT && REGION, `FUNCTIONS_BASE_URL has no project/region: ${FUNCTIONS_URL}`);
export const CALL_TIMEOUT_MS = 60_000;

export const FNS = [
  "enrichCVWithExternalData",
  "trackExternalDataUsage",
  "getUserExternalDataUsageStats",
  "getExternalDataAnalytics",
];

// The files of a LinkedIn "copy of your data" export (7 skills, 2 positions, 2 projects, ...).
const EXPORT_DIR = new URL("../fixtures/linkedin/complete/", import.meta.url);
export const LINKEDIN_EXPORT = Object.fromEntries(
  readdirSync(EXPORT_DIR).sort().map((name) => [name, readFileSync(new URL(name, EXPORT_DIR), "utf8")]),
);

export const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
export const today = () => new Date().toISOString().slice(0, 10);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

setLogLevel("silent"); // expected permission-denied reads would otherwise be logged as errors

// ------------------------------------------------------------------------------- clients

const apps = [];

/** A client app of its own (own auth state, functions and Firestore instances). */
export function newClient() {
  const app = initializeApp({ projectId: PROJECT, apiKey: "demo-api-key" }, `sdk-${randomUUID()}`);
  apps.push(app);
  const auth = getAuth(app);
  connectAuthEmulator(auth, `http://${AUTH_HOST}`, { disableWarnings: true });
  const functions = getFunctions(app, REGION);
  connectFunctionsEmulator(functions, FUNCTIONS_URL.hostname, Number(FUNCTIONS_URL.port));
  const db = getFirestore(app);
  const [fsHost, fsPort] = FIRESTORE_HOST.split(":");
  connectFirestoreEmulator(db, fsHost, Number(fsPort));
  return {
    app,
    auth,
    db,
    uid: null,
    email: null,
    /** `httpsCallable(functions, name)(data)`, answering `result.data`. */
    async call(name, data) {
      const result = await httpsCallable(functions, name, { timeout: CALL_TIMEOUT_MS })(data);
      return result.data;
    },
  };
}

/** Emulator REST call with the owner credentials (bypasses rules, like the Admin SDK). */
export async function owner(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { Authorization: "Bearer owner", "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok && response.status !== 404) {
    throw new Error(`${method} ${url}: HTTP ${response.status} ${text.slice(0, 300)}`);
  }
  return response.status === 404 ? null : JSON.parse(text || "null");
}

export function encode(value) {
  if (value === null) return { nullValue: null };
  if (typeof value === "boolean") return { booleanValue: value };
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "number") {
    return Number.isInteger(value) ? { integerValue: String(value) } : { doubleValue: value };
  }
  if (value instanceof Date) return { timestampValue: value.toISOString() };
  if (Array.isArray(value)) return { arrayValue: { values: value.map(encode) } };
  return { mapValue: { fields: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)])) } };
}

export function decode(value) {
  if ("nullValue" in value) return null;
  if ("booleanValue" in value) return value.booleanValue;
  if ("stringValue" in value) return value.stringValue;
  if ("integerValue" in value) return Number(value.integerValue);
  if ("doubleValue" in value) return value.doubleValue;
  if ("timestampValue" in value) return value.timestampValue;
  if ("arrayValue" in value) return (value.arrayValue.values ?? []).map(decode);
  if ("mapValue" in value) {
    return Object.fromEntries(Object.entries(value.mapValue.fields ?? {}).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

export const documentUrl = (path) =>
  `http://${FIRESTORE_HOST}/v1/projects/${PROJECT}/databases/(default)/documents/${path}`;

/** Server-side write of `fields` into the document at `path` (merged: only these fields). */
export async function serverWrite(path, fields) {
  const mask = Object.keys(fields).map((k) => `updateMask.fieldPaths=${encodeURIComponent(k)}`).join("&");
  await owner("PATCH", `${documentUrl(path)}?${mask}`, { fields: encode(fields).mapValue.fields });
}

export async function serverRead(path) {
  const body = await owner("GET", documentUrl(path));
  return body && decode({ mapValue: { fields: body.fields ?? {} } });
}

/** Sets custom claims on the Auth emulator (as the Admin SDK's setCustomUserClaims does). */
export async function setClaims(uid, claims) {
  await owner("POST", `http://${AUTH_HOST}/identitytoolkit.googleapis.com/v1/projects/${PROJECT}/accounts:update`, {
    localId: uid,
    customAttributes: JSON.stringify(claims),
  });
}

/**
 * A user signed up through the SDK with e-mail and password, who writes their own profile.
 * `premium`: the server then writes `users/{uid}.subscription`; `admin`: the custom claim
 * `admin: true` is set and the ID token refreshed so it carries it.
 */
export async function signUp(label, { premium = false, admin = false } = {}) {
  const client = newClient();
  const email = `sdk-${label}-${randomUUID().slice(0, 8)}@example.test`;
  const { user } = await createUserWithEmailAndPassword(client.auth, email, `pw-${randomUUID()}`);
  client.uid = user.uid;
  client.email = email;
  await setDoc(doc(client.db, "users", user.uid), { displayName: `SDK ${label}` });
  if (premium) {
    await serverWrite(`users/${user.uid}`, { subscription: { tier: "premium", status: "active" } });
  }
  if (admin) {
    await setClaims(user.uid, { admin: true });
    await user.getIdToken(true);
    const { claims } = await user.getIdTokenResult();
    assert.equal(claims.admin, true, "the refreshed ID token carries the admin claim");
  }
  return client;
}

/** The user creates their own CV through the SDK (contract 5: allowed with userId == uid). */
export async function createCv(client, cvId = `sdk-cv-${randomUUID()}`) {
  await setDoc(doc(client.db, "cvs", cvId), { userId: client.uid, title: "My CV" });
  return cvId;
}

/** Asserts that `promise` rejects with the SDK error `code`, then runs `check(err)`. */
export async function rejectsWith(promise, code, check = () => {}) {
  let error;
  try {
    const value = await promise;
    assert.fail(`expected ${code}, got an answer: ${JSON.stringify(value).slice(0, 300)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    error = e;
  }
  assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
  if (code.startsWith("functions/")) {
    // Contract 2: short, human messages; no stack traces, e-mail addresses or Firestore paths.
    for (const leak of ["Traceback", "File \"", "@example.test", "users/", "cvs/", "external_data_", "rate_limits"]) {
      assert.ok(!error.message.includes(leak), `message carries ${leak}: ${error.message}`);
    }
    assert.ok(error.message.length > 0 && error.message.length <= 300, `message: ${error.message}`);
  }
  check(error);
  return error;
}

export const previewRequest = (cvId) => ({ cvId, mode: "preview", sources: ["linkedin"], linkedin: { export: LINKEDIN_EXPORT } });
export const fullRequest = (cvId) => ({ cvId, mode: "full", sources: ["linkedin"], linkedin: { export: LINKEDIN_EXPORT } });

/** Every array anywhere under `value`, with its path. */
export function* lists(value, path = "") {
  if (Array.isArray(value)) {
    yield [path, value];
    for (const [i, item] of value.entries()) yield* lists(item, `${path}[${i}]`);
  } else if (value && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) yield* lists(v, `${path}.${k}`);
  }
}

export function containsLocked(value) {
  if (Array.isArray(value)) return value.some(containsLocked);
  if (value && typeof value === "object") {
    return value.locked === true || Object.values(value).some(containsLocked);
  }
  return false;
}

export function assertUsage(usage, { tier, limit: expectedLimit, remaining }) {
  assert.equal(usage.tier, tier);
  assert.equal(usage.limit, expectedLimit);
  assert.equal(usage.remaining, remaining);
  assert.match(usage.resetAt, ISO_UTC);
}

export function assertCounts(object, keys, where) {
  for (const key of keys) {
    assert.equal(typeof object[key], "number", `${where}.${key} is a number: ${JSON.stringify(object)}`);
    assert.ok(Number.isFinite(object[key]) && object[key] >= 0, `${where}.${key} = ${object[key]}`);
  }
}

// ------------------------------------------------------------------------------- set-up

export const GATED = {
  phase: "full",
  rolloutPercentage: 100,
  targetGroups: ["beta-testers", "internal-team", "trusted-advisors"],
  fallbackEnabled: false,
  components: { premiumGating: true, usageTracking: true, rateLimiting: true, securityAudit: true },
};

export function isGated(config) {
  return (
    config?.phase === "full" &&
    config.fallbackEnabled === false &&
    !config.shadow &&
    ["premiumGating", "usageTracking", "rateLimiting", "securityAudit"].every((c) => config.components?.[c] === true) &&
    Object.values(config.sources ?? {}).every((s) => s?.enabled !== false)
  );
}

/**
 * Phase "full" without fallback: every user is in the gated cohort (contract 3), so free and
 * premium differ. make test's session set-up already writes this config; a standalone run
 * writes it here and waits (at most the contract's 30 s) until the functions see it.
 */
export async function ensureGatedConfig() {
  const config = await serverRead("config/externalDataRollout");
  if (isGated(config)) return;
  await owner("PATCH", documentUrl("config/externalDataRollout"), {
    fields: encode({ ...GATED, version: Date.now(), updatedAt: new Date(), updatedBy: "sdk-tests" }).mapValue.fields,
  });
  const probe = await signUp("config-probe");
  const cvId = await createCv(probe);
  const deadline = Date.now() + 35_000;
  for (;;) {
    try {
      await probe.call("enrichCVWithExternalData", fullRequest(cvId));
    } catch (e) {
      if (e.code === "functions/permission-denied") return;
    }
    assert.ok(Date.now() < deadline, "the gated rollout config did not take effect within 35 s");
    await sleep(1000);
  }
}

/** Ends every client app this process made (each test file's `after`). */
export async function closeClients() {
  await Promise.allSettled(apps.map(async (app) => {
    await terminate(getFirestore(app));
    await deleteApp(app);
  }));
}

// ------------------------------------------------------------------------------- server-side reads

/** Every document of the collection at `path` (a sub-collection too), as {id, path, data}. */
export async function serverList(path) {
  const found = [];
  let pageToken = "";
  do {
    const page = await owner("GET", `${documentUrl(path)}?pageSize=300${pageToken && `&pageToken=${encodeURIComponent(pageToken)}`}`);
    for (const d of page?.documents ?? []) found.push(fromRest(d));
    pageToken = page?.nextPageToken ?? "";
  } while (pageToken);
  return found;
}

/** The documents of collection `collectionId` (under the root) whose `field` equals `value`. */
export async function serverQuery(collectionId, field, value) {
  const rows = await owner("POST", `http://${FIRESTORE_HOST}/v1/projects/${PROJECT}/databases/(default)/documents:runQuery`, {
    structuredQuery: {
      from: [{ collectionId }],
      where: { fieldFilter: { field: { fieldPath: field }, op: "EQUAL", value: encode(value) } },
    },
  });
  return (rows ?? []).filter((row) => row.document).map((row) => fromRest(row.document));
}

function fromRest(d) {
  const path = d.name.split("/documents/")[1];
  return { id: path.split("/").at(-1), path, data: decode({ mapValue: { fields: d.fields ?? {} } }) };
}

/**
 * Polls `probe` (an async function) until it answers something truthy, which it returns; fails
 * with `what` after `timeoutMs`. For the Firestore triggers, which the emulator runs after the
 * write has been answered.
 */
export async function eventually(what, probe, { timeoutMs = 15_000, everyMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    assert.ok(Date.now() < deadline, `${what}: not seen within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}
