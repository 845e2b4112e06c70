import { CrabboxError, usageError } from "../core/errors.ts";
import type { SyncEncoding } from "../protocol/types.ts";

type Zlib = typeof import("node:zlib");
let zlibModule: Zlib | undefined;

/**
 * node:zlib, loaded on first use: under Bun loading it costs ~20 ms, and a warm rerun — which
 * reads the compression setting but sends nothing — never needs it.
 */
function nodeZlib(): Zlib {
  zlibModule ??= process.getBuiltinModule("node:zlib") as Zlib;
  return zlibModule;
}

/**
 * Streaming compression for sync bodies. Bun's libdeflate (`Bun.gzipSync`) is about twice as fast
 * as zlib at the same ratio but has no streaming API, so under Bun the stream is cut into blocks
 * and each block becomes one gzip member — a multi-member gzip file (RFC 1952 §2.2) that every
 * streaming decoder reads as one stream (GNU gzip, node:zlib createGunzip, DecompressionStream).
 * Elsewhere (Deno, Node) the portable `CompressionStream`/node:zlib path is used.
 */

export interface CompressionChoice {
  encoding: SyncEncoding;
  /** gzip 1–9 (libdeflate up to 12), zstd 1–22. Default: gzip 6, zstd 3. */
  level?: number;
  /** Force the portable implementation even under Bun (tests, measurements). */
  portable?: boolean;
}

/** The level an encoding is compressed at when none is given. */
const DEFAULT_LEVEL = { gzip: 6, zstd: 3 } as const;

/**
 * The default sync compression, chosen by `npm run bench compression` (bench/benchmarks/
 * compression.ts, results in bench/results/): on a generated 50 MB / 3,000-file tree zstd at level
 * 3 is both the smallest body of the fast candidates (about 0.9× gzip -6) and the cheapest to make
 * (about half of zlib gzip -6's time), so it wins on AWS's ~4 MB/s link and on a fast one alike.
 */
export const DEFAULT_COMPRESSION: CompressionChoice = { encoding: "zstd", level: DEFAULT_LEVEL.zstd };

const LEVELS: Record<SyncEncoding, [number, number] | undefined> = {
  gzip: [1, 9],
  zstd: [1, 19],
  identity: undefined,
};

/**
 * `sync.compression`: `zstd`, `zstd:<1-19>`, `gzip`, `gzip:<1-9>` or `none`. Empty means the
 * default. A bad value is a usage error (exit 2) before anything is synced.
 */
export function parseCompression(text: string | undefined): CompressionChoice {
  const value = (text ?? "").trim().toLowerCase();
  if (value === "") return DEFAULT_COMPRESSION;
  const match = /^(zstd|gzip|none|identity)(?::(\d+))?$/.exec(value);
  const encoding = match?.[1] === "none" ? "identity" : (match?.[1] as SyncEncoding | undefined);
  const range = encoding ? LEVELS[encoding] : undefined;
  const level = match?.[2] === undefined ? undefined : Number(match[2]);
  if (
    !encoding ||
    (level !== undefined && (!range || level < range[0] || level > range[1])) ||
    (encoding === "identity" && level !== undefined)
  ) {
    throw usageError(
      `invalid sync.compression ${JSON.stringify(text)}`,
      "use zstd, zstd:<1-19>, gzip, gzip:<1-9> or none",
    );
  }
  if (encoding === "identity") return { encoding };
  return { encoding, level: level ?? DEFAULT_LEVEL[encoding] };
}

/** The canonical spelling of a choice (`zstd:3`), for plans and timing output. */
export function formatCompression(choice: CompressionChoice): string {
  return choice.encoding === "identity"
    ? "none"
    : `${choice.encoding}:${choice.level ?? DEFAULT_LEVEL[choice.encoding]}`;
}

interface BunCompression {
  gzipSync(data: Uint8Array, options: { level: number; library: "libdeflate" }): Uint8Array;
  zstdCompressSync(data: Uint8Array, options: { level: number }): Uint8Array;
}

/** Block size for the block-compressed Bun paths: large enough that a member boundary costs ~nothing. */
const GZIP_BLOCK_BYTES = 1024 * 1024;
/** zstd windows are larger than deflate's 32 KiB; bigger blocks keep cross-file matches. */
const ZSTD_BLOCK_BYTES = 8 * 1024 * 1024;

/**
 * Output chunk size of the node:zlib streams (their default is 16 KiB). A 50 MB first sync made
 * ~900 body chunks, each a stream hop and a socket write in the HTTP client; 256 KiB chunks make
 * ~50, and a compressed chunk still leaves as soon as it is full.
 */
const OUTPUT_CHUNK_BYTES = 256 * 1024;

function bunCompression(): BunCompression | undefined {
  const bun = (globalThis as { Bun?: Partial<BunCompression> }).Bun;
  if (typeof bun?.gzipSync === "function" && typeof bun.zstdCompressSync === "function") {
    return bun as BunCompression;
  }
  return undefined;
}

/** Which implementation `compressStream` will use, for timing reports and benchmarks. */
export function compressionImplementation(choice: CompressionChoice): string {
  if (choice.encoding === "identity") return "identity";
  const bun = choice.portable ? undefined : bunCompression();
  if (choice.encoding === "gzip") return bun ? "libdeflate-blocks" : "zlib-stream";
  if (typeof (nodeZlib() as { createZstdCompress?: unknown }).createZstdCompress === "function")
    return "zstd-stream";
  return bun ? "zstd-blocks" : "unavailable";
}

