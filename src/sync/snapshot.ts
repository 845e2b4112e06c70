import type { ResolvedConfig } from "../config/resolve.ts";
import type { ManifestEntry } from "../protocol/types.ts";
import { findRepoRoot } from "./git.ts";
import { checkSyncSize, type GuardReport, type SyncLimits } from "./guard.ts";
import { type HashCache, type HashStats, hashLocalFiles } from "./hash.ts";
import { hashCacheFile, loadHashCache } from "./hash-cache.ts";
import { type LocalManifest, readLocalManifest } from "./manifest.ts";

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
  });
  const guard = checkSyncSize(manifest.files, options.limits);
  const listed = clock();
  const { entries, stats } = await hashLocalFiles(manifest.root, manifest.files, {
    cache: options.cache,
    now: options.now,
  });
  const mtimes = new Map(manifest.files.map((file) => [file.path, file.mtimeMs]));
  return {
    manifest,
    guard,
    entries,
    mtimes,
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
  const found = performance.now();
  const cache = await loadHashCache(hashCacheFile(options.stateDir, root), root);
  const loaded = performance.now();
  const { sync } = options;
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
  });
  cache.retain(snap.entries.map((entry) => entry.path));
  await cache.save().catch((error: unknown) => options.onCacheError?.(error));
  // The phases a user waits for: finding the repository is listing, the cache is hashing.
  snap.timings.manifestMs += found - started;
  snap.timings.hashMs += loaded - found;
  return snap;
}
