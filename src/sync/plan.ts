import { humanBytes } from "../core/duration.ts";
import { fingerprint } from "../protocol/fingerprint.ts";
import { EMPTY_FINGERPRINT, type ManifestEntry } from "../protocol/types.ts";
import { type DirSize, topDirs } from "./guard.ts";
import { comparePathBytes } from "./paths.ts";

/**
 * The delta between what is local and what the runner has: entries to write, paths to delete, and
 * the fingerprint the workdir must have afterwards. The runner applies deletes before writes and
 * removes directories the deletes emptied, so file↔directory swaps need nothing special here: the
 * old shape's paths are deletes and the new shape's paths are writes.
 */

export interface SyncPlan {
  /** The runner's fingerprint this plan was computed against (`empty` for a fresh workdir). */
  base: string;
  /** fingerprint(local): what the runner must report after applying the plan. */
  expect: string;
  /** Local entries that are new or differ (content, mode, type or link target), by path bytes. */
  writes: ManifestEntry[];
  /** Remote paths with no local entry, by path bytes. */
  deletes: string[];
  /** Local entries the runner already has byte-for-byte. */
  unchanged: number;
  /** Content bytes to send (file sizes plus symlink target lengths). */
  bytes: number;
}

export function sameEntry(a: ManifestEntry, b: ManifestEntry): boolean {
  if (a.type === "file" && b.type === "file") {
    return (a.mode & 0o777) === (b.mode & 0o777) && a.size === b.size && a.sha256 === b.sha256;
  }
  if (a.type === "symlink" && b.type === "symlink") return a.target === b.target;
  return false;
}

/** What the runner has (or what this CLI remembers having synced): a `ManifestResponse` fits. */
export interface RemoteManifest {
  /** Sent as X-Crabbox-Sync-Base; `empty` for a workdir that has no manifest yet. */
  fingerprint: string;
  entries: readonly ManifestEntry[];
}

/** A workdir crabbox never synced. */
export const EMPTY_REMOTE: RemoteManifest = { fingerprint: EMPTY_FINGERPRINT, entries: [] };

/**
 * Pure diff of a local manifest against a remote one. The base is the remote's own fingerprint as
 * reported, never recomputed here (an empty manifest and no manifest differ: `empty` vs sha256("")).
 */
export function planSync(local: readonly ManifestEntry[], remote: RemoteManifest): SyncPlan {
  const base = remote.fingerprint;
  const { writes, deletes, unchanged, bytes } =
    inLockstep(local, remote.entries) ?? byPath(local, remote.entries);
  // Nothing differs: the local manifest is the remote one entry for entry, so its fingerprint is
  // the one the remote reported — no need to hash 10⁵ lines on the warm rerun's path. (`empty` is
  // no manifest at all, which an empty local manifest still has to create.)
  const same = writes.length === 0 && deletes.length === 0 && base !== EMPTY_FINGERPRINT;
  return { base, expect: same ? base : fingerprint(local), writes, deletes, unchanged, bytes };
}

type Delta = Pick<SyncPlan, "writes" | "deletes" | "unchanged" | "bytes">;

/**
 * The rerun's case: the same paths in the same order on both sides (edits, no files added or
 * removed) — compared entry by entry without indexing 10⁵ paths. Undefined when the paths differ.
 */
function inLockstep(local: readonly ManifestEntry[], remote: readonly ManifestEntry[]): Delta | undefined {
  if (local.length !== remote.length) return undefined;
  const writes: ManifestEntry[] = [];
  let bytes = 0;
  for (let i = 0; i < local.length; i++) {
    const entry = local[i] as ManifestEntry;
    const before = remote[i] as ManifestEntry;
    if (entry.path !== before.path) return undefined;
    if (sameEntry(before, entry)) continue;
    writes.push(entry);
    bytes += entry.size;
  }
  writes.sort((a, b) => comparePathBytes(a.path, b.path));
  return { writes, deletes: [], unchanged: local.length - writes.length, bytes };
}

function byPath(local: readonly ManifestEntry[], remote: readonly ManifestEntry[]): Delta {
  const remoteByPath = new Map<string, ManifestEntry>();
  for (const entry of remote) remoteByPath.set(entry.path, entry);
  const writes: ManifestEntry[] = [];
  const localPaths = new Set<string>();
  let unchanged = 0;
  let bytes = 0;
  for (const entry of local) {
    localPaths.add(entry.path);
    const before = remoteByPath.get(entry.path);
    if (before !== undefined && sameEntry(before, entry)) {
      unchanged++;
      continue;
    }
    writes.push(entry);
    bytes += entry.size;
  }
  const deletes: string[] = [];
  for (const path of remoteByPath.keys()) if (!localPaths.has(path)) deletes.push(path);
  writes.sort((a, b) => comparePathBytes(a.path, b.path));
  deletes.sort(comparePathBytes);
  return { writes, deletes, unchanged, bytes };
}

/** True when applying the plan would change nothing (the one-request warm rerun). */
export function isNoopPlan(plan: SyncPlan): boolean {
  return plan.writes.length === 0 && plan.deletes.length === 0 && plan.base === plan.expect;
}

export interface PlanDescription {
  writes: number;
  deletes: number;
  unchanged: number;
  bytes: number;
  base: string;
  expect: string;
  /** Where the bytes to send are, by first path segment. */
  topDirs: DirSize[];
  /** One human line, e.g. `sync plan: 3 to write (1.2 KiB), 1 to delete, 9997 unchanged`. */
  line: string;
}

/** What a plan would do, for humans (`line`) and `--json` (the rest); the caller decides which. */
export function describePlan(plan: SyncPlan): PlanDescription {
  return {
    writes: plan.writes.length,
    deletes: plan.deletes.length,
    unchanged: plan.unchanged,
    bytes: plan.bytes,
    base: plan.base,
    expect: plan.expect,
    topDirs: topDirs(plan.writes),
    line: `sync plan: ${plan.writes.length} to write (${humanBytes(plan.bytes)}), ${plan.deletes.length} to delete, ${plan.unchanged} unchanged`,
  };
}
