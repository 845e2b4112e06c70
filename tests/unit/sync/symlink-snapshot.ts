import type { ManifestEntry } from "../../../src/protocol/types.ts";
import { checkSyncSize, DEFAULT_SYNC_LIMITS } from "../../../src/sync/guard.ts";
import type { LocalSnapshot } from "../../../src/sync/snapshot.ts";

/**
 * A snapshot of symlinks only, for tests of the sync engine and its callers: it needs no files on
 * disk, because the archive writes symlink targets from the plan.
 */
export function symlinkSnapshot(entries: ManifestEntry[]): LocalSnapshot {
  return {
    manifest: {
      root: "/nonexistent",
      files: [],
      bytes: 0,
      excluded: { counts: {}, examples: {} },
      submodules: [],
      protectedTracked: [],
      warnings: [],
    },
    guard: checkSyncSize([], DEFAULT_SYNC_LIMITS),
    entries,
    mtimes: new Map(),
    hash: { hashed: 0, cached: 0, bytesRead: 0 },
    timings: { manifestMs: 1, hashMs: 1 },
  };
}
