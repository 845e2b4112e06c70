import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../core/crypto.ts";
import { writeFileAtomic } from "../core/state.ts";
import { type HashCache, isRacy, RACY_GRANULARITY_MS, type StatKey, sameStatKey } from "./hash.ts";
import { sequentialIndex } from "./paths.ts";

/**
 * The persistent per-repository hash cache: (path, size, mtime, ctime, inode, mode) → sha256, so a
 * rerun reads only files whose stat changed. Every record is self-validating — its stat key must
 * match exactly and it must not be racy (see `isRacy`) — and the file is only ever a hint: a
 * missing, foreign or corrupt cache is rebuilt from scratch, never trusted.
 *
 * It also carries the listing memo (manifest.ts): what the last run made of git's file list, so an
 * unchanged listing skips the exclude rules. The cache stores it without looking inside.
 */

const MAGIC = "crabbox-sync-cache 2\n";

/** Numbers per record in `stats`: size, mtimeMs, ctimeMs, ino, mode, hashedAtMs. */
const STAT_FIELDS = 6;
const SHA_CHARS = 64;

/**
 * Columns, not one object per record, and binary, not JSON: loading the cache is on every run's
 * path, and JSON.parse of 10⁵ records cost more than the lstat of every file. The file is
 *
 *   MAGIC, a JSON header line (root, counts, section sizes, the listing memo's small fields),
 *   then, 8-byte aligned: stats (float64 × 6 per record), sha256 (64 hex chars per record),
 *   paths (UTF-8, NUL-separated: no path holds a NUL), the memo's flags (one byte per path)
 *   and the memo's paths (as above).
 */
interface CacheFile {
  root: string;
  paths: string[];
  stats: Float64Array;
  /** Hex, 64 characters per record. */
  sha256: string;
  listing?: unknown;
}

interface Header {
  root: string;
  count: number;
  pathBytes: number;
  /** The listing memo without its `paths` and `flags` columns; null when there is none. */
  listing: Record<string, unknown> | null;
  listingCount: number;
  listingPathBytes: number;
  /** The memo's paths are the records' paths (and are not stored twice). */
  samePaths: boolean;
}

/** A memo whose `paths`/`flags` columns can be stored binary (manifest.ts's memo is). */
function listingColumns(listing: unknown): { paths: string[]; flags: ArrayLike<number> } | undefined {
  const l = listing as { paths?: unknown; flags?: unknown } | null;
  if (!Array.isArray(l?.paths) || !(Array.isArray(l.flags) || l.flags instanceof Uint8Array))
    return undefined;
  if (l.paths.length !== l.flags.length) return undefined;
  const ok =
    l.paths.every((path) => typeof path === "string" && !path.includes("\0")) &&
    Array.prototype.every.call(l.flags, (flag: unknown) => Number.isInteger(flag) && (flag as number) < 256);
  return ok ? (l as { paths: string[]; flags: ArrayLike<number> }) : undefined;
}

