import { readdir, readFile, unlink } from "node:fs/promises";
import { basename } from "node:path";
import { randomHex } from "./crypto.ts";
import { CrabboxError, ExitCode, usageError } from "./errors.ts";
import { withLock } from "./lock.ts";
import { claimFile, claimLockFile, claimsDir, slugLockFile } from "./paths.ts";
import { generatedSlug, normalizeSlug, pickSlug } from "./slug.ts";
import { isAtomicTempName, writeFileAtomic } from "./state.ts";

/** The fields a writer sets; the store adds the lease id, revision and timestamps. */
export interface ClaimFields {
  slug: string;
  provider: string;
  /** The provider's machine id (the MicroVM id); empty while it is being created. */
  cloudID: string;
  /** Where the lease lives (the AWS region); claims from another scope are invisible. */
  providerScope: string;
  pond?: string;
  repoRoot: string;
  idleTimeoutSeconds?: number;
  labels?: Record<string, string>;
}

/**
 * A lease claim: this machine's record of a MicroVM it created, at `<state>/claims/<leaseID>.json`.
 * The format is upstream Crabbox's (§3.2) so both tools read each other's state. Fields a later
 * version adds (`state`, `owner`, `runInput`, …) are kept and written back untouched.
 */
export interface Claim extends ClaimFields {
  leaseID: string;
  /** 32 random hex, refreshed on every write: a cheap "did it change under me" check. */
  revision: string;
  /** RFC 3339 UTC, second precision. */
  claimedAt: string;
  lastUsedAt: string;
  [field: string]: unknown;
}

/** What `saveClaim` writes: the standard fields plus any further ones (`state`, `owner`, …). */
export type ClaimUpdate = ClaimFields & Record<string, unknown>;

/** The key order upstream writes; anything else follows in the order it was read or set. */
const KEY_ORDER = [
  "leaseID",
  "revision",
  "slug",
  "provider",
  "cloudID",
  "providerScope",
  "pond",
  "repoRoot",
  "claimedAt",
  "lastUsedAt",
  "idleTimeoutSeconds",
  "labels",
] as const;

const REQUIRED_STRINGS = [
  "leaseID",
  "slug",
  "provider",
  "cloudID",
  "providerScope",
  "repoRoot",
  "claimedAt",
  "lastUsedAt",
] as const;

export const LEASE_ID_RE = /^cbx_[a-f0-9]{12}$/;

/** `cbx_` + 12 lowercase hex from 6 random bytes. */
export function newLeaseId(): string {
  return `cbx_${randomHex(6)}`;
}

export function isLeaseId(text: string): boolean {
  return LEASE_ID_RE.test(text);
}

