import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { sha256Hex } from "../core/crypto.ts";
import { writeFileAtomic } from "../core/state.ts";
import { symlinkEntry } from "../protocol/fingerprint.ts";
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

const VERSION = 2;

/** [path, "f", mode, size, sha256] or [path, "l", target]: compact, a checkout has 10⁵ entries. */
type StoredEntry = [string, "f", number, number, string] | [string, "l", string];

/**
 * Line 1: this header. Line 2: the entries as JSON, whose sha256 is `checksum` — a torn or edited
 * file is caught by hashing one string, not by re-deriving the fingerprint from 10⁵ entries.
 */
interface RememberedHeader {
  version: number;
  microvmId: string;
  workdir: string;
  fingerprint: string;
  checksum: string;
}

/** MicroVM ids are plain; anything else is hashed so it can never name another path. */
function safeName(text: string): string {
  if (/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/.test(text)) return text;
  return sha256Hex(text).slice(0, 32);
}

function rememberedDir(stateDir: string, microvmId: string): string {
  return join(stateDir, "synced", safeName(microvmId));
}

export function rememberedFile(stateDir: string, microvmId: string, workdir: string): string {
  const id = sha256Hex(workdir).slice(0, 32);
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
 * cannot be trusted (another format, another MicroVM or workdir, a bad entry, or a body that does
 * not hash to its checksum — a torn or edited file). Even a wrong one is safe: the runner checks
 * every base and expected fingerprint.
 */
export async function loadRemembered(
  stateDir: string,
  microvmId: string,
  workdir: string,
): Promise<RemoteManifest | undefined> {
  let header: Partial<RememberedHeader>;
  let stored: unknown;
  try {
    const text = await readFile(rememberedFile(stateDir, microvmId, workdir), "utf8");
    const newline = text.indexOf("\n");
    const body = text.slice(newline + 1);
    header = JSON.parse(text.slice(0, newline));
    if (newline === -1 || header?.checksum !== sha256Hex(body)) return undefined;
    stored = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (
    header.version !== VERSION ||
    header.microvmId !== microvmId ||
    header.workdir !== workdir ||
    typeof header.fingerprint !== "string" ||
    !Array.isArray(stored)
  ) {
    return undefined;
  }
  const entries: ManifestEntry[] = [];
  for (const item of stored) {
    const entry = load(item);
    if (!entry) return undefined;
    entries.push(entry);
  }
  if (header.fingerprint === EMPTY_FINGERPRINT && entries.length > 0) return undefined;
  return { fingerprint: header.fingerprint, entries };
}

/** Records what the runner now has in the workdir (after a sync, or after reading its manifest). */
export async function saveRemembered(
  stateDir: string,
  microvmId: string,
  workdir: string,
  remote: RemoteManifest,
): Promise<void> {
  const body = JSON.stringify(remote.entries.map(store));
  const header: RememberedHeader = {
    version: VERSION,
    microvmId,
    workdir,
    fingerprint: remote.fingerprint,
    checksum: sha256Hex(body),
  };
  await writeFileAtomic(
    rememberedFile(stateDir, microvmId, workdir),
    `${JSON.stringify(header)}\n${body}`,
    0o600,
  );
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
