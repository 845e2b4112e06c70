import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CrabboxError, ExitCode } from "../core/errors.ts";
import { createTarStream, type TarWriteEntry } from "../protocol/tar.ts";
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

const READ_CHUNK = 256 * 1024;
/**
 * Files up to this size are read in one call: most of a checkout is small files, and per-file
 * async hops (open, read, read, close, one stream chunk each) dominated a first sync. Larger files
 * stream in READ_CHUNK pieces, so memory stays bounded either way.
 */
const WHOLE_FILE_MAX = 4 * 1024 * 1024;
/** The tar stream is cut into blocks this size before compression: fewer, larger stream hops. */
const BLOCK_BYTES = 512 * 1024;

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

/** A small file's content in one read. */
async function wholeFile(absolute: string, path: string, counters: ArchiveCounters): Promise<Uint8Array> {
  let content: Buffer;
  try {
    content = await readFile(absolute);
  } catch (error) {
    throw archiveError(path, error);
  }
  counters.contentBytes += content.length;
  return new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
}

/** A file's content as chunks, each a fresh buffer (consumers may hold on to them). */
async function* fileChunks(
  absolute: string,
  path: string,
  counters: ArchiveCounters,
): AsyncGenerator<Uint8Array> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(absolute, "r");
  } catch (error) {
    throw archiveError(path, error);
  }
  try {
    for (;;) {
      const buffer = new Uint8Array(READ_CHUNK);
      const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, null);
      if (bytesRead === 0) return;
      counters.contentBytes += bytesRead;
      yield bytesRead === READ_CHUNK ? buffer : buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

async function* archiveEntries(
  options: ArchiveOptions,
  counters: ArchiveCounters,
): AsyncGenerator<TarWriteEntry> {
  const meta = syncMetaBytes(options.plan, options.clean);
  counters.entries++;
  yield { type: "file", path: SYNC_META_NAME, mode: 0o644, size: meta.length, body: meta };
  for (const entry of options.plan.writes) {
    const mtimeMs = options.mtimes?.get(entry.path);
    const mtime = mtimeMs === undefined ? undefined : Math.floor(mtimeMs / 1000);
    counters.entries++;
    if (entry.type === "symlink") {
      counters.contentBytes += entry.size;
      yield { type: "symlink", path: entry.path, target: entry.target, mtime };
      continue;
    }
    const absolute = join(options.root, entry.path);
    yield {
      type: "file",
      path: entry.path,
      mode: entry.mode & 0o777,
      size: entry.size,
      body:
        entry.size <= WHOLE_FILE_MAX
          ? await wholeFile(absolute, entry.path, counters)
          : fileChunks(absolute, entry.path, counters),
      mtime,
    };
  }
}

/** Gathers a stream of small chunks into `size`-byte blocks (the last one shorter). */
function blocks(size: number): TransformStream<Uint8Array, Uint8Array> {
  let block = new Uint8Array(size);
  let filled = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(size - filled, chunk.length - offset);
        block.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === size) {
          controller.enqueue(block);
          block = new Uint8Array(size);
          filled = 0;
        }
      }
    },
    flush(controller) {
      if (filled > 0) controller.enqueue(block.subarray(0, filled));
    },
  });
}

function counting(counter: (n: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      counter(chunk.length);
      controller.enqueue(chunk);
    },
  });
}

/** Turns the tar writer's plain errors (a file that grew or shrank) into exit-6 sync errors. */
function mapErrors(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { value, done } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        } catch (error) {
          controller.error(archiveError(pathFromTarError(error), error));
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

function pathFromTarError(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  const colon = message.indexOf(": ");
  return colon > 0 ? message.slice(0, colon) : "";
}

/** Builds the streamed sync body for a plan. Nothing is read until the body is pulled. */
export function createSyncArchive(options: ArchiveOptions): SyncArchive {
  const counters: ArchiveCounters = { entries: 0, contentBytes: 0, bytesIn: 0, bytesOut: 0 };
  const tar = mapErrors(createTarStream(archiveEntries(options, counters)))
    .pipeThrough(blocks(BLOCK_BYTES))
    .pipeThrough(
      counting((n) => {
        counters.bytesIn += n;
      }),
    );
  const body = compressStream(tar, options.compression).pipeThrough(
    counting((n) => {
      counters.bytesOut += n;
    }),
  );
  return { encoding: options.compression.encoding, body, counters };
}