/** Upstream's claim file-name rule: no separators, reserved characters, control chars or dot names. */
export function isSafeClaimName(name: string): boolean {
  if (name === "" || name === "." || name === ".." || name.endsWith(".")) return false;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused.
  if (/[<>:"/\\|?*\u0000-\u001f\u007f]/.test(name)) return false;
  return !/^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$/i.test(name);
}

/** RFC 3339 UTC with second precision, as upstream writes timestamps. */
export function claimTimestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function newRevision(): string {
  return randomHex(16);
}

function sortedLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Pretty JSON, 2-space indent, trailing newline, keys in upstream's order; empty optionals omitted. */
export function serializeClaim(claim: Claim): string {
  const ordered: Record<string, unknown> = {};
  for (const key of KEY_ORDER) {
    const value = claim[key];
    if (value === undefined) continue;
    if ((key === "pond" && value === "") || (key === "idleTimeoutSeconds" && value === 0)) continue;
    if (key === "labels") {
      const labels = value as Record<string, string>;
      if (Object.keys(labels).length > 0) ordered.labels = sortedLabels(labels);
      continue;
    }
    ordered[key] = value;
  }
  for (const [key, value] of Object.entries(claim)) {
    if (!(key in ordered) && !(KEY_ORDER as readonly string[]).includes(key) && value !== undefined) {
      ordered[key] = value;
    }
  }
  return `${JSON.stringify(ordered, null, 2)}\n`;
}

function corrupt(file: string, why: string): CrabboxError {
  return usageError(
    `claim file ${file} is corrupt: ${why}`,
    "move the file aside (or delete it if its MicroVM is gone) and retry",
  );
}

/** Parses and checks one claim file's text; a bad or misfiled claim is a usage error naming the file. */
export function parseClaim(text: string, file: string): Claim {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw corrupt(file, `not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw corrupt(file, "not a JSON object");
  }
  const claim = value as Record<string, unknown>;
  for (const key of REQUIRED_STRINGS) {
    if (typeof claim[key] !== "string") throw corrupt(file, `field ${key} must be a string`);
  }
  if (claim.revision !== undefined && typeof claim.revision !== "string") {
    throw corrupt(file, "field revision must be a string");
  }
  if (claim.pond !== undefined && typeof claim.pond !== "string")
    throw corrupt(file, "field pond must be a string");
  if (claim.idleTimeoutSeconds !== undefined && !Number.isFinite(claim.idleTimeoutSeconds)) {
    throw corrupt(file, "field idleTimeoutSeconds must be a number");
  }
  if (claim.labels !== undefined) {
    const labels = claim.labels;
    if (typeof labels !== "object" || labels === null || Array.isArray(labels)) {
      throw corrupt(file, "field labels must be an object");
    }
    if (Object.values(labels).some((label) => typeof label !== "string")) {
      throw corrupt(file, "every label must be a string");
    }
  }
  const stem = basename(file).replace(/\.json$/, "");
  if (claim.leaseID !== stem) {
    throw usageError(
      `claim file ${file} contains lease id ${String(claim.leaseID)}; refusing misfiled claim`,
      "move the file aside or rename it to <leaseID>.json",
    );
  }
  return { revision: "", ...claim } as Claim;
}

async function readClaimFile(file: string): Promise<Claim | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw usageError(`read claim ${file}: ${(error as Error).message}`, "move the entry aside and retry");
  }
  return parseClaim(text, file);
}

/** One claim by lease id, or undefined when there is none. */
export async function readClaim(state: string, leaseId: string): Promise<Claim | undefined> {
  if (!isSafeClaimName(leaseId)) return undefined;
  return readClaimFile(claimFile(state, leaseId));
}

export interface ClaimScan {
  claims: Claim[];
  /** Files that could not be read as claims, each as the error a strict reader would throw. */
  problems: CrabboxError[];
}

/**
 * Every claim file, name-sorted. Readers take no lock: writes are atomic renames, so a reader sees
 * a whole old or a whole new file. Temp files of an interrupted write are skipped.
 */
export async function scanClaims(state: string): Promise<ClaimScan> {
  const dir = claimsDir(state);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { claims: [], problems: [] };
    throw usageError(`read claims directory ${dir}: ${(error as Error).message}`);
  }
  const files = names.filter((name) => name.endsWith(".json") && !isAtomicTempName(name)).sort();
  const claims: Claim[] = [];
  const problems: CrabboxError[] = [];
  for (const name of files) {
    try {
      const claim = await readClaimFile(`${dir}/${name}`);
      if (claim) claims.push(claim);
    } catch (error) {
      if (!(error instanceof CrabboxError)) throw error;
      problems.push(error);
    }
  }
  return { claims, problems };
}

/** Every claim; any unreadable, corrupt or misfiled claim fails the whole listing (exit 2). */
export async function listClaims(state: string): Promise<Claim[]> {
  const { claims, problems } = await scanClaims(state);
  if (problems[0]) throw problems[0];
  return claims;
}

/** What a new lease's claim starts with; the slug is allocated when the claim is created. */
export interface NewClaim {
  leaseID: string;
  /** A requested, already normalised slug (see `requestedSlug`); omitted = generated from the id. */
  slug?: string;
  provider: string;
  providerScope: string;
  repoRoot: string;
  cloudID?: string;
  pond?: string;
  idleTimeoutSeconds?: number;
  labels?: Record<string, string>;
  /** Further fields (`state`, `owner`, …) written after the standard ones. */
  extra?: Record<string, unknown>;
}

export interface ClaimClock {
  now?: () => Date;
}

/**
 * Allocates a slug and writes the new claim while holding the state-wide slug lock, so two
 * concurrent creates can never pick the same slug. A requested slug aborts on unreadable claims (it
 * must be unique for sure); a generated one skips them, as upstream does.
 */
export async function createClaim(state: string, input: NewClaim, clock: ClaimClock = {}): Promise<Claim> {
  if (!isLeaseId(input.leaseID)) throw usageError(`invalid lease id "${input.leaseID}"`);
  return withLock(slugLockFile(state), async () => {
    const { claims, problems } = await scanClaims(state);
    if (input.slug !== undefined && problems[0]) throw problems[0];
    if (claims.some((claim) => claim.leaseID === input.leaseID)) {
      throw usageError(`lease ${input.leaseID} already has a claim`);
    }
    const used = new Set(claims.map((claim) => normalizeSlug(claim.slug)));
    const base = input.slug ?? generatedSlug(input.leaseID);
    const slug = pickSlug(base, input.leaseID, (candidate) => used.has(candidate));
    if (slug === undefined) throw usageError(`could not allocate a unique lease slug for ${input.leaseID}`);
    const now = claimTimestamp(clock.now?.() ?? new Date());
    const claim: Claim = {
      ...input.extra,
      leaseID: input.leaseID,
      revision: newRevision(),
      slug,
      provider: input.provider,
      cloudID: input.cloudID ?? "",
      providerScope: input.providerScope,
      repoRoot: input.repoRoot,
      claimedAt: now,
      lastUsedAt: now,
    };
    if (input.pond) claim.pond = input.pond;
    if (input.idleTimeoutSeconds && input.idleTimeoutSeconds > 0)
      claim.idleTimeoutSeconds = input.idleTimeoutSeconds;
    if (input.labels && Object.keys(input.labels).length > 0) claim.labels = { ...input.labels };
    await withLock(claimLockFile(state, input.leaseID), () =>
      writeFileAtomic(claimFile(state, input.leaseID), serializeClaim(claim)),
    );
    return claim;
  });
}

export interface SaveOptions extends ClaimClock {
  /** Take over a claim recorded for another repository root (`--reclaim`). */
  reclaim?: boolean;
}

/**
 * Upstream's claim write: under the claim lock, read the current file, refuse a claim owned by
 * another repo root unless reclaiming, keep `claimedAt` (refreshed on reclaim or a new root),
 * set `lastUsedAt` to now and a fresh revision, keep fields this version does not know.
 * `change` receives the current claim (or undefined) and returns the fields to write.
 */
export async function saveClaim(
  state: string,
  leaseId: string,
  change: (current: Claim | undefined) => ClaimUpdate,
  options: SaveOptions = {},
): Promise<Claim> {
  if (!isSafeClaimName(leaseId) || !leaseId) throw usageError(`invalid lease id "${leaseId}"`);
  return withLock(claimLockFile(state, leaseId), async () => {
    const current = await readClaim(state, leaseId);
    const next = change(current);
    if (current?.repoRoot && next.repoRoot && current.repoRoot !== next.repoRoot && !options.reclaim) {
      throw usageError(
        `lease ${leaseId} is claimed by repo ${current.repoRoot}; use --reclaim to claim it for ${next.repoRoot}`,
      );
    }
    const now = claimTimestamp(options.now?.() ?? new Date());
    const keepClaimedAt = current?.claimedAt && !options.reclaim && current.repoRoot === next.repoRoot;
    const claim: Claim = {
      ...current,
      ...next,
      leaseID: leaseId,
      revision: newRevision(),
      claimedAt: keepClaimedAt ? (current?.claimedAt as string) : now,
      lastUsedAt: now,
    };
    await writeFileAtomic(claimFile(state, leaseId), serializeClaim(claim));
    return claim;
  });
}

/** Deletes a claim under its lock; a claim that is already gone is fine. */
export async function removeClaim(state: string, leaseId: string): Promise<void> {
  if (!isSafeClaimName(leaseId)) return;
  await withLock(claimLockFile(state, leaseId), async () => {
    await unlink(claimFile(state, leaseId)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
  });
}

/** Claims an identifier names: its lease id, or its slug compared case- and punctuation-insensitively. */
export function matchClaims(claims: readonly Claim[], identifier: string): Claim[] {
  const id = identifier.trim();
  const slug = normalizeSlug(id);
  return claims.filter(
    (claim) => claim.leaseID === id || (slug !== "" && normalizeSlug(claim.slug) === slug),
  );
}

export interface ResolveOptions {
  provider: string;
  /** The current scope (region); a claim from another scope is "not found". */
  scope: string;
  /** The flag that selects another scope, named in the hint, e.g. `--aws-lambda-microvm-region`. */
  scopeFlag: string;
}

/**
 * Resolves `--id`/positional to a claim (upstream §3.4): the exact `<id>.json` first, then a
 * name-sorted scan by lease id or slug among this provider's claims. Not found, out of scope or
 * without a machine id is exit 4, and the hint names a same-named lease in another scope.
 */
export async function resolveLease(
  state: string,
  identifier: string,
  options: ResolveOptions,
): Promise<Claim> {
  const id = identifier.trim();
  const direct = await readClaim(state, id);
  let matches: Claim[];
  if (direct && direct.provider === options.provider) {
    matches = [direct];
  } else {
    matches = matchClaims(await listClaims(state), id).filter((claim) => claim.provider === options.provider);
  }
  const inScope = matches.find((claim) => claim.providerScope === options.scope);
  if (inScope?.cloudID) return inScope;
  let hint = "`crabbox list` shows the leases this machine knows about in the current region";
  if (inScope) {
    hint = `lease ${inScope.leaseID} has no ${options.provider} machine yet: it is still being created or its creation failed`;
  } else {
    const elsewhere = matches.find((claim) => claim.providerScope !== options.scope);
    if (elsewhere) {
      hint = `lease ${elsewhere.leaseID} (slug ${elsewhere.slug}) is in ${elsewhere.providerScope}, not ${options.scope}; add ${options.scopeFlag} ${elsewhere.providerScope}`;
    }
  }
  throw new CrabboxError(`${options.provider} lease not found: ${id}`, {
    exitCode: ExitCode.leaseNotFound,
    hint,
  });
}
