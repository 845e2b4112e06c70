import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { CrabboxError, ExitCode } from "../core/errors.ts";
import { TAR_END_BYTES, tarHeaderBytes, tarPadding } from "../protocol/tar.ts";
import { SYNC_META_NAME, type SyncEncoding, type SyncMeta } from "../protocol/types.ts";
import { type CompressionChoice, compressStream } from "./compress.ts";
import type { SyncPlan } from "./plan.ts";

/**
 * The body of `POST /v1/sync`: a tar stream whose first member is `.crabbox-sync.json` (deletes,
 * expected fingerprint, optional clean), then every write of the plan, compressed on the fly.
 * Files are read in chunks as the network drains the stream, so the archive is never whole in
 * memory and nothing touches the disk.
 */

export interface ArchiveOptions {
  /** Absolute repository root the plan's paths are relative to. */
  root: string;
  plan: SyncPlan;
  compression: CompressionChoice;
  /** Local mtimes (ms) by path, so build tools on the runner see real file ages; default 0. */
  mtimes?: ReadonlyMap<string, number>;
  /** Remove unsynced files not matching these globs before applying (protocol `clean`). */
  clean?: { keep: string[] };
}

export interface ArchiveCounters {
  /** Tar members written, the metadata member included. */
  entries: number;
  /** File and link-target bytes read from disk. */
  contentBytes: number;
  /** Uncompressed tar bytes produced. */
  bytesIn: number;
  /** Bytes of the (compressed) body handed to the network. */
  bytesOut: number;
}

export interface SyncArchive {
  encoding: SyncEncoding;
  /** The request body. Reading it drives everything; cancelling it stops the file reads. */
  body: ReadableStream<Uint8Array>;
  /** Live counters; final once `body` has been read to the end. */
  counters: ArchiveCounters;
}

/**
 * The tar is laid out straight into blocks of this size, which go to compression as they fill:
 * file contents are read into the block (no buffer per file, no copy), and the compressor and
 * the network see ~100 large chunks instead of three stream chunks per file (header, content,
 * padding), whose per-chunk stream hops dominated a first sync of 3,000 small files.
 */
const BLOCK_BYTES = 512 * 1024;
/**
 * Files up to this size are read with synchronous calls (open, read, close: no thread-pool round
 * trip per call, and the compressor works on its own thread meanwhile). Larger files are read
 * asynchronously, a block at a time, so a huge file never stalls the event loop for long.
 */
const SYNC_READ_MAX = 1024 * 1024;

export function syncMetaBytes(plan: SyncPlan, clean?: { keep: string[] }): Uint8Array {
  const meta: SyncMeta = { version: 1, deletes: plan.deletes, expect: plan.expect };
  if (clean) meta.clean = clean;
  return new TextEncoder().encode(JSON.stringify(meta));
}

function archiveError(path: string, error: unknown): CrabboxError {
  if (error instanceof CrabboxError) return error;
  const code = (error as { code?: string } | null)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  const message =
    code === "ENOENT" || code === "ENOTDIR"
      ? `create sync archive: stat sync path ${path}: ${detail}`
      : `create sync archive: ${detail}`;
  return new CrabboxError(message, {
    exitCode: ExitCode.sync,
    hint: "a file changed while syncing; run again once nothing is writing to the checkout",
    cause: error,
  });
}

/**
 * Fills BLOCK_BYTES blocks in order; full ones wait in `ready` until the generator yields them.
 * Blocks the compressor is done with come back through `recycle` and are filled again: a first
 * sync then touches a few blocks' worth of memory instead of 50 MB of fresh pages (page faults
 * and the allocator returning memory to the kernel were a visible part of the CLI's CPU).
 */
class BlockWriter {
  readonly ready: Uint8Array[] = [];
  private readonly spare: Uint8Array[] = [];
  private block: Uint8Array;
  private filled = 0;

  constructor() {
    this.block = this.fresh();
  }

  recycle(chunk: Uint8Array): void {
    // Only whole blocks (the last, shorter one is a view and not worth keeping); a few suffice.
    if (chunk.byteLength === BLOCK_BYTES && chunk.byteOffset === 0 && this.spare.length < 4) {
      this.spare.push(chunk);
    }
  }

  private fresh(): Uint8Array {
    return this.spare.pop() ?? new Uint8Array(BLOCK_BYTES);
  }

  /** The free tail of the current block (never empty). */
  room(): Uint8Array {
    return this.block.subarray(this.filled);
  }

  /** `n` bytes of `room()` were written. */
  advance(n: number): void {
    this.filled += n;
    if (this.filled === BLOCK_BYTES) {
      this.ready.push(this.block);
      this.block = this.fresh();
      this.filled = 0;
    }
  }

  put(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) {
      const room = this.room();
      const take = Math.min(room.length, bytes.length - offset);
      room.set(bytes.subarray(offset, offset + take));
      offset += take;
      this.advance(take);
    }
  }

  /** Zero bytes (written: a recycled block holds old data). */
  zeros(n: number): void {
    let left = n;
    while (left > 0) {
      const room = this.room();
      const take = Math.min(room.length, left);
      room.fill(0, 0, take);
      left -= take;
      this.advance(take);
    }
  }

  finish(): void {
    if (this.filled > 0) this.ready.push(this.block.subarray(0, this.filled));
    this.filled = 0;
  }

  take(): Uint8Array[] {
    return this.ready.splice(0);
  }
}

