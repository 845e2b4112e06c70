import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../core/state.ts";
import { type HashCache, isRacy, RACY_GRANULARITY_MS, type StatKey, sameStatKey } from "./hash.ts";

/**
 * The persistent per-repository hash cache: (path, size, mtime, ctime, inode, mode) → sha256, so a
 * rerun reads only files whose stat changed. Every record is self-validating — its stat key must
 * match exactly and it must not be racy (see `isRacy`) — and the file is only ever a hint: a
 * missing, foreign or corrupt cache is rebuilt from scratch, never trusted.
 */

const VERSION = 1;

/** [size, mtimeMs, ctimeMs, ino, mode, sha256, hashedAtMs] — compact, since a repo has 10⁵ of them. */
type CacheRecord = [number, number, number, number, number, string, number];

interface CacheFile {
  version: number;
  root: string;
  entries: Record<string, CacheRecord>;
}

export interface PersistentHashCache extends HashCache {
  /** Records currently held. */
  readonly size: number;
  /** Forgets paths that are no longer in the manifest, so the file does not grow forever. */
  retain(paths: Iterable<string>): void;
  /** Writes the cache atomically (0600) when something changed. */
  save(): Promise<void>;
}

/** `<state>/sync-cache/<sha256(repo root)>.json`: one file per checkout. */
export function hashCacheFile(stateDir: string, repoRoot: string): string {
  const id = createHash("sha256").update(repoRoot).digest("hex").slice(0, 32);
  return join(stateDir, "sync-cache", `${id}.json`);
}

function validRecord(value: unknown): value is CacheRecord {
  return (
    Array.isArray(value) &&
    value.length === 7 &&
    value.every((item, i) =>
      i === 5 ? typeof item === "string" && /^[0-9a-f]{64}$/.test(item) : Number.isFinite(item),
    )
  );
}

async function readCacheFile(file: string, root: string): Promise<Map<string, CacheRecord>> {
  const entries = new Map<string, CacheRecord>();
  let parsed: Partial<CacheFile>;
  try {
    parsed = JSON.parse(await readFile(file, "utf8")) as Partial<CacheFile>;
  } catch {
    return entries;
  }
  if (
    parsed?.version !== VERSION ||
    parsed.root !== root ||
    typeof parsed.entries !== "object" ||
    !parsed.entries
  ) {
    return entries;
  }
  for (const [path, record] of Object.entries(parsed.entries)) {
    // One bad record means the file was not written by us: trust none of it.
    if (!validRecord(record)) return new Map();
    entries.set(path, record);
  }
  return entries;
}

export async function loadHashCache(
  file: string,
  root: string,
  options: { granularityMs?: number } = {},
): Promise<PersistentHashCache> {
  const granularity = options.granularityMs ?? RACY_GRANULARITY_MS;
  const entries = await readCacheFile(file, root);
  let dirty = false;
  return {
    get size() {
      return entries.size;
    },
    get(path, key) {
      const record = entries.get(path);
      if (!record) return undefined;
      const [size, mtimeMs, ctimeMs, ino, mode, sha256, hashedAtMs] = record;
      const stored: StatKey = { size, mtimeMs, ctimeMs, ino, mode };
      if (!sameStatKey(stored, key) || isRacy(stored, hashedAtMs, granularity)) return undefined;
      return sha256;
    },
    set(path, key, sha256, hashedAtMs) {
      entries.set(path, [key.size, key.mtimeMs, key.ctimeMs, key.ino, key.mode, sha256, hashedAtMs]);
      dirty = true;
    },
    retain(paths) {
      const keep = new Set(paths);
      for (const path of entries.keys()) {
        if (!keep.has(path)) {
          entries.delete(path);
          dirty = true;
        }
      }
    },
    async save() {
      if (!dirty) return;
      const body: CacheFile = { version: VERSION, root, entries: Object.fromEntries(entries) };
      await writeFileAtomic(file, JSON.stringify(body), 0o600);
      dirty = false;
    },
  };
}