function encodeCacheFile(body: CacheFile): Uint8Array {
  const columns = listingColumns(body.listing);
  const joined = body.paths.join("\0");
  const listingJoined = columns ? columns.paths.join("\0") : "";
  // Usually the memo's candidates are exactly the files hashed: store the paths once.
  const samePaths = columns !== undefined && listingJoined === joined;
  const paths = Buffer.from(joined, "utf8");
  const listingPaths = Buffer.from(samePaths ? "" : listingJoined, "utf8");
  let meta: Record<string, unknown> | null = null;
  if (body.listing !== undefined) {
    meta = columns
      ? { ...(body.listing as object), paths: undefined, flags: undefined }
      : { whole: body.listing };
  }
  const header: Header = {
    root: body.root,
    count: body.paths.length,
    pathBytes: paths.length,
    listing: meta,
    listingCount: columns ? columns.paths.length : -1,
    listingPathBytes: listingPaths.length,
    samePaths,
  };
  const head = Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`, "utf8");
  const pad = Buffer.alloc((8 - (head.length % 8)) % 8, 0x20);
  return Buffer.concat([
    head,
    pad,
    new Uint8Array(body.stats.buffer, body.stats.byteOffset, body.stats.byteLength),
    Buffer.from(body.sha256, "latin1"),
    paths,
    Uint8Array.from(columns?.flags ?? []),
    listingPaths,
  ]);
}

/** Splits a NUL-joined section back into `count` strings (zero strings from an empty section). */
function splitSection(buf: Buffer, start: number, bytes: number, count: number): string[] | undefined {
  if (count === 0) return bytes === 0 ? [] : undefined;
  const strings = buf.toString("utf8", start, start + bytes).split("\0");
  return strings.length === count ? strings : undefined;
}

/** The file's contents when every section is where the header says and well formed. */
function decodeCacheFile(buf: Buffer, root: string): CacheFile | undefined {
  if (buf.toString("latin1", 0, MAGIC.length) !== MAGIC) return undefined;
  const newline = buf.indexOf(10, MAGIC.length);
  if (newline === -1) return undefined;
  const header = JSON.parse(buf.toString("utf8", MAGIC.length, newline)) as Partial<Header>;
  const { count, pathBytes, listingCount, listingPathBytes } = header;
  if (header.root !== root || !Number.isSafeInteger(count) || !Number.isSafeInteger(pathBytes))
    return undefined;
  if (!Number.isSafeInteger(listingCount) || !Number.isSafeInteger(listingPathBytes)) return undefined;
  const n = count as number;
  const listed = Math.max(listingCount as number, 0);
  let at = newline + 1;
  at += (8 - (at % 8)) % 8;
  const statsAt = at;
  const shaAt = statsAt + n * STAT_FIELDS * 8;
  const pathsAt = shaAt + n * SHA_CHARS;
  const flagsAt = pathsAt + (pathBytes as number);
  const listingPathsAt = flagsAt + listed;
  if (n < 0 || listingPathsAt + (listingPathBytes as number) !== buf.length) return undefined;
  // A copy: the buffer's offset need not be 8-aligned for a Float64Array view. (A NaN in it only
  // ever fails to match a real stat, so it needs no check.)
  const stats = new Float64Array(buf.buffer.slice(buf.byteOffset + statsAt, buf.byteOffset + shaAt));
  // One native decode and one regex: a byte loop over 64 bytes per record was the slowest part of
  // loading in a cold process.
  const sha256 = buf.toString("latin1", shaAt, pathsAt);
  if (!/^[0-9a-f]*$/.test(sha256)) return undefined;
  const paths = splitSection(buf, pathsAt, pathBytes as number, n);
  if (!paths) return undefined;
  let listing: unknown;
  const meta = header.listing;
  if (meta && typeof meta === "object") {
    if ((listingCount as number) < 0) {
      listing = (meta as { whole?: unknown }).whole;
    } else {
      const memoPaths =
        header.samePaths === true && listed === n
          ? paths
          : splitSection(buf, listingPathsAt, listingPathBytes as number, listed);
      if (!memoPaths) return undefined;
      listing = { ...meta, paths: memoPaths, flags: buf.subarray(flagsAt, listingPathsAt) };
    }
  }
  return { root, paths, stats, sha256, listing };
}

const EMPTY: CacheFile = { root: "", paths: [], stats: new Float64Array(0), sha256: "" };

async function readCacheFile(file: string, root: string): Promise<CacheFile> {
  try {
    // Synchronous: nothing else is waiting on this thread, and the thread pool's round trip for a
    // 2 MB read cost as much as the read.
    return decodeCacheFile(readFileSync(file), root) ?? EMPTY;
  } catch {
    return EMPTY;
  }
}

interface CacheRecord {
  key: StatKey;
  sha256: string;
  hashedAtMs: number;
}

export interface PersistentHashCache extends HashCache {
  /** Records currently held. */
  readonly size: number;
  /** The paths the file held when loaded (the last run's files, in its order). */
  readonly storedPaths: readonly string[];
  /** The listing memo saved with the cache (opaque here; manifest.ts validates it). */
  readonly listing: unknown;
  setListing(listing: unknown): void;
  /** Forgets paths that are no longer in the manifest, so the file does not grow forever. */
  retain(paths: readonly string[]): void;
  /** Writes the cache atomically (0600) when something changed. */
  save(): Promise<void>;
}

/** `<state>/sync-cache/<sha256(repo root)>.cache`: one file per checkout. */
export function hashCacheFile(stateDir: string, repoRoot: string): string {
  const id = sha256Hex(repoRoot).slice(0, 32);
  return join(stateDir, "sync-cache", `${id}.cache`);
}

export async function loadHashCache(
  file: string,
  root: string,
  options: { granularityMs?: number } = {},
): Promise<PersistentHashCache> {
  const granularity = options.granularityMs ?? RACY_GRANULARITY_MS;
  const stored = await readCacheFile(file, root);
  // Runs look records up in manifest order, which is the order they were saved in.
  const rowOf = sequentialIndex(stored.paths);
  /** Records set (or dropped, as undefined) since loading; they win over the stored rows. */
  const changed = new Map<string, CacheRecord | undefined>();
  let listing = stored.listing;
  let dirty = false;
  let order: readonly string[] = [];

  const recordAt = (row: number): CacheRecord => {
    const at = row * STAT_FIELDS;
    const s = stored.stats;
    return {
      key: {
        size: s[at] as number,
        mtimeMs: s[at + 1] as number,
        ctimeMs: s[at + 2] as number,
        ino: s[at + 3] as number,
        mode: s[at + 4] as number,
      },
      hashedAtMs: s[at + 5] as number,
      sha256: stored.sha256.slice(row * SHA_CHARS, (row + 1) * SHA_CHARS),
    };
  };
  const current = (): Map<string, CacheRecord> => {
    const all = new Map<string, CacheRecord>();
    stored.paths.forEach((path, row) => {
      if (!changed.has(path)) all.set(path, recordAt(row));
    });
    for (const [path, record] of changed) if (record) all.set(path, record);
    return all;
  };

  const size = (): number => {
    let held = stored.paths.length;
    for (const [path, record] of changed) held += (record ? 1 : 0) - (rowOf(path) !== undefined ? 1 : 0);
    return held;
  };

  return {
    get size() {
      return size();
    },
    storedPaths: stored.paths,
    get listing() {
      return listing;
    },
    setListing(value) {
      listing = value;
      dirty = true;
    },
    get(path, key) {
      if (changed.has(path)) {
        const record = changed.get(path);
        if (!record || !sameStatKey(record.key, key) || isRacy(record.key, record.hashedAtMs, granularity)) {
          return undefined;
        }
        return record.sha256;
      }
      const row = rowOf(path);
      if (row === undefined) return undefined;
      // Compared in place: this runs once per file on every run, so it allocates nothing on a miss.
      const s = stored.stats;
      const at = row * STAT_FIELDS;
      if (
        s[at] !== key.size ||
        s[at + 1] !== key.mtimeMs ||
        s[at + 2] !== key.ctimeMs ||
        s[at + 3] !== key.ino ||
        s[at + 4] !== key.mode ||
        isRacy(key, s[at + 5] as number, granularity)
      ) {
        return undefined;
      }
      return stored.sha256.slice(row * SHA_CHARS, (row + 1) * SHA_CHARS);
    },
    set(path, key, sha256, hashedAtMs) {
      changed.set(path, { key, sha256, hashedAtMs });
      dirty = true;
    },
    retain(paths) {
      // The common case keeps everything: count instead of building a set of 10⁵ paths.
      let held = 0;
      for (const path of paths) if (changed.has(path) ? changed.get(path) : rowOf(path) !== undefined) held++;
      order = paths;
      if (held === size()) return;
      const keep = new Set(paths);
      for (const path of current().keys()) if (!keep.has(path)) changed.set(path, undefined);
      dirty = true;
    },
    async save() {
      if (!dirty) return;
      const records = current();
      // In the order of the manifest last retained (path order), so the next run's lookups are
      // sequential; anything else after it.
      const ordered = new Set([...order.filter((path) => records.has(path)), ...records.keys()]);
      const paths: string[] = [];
      const stats = new Float64Array(records.size * STAT_FIELDS);
      const hashes: string[] = [];
      for (const path of ordered) {
        const { key, sha256, hashedAtMs } = records.get(path) as CacheRecord;
        stats.set(
          [key.size, key.mtimeMs, key.ctimeMs, key.ino, key.mode, hashedAtMs],
          paths.length * STAT_FIELDS,
        );
        paths.push(path);
        hashes.push(sha256);
      }
      const body: CacheFile = { root, paths, stats, sha256: hashes.join(""), listing };
      await writeFileAtomic(file, encodeCacheFile(body), 0o600);
      dirty = false;
    },
  };
}