function sizeChanged(path: string, read: number, size: number): Error {
  return new Error(
    read > size
      ? `${path}: content is longer than its declared size ${size}`
      : `${path}: content is ${read} bytes, declared size ${size} (file changed while archiving?)`,
  );
}

/** A file of at most SYNC_READ_MAX bytes, read into the blocks with synchronous calls. */
function readFileInto(out: BlockWriter, absolute: string, path: string, size: number): void {
  let fd: number;
  try {
    fd = openSync(absolute, "r");
  } catch (error) {
    throw archiveError(path, error);
  }
  try {
    let read = 0;
    while (read < size) {
      const room = out.room();
      const n = readSync(fd, room, 0, Math.min(room.length, size - read), null);
      if (n === 0) throw sizeChanged(path, read, size);
      read += n;
      out.advance(n);
    }
    // One more byte tells a file that grew since it was listed.
    if (readSync(fd, new Uint8Array(1), 0, 1, null) > 0) throw sizeChanged(path, size + 1, size);
  } catch (error) {
    throw archiveError(path, error);
  } finally {
    closeSync(fd);
  }
}

/** A larger file, read asynchronously into the blocks; full blocks are yielded as they fill. */
async function* streamFileInto(
  out: BlockWriter,
  absolute: string,
  path: string,
  size: number,
): AsyncGenerator<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(absolute, "r");
  } catch (error) {
    throw archiveError(path, error);
  }
  try {
    let read = 0;
    while (read < size) {
      const room = out.room();
      const { bytesRead } = await handle.read(room, 0, Math.min(room.length, size - read), null);
      if (bytesRead === 0) throw sizeChanged(path, read, size);
      read += bytesRead;
      out.advance(bytesRead);
      yield* out.take();
    }
    const { bytesRead } = await handle.read(new Uint8Array(1), 0, 1, null);
    if (bytesRead > 0) throw sizeChanged(path, size + 1, size);
  } catch (error) {
    throw archiveError(path, error);
  } finally {
    await handle.close();
  }
}

/** The uncompressed tar, in BLOCK_BYTES blocks (the last one shorter). */
async function* archiveBlocks(
  options: ArchiveOptions,
  counters: ArchiveCounters,
  out: BlockWriter,
): AsyncGenerator<Uint8Array> {
  const meta = syncMetaBytes(options.plan, options.clean);
  counters.entries++;
  out.put(tarHeaderBytes({ type: "file", path: SYNC_META_NAME, mode: 0o644, size: meta.length }));
  out.put(meta);
  out.zeros(tarPadding(meta.length));
  for (const entry of options.plan.writes) {
    const mtimeMs = options.mtimes?.get(entry.path);
    const mtime = mtimeMs === undefined ? undefined : Math.floor(mtimeMs / 1000);
    counters.entries++;
    if (entry.type === "symlink") {
      counters.contentBytes += entry.size;
      out.put(tarHeaderBytes({ type: "symlink", path: entry.path, target: entry.target, mtime }));
    } else {
      const absolute = join(options.root, entry.path);
      out.put(
        tarHeaderBytes({ type: "file", path: entry.path, mode: entry.mode & 0o777, size: entry.size, mtime }),
      );
      if (entry.size <= SYNC_READ_MAX) readFileInto(out, absolute, entry.path, entry.size);
      else yield* streamFileInto(out, absolute, entry.path, entry.size);
      counters.contentBytes += entry.size;
      out.zeros(tarPadding(entry.size));
    }
    if (out.ready.length > 0) yield* out.take();
  }
  out.zeros(TAR_END_BYTES);
  out.finish();
  yield* out.take();
}

function counting(counter: (n: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      counter(chunk.length);
      controller.enqueue(chunk);
    },
  });
}

/** A pull-driven stream over the block generator: nothing is read before the first pull. */
function blockStream(blocks: AsyncGenerator<Uint8Array>): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await blocks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          controller.error(error);
        }
      },
      async cancel() {
        // Closes the file being read, if any.
        await blocks.return(undefined).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/** Builds the streamed sync body for a plan. Nothing is read until the body is pulled. */
export function createSyncArchive(options: ArchiveOptions): SyncArchive {
  const counters: ArchiveCounters = { entries: 0, contentBytes: 0, bytesIn: 0, bytesOut: 0 };
  const writer = new BlockWriter();
  const tar = blockStream(archiveBlocks(options, counters, writer)).pipeThrough(
    counting((n) => {
      counters.bytesIn += n;
    }),
  );
  const body = compressStream(tar, options.compression, {
    recycle: (chunk) => writer.recycle(chunk),
  }).pipeThrough(
    counting((n) => {
      counters.bytesOut += n;
    }),
  );
  return { encoding: options.compression.encoding, body, counters };
}