/** A TransformStream that gathers `blockBytes` and emits each block compressed by `compress`. */
function blockTransform(
  blockBytes: number,
  compress: (block: Uint8Array) => Uint8Array,
  recycle?: (chunk: Uint8Array) => void,
): TransformStream<Uint8Array, Uint8Array> {
  let block = new Uint8Array(blockBytes);
  let filled = 0;
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      let offset = 0;
      while (offset < chunk.length) {
        const take = Math.min(blockBytes - filled, chunk.length - offset);
        block.set(chunk.subarray(offset, offset + take), filled);
        filled += take;
        offset += take;
        if (filled === blockBytes) {
          controller.enqueue(compress(block));
          block = new Uint8Array(blockBytes);
          filled = 0;
        }
      }
      // Copied into our block (and compressed synchronously): the source may reuse it.
      recycle?.(chunk);
    },
    flush(controller) {
      if (filled > 0) controller.enqueue(compress(block.subarray(0, filled)));
    },
  });
}

/** The part of a node:zlib stream this module uses (zstd types are missing from older @types/node). */
interface NodeTransform {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  end(): void;
  destroy(error?: Error): void;
  once(event: "drain" | "close", listener: () => void): unknown;
  off(event: "drain" | "close", listener: () => void): unknown;
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
}

/**
 * Pipes a web stream through a node:zlib transform, pull-driven: output is produced only as fast as
 * the consumer reads, and an error on either side (an unreadable file, a zlib failure) reaches the
 * consumer as that same error.
 */
function throughNode(
  source: ReadableStream<Uint8Array>,
  transform: NodeTransform,
  recycle?: (chunk: Uint8Array) => void,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let started = false;
  const pump = async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // The write callback runs once zlib has consumed the chunk: only then may it be reused.
        const written = recycle
          ? transform.write(value, (error) => {
              if (!error) recycle(value);
            })
          : transform.write(value);
        if (!written) {
          await new Promise<void>((resolve) => {
            const done = () => {
              transform.off("drain", done);
              transform.off("close", done);
              resolve();
            };
            transform.once("drain", done);
            transform.once("close", done);
          });
        }
      }
      transform.end();
    } catch (error) {
      transform.destroy(error instanceof Error ? error : new Error(String(error)));
    }
  };
  const output = transform[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!started) {
          // pump() never rejects: failures are delivered through the transform's error.
          started = true;
          void pump();
        }
        const { value, done } = await output.next();
        if (done) controller.close();
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      },
      async cancel(reason) {
        transform.destroy();
        await reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * Output chunk size of decompression: 64 KiB chunks stay in cache and their memory is reused,
 * where DecompressionStream hands out fresh ~2 MiB chunks (a runner applying a 50 MB first sync:
 * ~3x fewer page faults and ~20% less CPU for decompressing, parsing and hashing the tar).
 */
const DECOMPRESS_CHUNK_BYTES = 64 * 1024;

/**
 * Decompresses a sync body (the runner's side of compressStream), pull-driven like it; an error of
 * the source (a body over its size limit) reaches the consumer as that same error.
 */
export function decompressStream(
  source: ReadableStream<Uint8Array>,
  encoding: Exclude<SyncEncoding, "identity">,
): ReadableStream<Uint8Array> {
  const zlib = nodeZlib();
  const createZstd = (zlib as { createZstdDecompress?: (options: object) => NodeTransform })
    .createZstdDecompress;
  if (encoding === "gzip") {
    return throughNode(source, zlib.createGunzip({ chunkSize: DECOMPRESS_CHUNK_BYTES }) as NodeTransform);
  }
  if (typeof createZstd === "function") {
    return throughNode(source, createZstd({ chunkSize: DECOMPRESS_CHUNK_BYTES }));
  }
  return source.pipeThrough(
    new DecompressionStream(encoding as CompressionFormat) as ReadableWritablePair<Uint8Array, Uint8Array>,
  );
}

/** Compresses a byte stream; never holds more than one block in memory. */
export function compressStream(
  source: ReadableStream<Uint8Array>,
  choice: CompressionChoice,
  options: {
    /**
     * Called with each source chunk once the compressor is done with it, so the producer can
     * refill it (sync/archive.ts reuses its tar blocks). Never called for `identity`, whose chunks
     * go on to the network as they are.
     */
    recycle?: (chunk: Uint8Array) => void;
  } = {},
): ReadableStream<Uint8Array> {
  const recycle = options.recycle;
  if (choice.encoding === "identity") return source;
  const zlib = nodeZlib();
  const bun = choice.portable ? undefined : bunCompression();
  if (choice.encoding === "gzip") {
    const level = choice.level ?? DEFAULT_LEVEL.gzip;
    if (bun) {
      return source.pipeThrough(
        blockTransform(
          GZIP_BLOCK_BYTES,
          (block) => bun.gzipSync(block, { level, library: "libdeflate" }),
          recycle,
        ),
      );
    }
    return throughNode(
      source,
      zlib.createGzip({ chunkSize: OUTPUT_CHUNK_BYTES, level: Math.min(level, 9) }),
      recycle,
    );
  }
  const level = choice.level ?? DEFAULT_LEVEL.zstd;
  const createZstd = (zlib as { createZstdCompress?: (options: object) => NodeTransform }).createZstdCompress;
  const levelParam = (zlib.constants as Record<string, number | undefined>).ZSTD_c_compressionLevel;
  if (typeof createZstd === "function" && levelParam !== undefined) {
    return throughNode(
      source,
      createZstd({ chunkSize: OUTPUT_CHUNK_BYTES, params: { [levelParam]: level } }),
      recycle,
    );
  }
  if (bun)
    return source.pipeThrough(
      blockTransform(ZSTD_BLOCK_BYTES, (block) => bun.zstdCompressSync(block, { level }), recycle),
    );
  throw new CrabboxError("zstd compression is not available in this runtime", {
    hint: "use gzip (sync.compression: gzip), which every runtime supports",
  });
}
