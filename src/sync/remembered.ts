import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../core/state.ts";
import { fingerprint, symlinkEntry } from "../protocol/fingerprint.ts";
import { EMPTY_FINGERPRINT, type ManifestEntry } from "../protocol/types.ts";
import type { RemoteManifest } from "./plan.ts";

/**
 * What this CLI last synced into a MicroVM's workdir: the manifest and the fingerprint the runner
 * reported for it. A rerun diffs the checkout against it instead of asking the runner, which is
 * what lets an unchanged rerun cost one request. It is only ever a hint — the runner guards every
 * delta with the base fingerprint and every exec with the expected one (409 → read the runner's
 * manifest) — so a missing, stale or damaged file costs a manifest read, never a wrong workdir.
 *
 * `<state>/synced/<microvm id>/<sha256(workdir)>.json`, 0600; deleted with the MicroVM's token
 * when the lease is stopped or terminated (data-plane.ts `forgetToken`).
 */

const VERSION = 1;

/** [path, "f", mode, size, sha256] or [path, "l", target]: compact, a checkout has 10⁵ entries. */
type StoredEntry = [string, "f", number, number, string] | [string, "l", string];

interface RememberedFile {
  version: number;
  microvmId: string;
  workdir: string;
  fingerprint: string;
  entries: StoredEntry[];
}

/** MicroVM ids are plain; anything else is hashed so it can never name another path. */
function safeName(text: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(text)) return text;
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

export function rememberedDir(stateDir: string, microvmId: string): string {
  return join(stateDir, "synced", safeName(microvmId));
}

export function rememberedFile(stateDir: string, microvmId: string, workdir: string): string {
  const id = createHash("sha256").update(workdir).digest("hex").slice(0, 32);
  return join(rememberedDir(stateDir, microvmId), `${id}.json`);
}

function store(entry: ManifestEntry): StoredEntry {
  return entry.type === "symlink"
    ? [entry.path, "l", entry.target]
    : [entry.path, "f", entry.mode, entry.size, entry.sha256];
}

function load(stored: unknown): ManifestEntry | undefined {
  if (!Array.isArray(stored) || typeof stored[0] !== "string") return undefined;
  const [path, kind] = stored as [string, string];
  if (kind === "l" && stored.length === 3 && typeof stored[2] === "string") {
    return symlinkEntry(path, stored[2]);
  }
  const [, , mode, size, sha256] = stored as [string, string, unknown, unknown, unknown];
  if (
    kind === "f" &&
    stored.length === 5 &&
    Number.isInteger(mode) &&
    Number.isInteger(size) &&
    typeof sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(sha256)
  ) {
    return { path, type: "file", mode: mode as number, size: size as number, sha256 };
  }
  return undefined;
}

/**
 * The manifest remembered for this MicroVM and workdir, or undefined when there is none or it
 * cannot be trusted (another format, another MicroVM or workdir, a bad entry, or entries that do
 * not hash to the recorded fingerprint — a torn or edited file).
 */
export async function loadRemembered(
  stateDir: string,
  microvmId: string,
  workdir: string,
): Promise<RemoteManifest | undefined> {
  let parsed: Partial<RememberedFile>;
  try {
    parsed = JSON.parse(await readFile(rememberedFile(stateDir, microvmId, workdir), "utf8"));
  } catch {
    return undefined;
  }
  if (
    parsed?.version !== VERSION ||
    parsed.microvmId !== microvmId ||
    parsed.workdir !== workdir ||
    typeof parsed.fingerprint !== "string" ||
    !Array.isArray(parsed.entries)
  ) {
    return undefined;
  }
  const entries: ManifestEntry[] = [];
  for (const stored of parsed.entries) {
    const entry = load(stored);
    if (!entry) return undefined;
    entries.push(entry);
  }
  if (parsed.fingerprint === EMPTY_FINGERPRINT) {
    return entries.length === 0 ? { fingerprint: EMPTY_FINGERPRINT, entries } : undefined;
  }
  try {
    if (fingerprint(entries) !== parsed.fingerprint) return undefined;
  } catch {
    // A path listed twice.
    return undefined;
  }
  return { fingerprint: parsed.fingerprint, entries };
}

/** Records what the runner now has in the workdir (after a sync, or after reading its manifest). */
export async function saveRemembered(
  stateDir: string,
  microvmId: string,
  workdir: string,
  remote: RemoteManifest,
): Promise<void> {
  const body: RememberedFile = {
    version: VERSION,
    microvmId,
    workdir,
    fingerprint: remote.fingerprint,
    entries: remote.entries.map(store),
  };
  await writeFileAtomic(rememberedFile(stateDir, microvmId, workdir), JSON.stringify(body), 0o600);
}

/** Drops one workdir's record (its runner disagreed with it). Missing is fine. */
export async function forgetRememberedWorkdir(
  stateDir: string,
  microvmId: string,
  workdir: string,
): Promise<void> {
  await rm(rememberedFile(stateDir, microvmId, workdir), { force: true });
}

/** Drops everything remembered for a MicroVM (on stop/terminate). Missing is fine. */
export async function forgetRemembered(stateDir: string, microvmId: string): Promise<void> {
  await rm(rememberedDir(stateDir, microvmId), { recursive: true, force: true });
}
