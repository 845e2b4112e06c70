import { lstatSync, type Stats } from "node:fs";
import { setImmediate } from "node:timers";
import type { ResolvedConfig } from "../config/resolve.ts";
import type { ManifestEntry } from "../protocol/types.ts";
import { findRepoRoot } from "./git.ts";
import { checkSyncSize, type GuardReport, type SyncLimits } from "./guard.ts";
import { type HashCache, type HashStats, hashLocalFiles } from "./hash.ts";
import { hashCacheFile, loadHashCache } from "./hash-cache.ts";
import { type GitListing, type LocalManifest, readLocalManifest, startGitListing } from "./manifest.ts";
import { sequentialIndex } from "./paths.ts";

/**
 * The local side of a sync in one call, in the order that keeps failures cheap: list (git), guard
 * (before anything is read), hash (cached). Returns the phase timings `--timing-json` reports.
 */

export interface SnapshotOptions {
  cwd: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** `sync.exclude` / `sync.include`. */
  excludes?: readonly string[];
  includes?: readonly string[];
  limits: SyncLimits;
  cache?: HashCache;
  now?: () => number;
  /** The repository root, when already known. */
  root?: string;
  /** git's listing, already started (manifest.ts `startGitListing`); needs `root`. */
  listing?: Promise<GitListing>;
  /** lstat results taken ahead, by path. */
  prestat?: (path: string) => Stats | undefined;
  /** The listing memo saved by the last run (manifest.ts). */
  memo?: unknown;
}

export interface LocalSnapshot {
  manifest: LocalManifest;
  guard: GuardReport;
  /** Protocol entries, same order as `manifest.files`. */
  entries: ManifestEntry[];
  /** Local mtimes (ms) by path, for the archive. */
  mtimes: Map<string, number>;
  hash: HashStats;
  timings: { manifestMs: number; hashMs: number };
}

export async function snapshotCheckout(options: SnapshotOptions): Promise<LocalSnapshot> {
  const clock = () => performance.now();
  const started = clock();
  const manifest = await readLocalManifest({
    cwd: options.cwd,
    env: options.env,
    excludes: options.excludes,
    includes: options.includes,
    root: options.root,
    listing: options.listing,
    prestat: options.prestat,
    memo: options.memo,
  });
  const guard = checkSyncSize(manifest.files, options.limits);
  const listed = clock();
  const { entries, stats } = await hashLocalFiles(manifest.root, manifest.files, {
    cache: options.cache,
    now: options.now,
  });
  let mtimes: Map<string, number> | undefined;
  return {
    manifest,
    guard,
    entries,
    // Only an upload reads them: an unchanged rerun never builds the map.
    get mtimes() {
      mtimes ??= new Map(manifest.files.map((file) => [file.path, file.mtimeMs]));
      return mtimes;
    },
    hash: stats,
    timings: { manifestMs: listed - started, hashMs: clock() - listed },
  };
}

export interface CheckoutSnapshotOptions {
  cwd: string;
  /** The resolved `sync.*` config. */
  sync: Pick<
    ResolvedConfig["sync"],
    "exclude" | "include" | "warnFiles" | "warnBytes" | "failFiles" | "failBytes" | "allowLarge"
  >;
  /** Where the per-repository hash cache lives (the crabbox state dir). */
  stateDir: string;
  /** Report the hard size limits instead of failing on them (sync-plan shows, it does not sync). */
  allowLarge?: boolean;
  env?: Readonly<Record<string, string | undefined>>;
  /** The cache could not be saved: worth a debug line, never a failed run. */
  onCacheError?: (error: unknown) => void;
}

/**
 * The snapshot a run (or sync-plan) takes: the checkout's manifest hashed through the persistent
 * hash cache of its repository, so only files whose stat changed since the last run are read.
 */
export async function snapshotWithCache(options: CheckoutSnapshotOptions): Promise<LocalSnapshot> {
  const env = options.env ?? process.env;
  const started = performance.now();
  const root = await findRepoRoot(options.cwd, env);
  // git walks the tree in its own process; meanwhile this one loads the cache and stats the files
  // the last run synced — on a rerun nearly all of them, so the manifest needs few lstats of its own.
  const listing = startGitListing(root, env);
  const cache = await loadHashCache(hashCacheFile(options.stateDir, root), root);
  const prestat = await statAhead(root, cache.storedPaths);
  const { sync } = options;
  const ahead = performance.now();
  const snap = await snapshotCheckout({
    cwd: options.cwd,
    env: options.env,
    excludes: sync.exclude,
    includes: sync.include,
    limits: {
      warnFiles: sync.warnFiles,
      warnBytes: sync.warnBytes,
      failFiles: sync.failFiles,
      failBytes: sync.failBytes,
      allowLarge: options.allowLarge || sync.allowLarge || env.CRABBOX_SYNC_ALLOW_LARGE === "1",
    },
    cache,
    root,
    listing,
    prestat,
    memo: cache.listing,
  });
  if (snap.manifest.memo !== undefined) cache.setListing(snap.manifest.memo);
  cache.retain(snap.entries.map((entry) => entry.path));
  await cache.save().catch((error: unknown) => options.onCacheError?.(error));
  // Loading the cache and the stats ahead overlapped git's listing: they are part of the manifest phase.
  snap.timings.manifestMs += ahead - started;
  return snap;
}

/**
 * lstat of each path that still exists, looked up by path (in order, see `sequentialIndex`);
 * errors are left for the manifest's own lstat to report.
 */
async function statAhead(
  root: string,
  paths: readonly string[],
): Promise<(path: string) => Stats | undefined> {
  const stats = new Array<Stats | undefined>(paths.length);
  for (let i = 0; i < paths.length; i++) {
    // Let git's output drain now and then: a full pipe would stall its walk.
    if (i % 1024 === 1023) await new Promise((resolve) => setImmediate(resolve));
    try {
      stats[i] = lstatSync(`${root}/${paths[i]}`);
    } catch {
      // Gone, or not a file any more: the manifest stats it again and says why.
    }
  }
  const indexOf = sequentialIndex(paths);
  return (path) => {
    const index = indexOf(path);
    return index === undefined ? undefined : stats[index];
  };
}
