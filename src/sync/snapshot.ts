import type { ManifestEntry } from "../protocol/types.ts";
import { checkSyncSize, type GuardReport, type SyncLimits } from "./guard.ts";
import { type HashCache, type HashStats, hashLocalFiles } from "./hash.ts";
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
