import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { createTarStream, type TarWriteEntry } from "../../src/protocol/tar.ts";
import {
  type CompressionChoice,
  compressionImplementation,
  compressStream,
} from "../../src/sync/compress.ts";
import { generateCorpus } from "../lib/corpus.ts";
import { figure, measured, median, timed } from "../lib/measure.ts";
import type { BenchContext, Benchmark, Figure } from "../lib/types.ts";

/**
 * Which sync compression to ship, by measurement: every candidate compresses the same tar of a
 * generated tree; its cost on a link of LINK_BYTES_PER_S is what a user waits for with the body
 * streamed (compression, transfer and the runner's decompression overlap): max(compress,
 * transfer, decompress). The baseline is the portable zlib gzip -6 (what `tar czf` does).
 */

/** AWS's per-MicroVM bandwidth for a default-size VM (docs/performance-bandwidth.md). */
const LINK_BYTES_PER_S = 4_000_000;

const CANDIDATES: { label: string; choice: CompressionChoice }[] = [
  { label: "identity", choice: { encoding: "identity" } },
  { label: "gzip-1 (libdeflate)", choice: { encoding: "gzip", level: 1 } },
  { label: "gzip-6 (libdeflate)", choice: { encoding: "gzip", level: 6 } },
  { label: "gzip-9 (libdeflate)", choice: { encoding: "gzip", level: 9 } },
  { label: "gzip-6 (zlib)", choice: { encoding: "gzip", level: 6, portable: true } },
  { label: "zstd-1", choice: { encoding: "zstd", level: 1 } },
  { label: "zstd-3", choice: { encoding: "zstd", level: 3 } },
  { label: "zstd-9", choice: { encoding: "zstd", level: 9 } },
];

async function tarOf(root: string, paths: string[]): Promise<Uint8Array> {
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    for (const path of paths) {
      const body = new Uint8Array(await Bun.file(join(root, path)).arrayBuffer());
      yield { type: "file", path, mode: 0o644, size: body.length, body };
    }
  }
  return new Uint8Array(await new Response(createTarStream(entries())).arrayBuffer());
}

async function compress(data: Uint8Array, choice: CompressionChoice): Promise<Uint8Array> {
  const source = new ReadableStream<Uint8Array>({
    start(controller) {
      // Feed it as the archive writer does: 256 KiB chunks.
      for (let offset = 0; offset < data.length; offset += 256 * 1024) {
        controller.enqueue(data.subarray(offset, offset + 256 * 1024));
      }
      controller.close();
    },
  });
  return new Uint8Array(await new Response(compressStream(source, choice)).arrayBuffer());
}

/** What the runner does with the body (runner/sync.ts): DecompressionStream. */
async function decompress(data: Uint8Array, encoding: string): Promise<number> {
  if (encoding === "identity") return data.length;
  const stream = new Blob([data as BlobPart])
    .stream()
    .pipeThrough(
      new DecompressionStream(encoding as CompressionFormat) as ReadableWritablePair<Uint8Array, Uint8Array>,
    );
  return (await new Response(stream).arrayBuffer()).byteLength;
}

async function measureCandidate(ctx: BenchContext, tar: Uint8Array, choice: CompressionChoice) {
  const compressMs: number[] = [];
  const decompressMs: number[] = [];
  let size = 0;
  for (let i = 0; i < ctx.runs; i++) {
    const c = await timed(() => compress(tar, choice));
    compressMs.push(c.ms);
    size = c.value.length;
    const d = await timed(() => decompress(c.value, choice.encoding));
    if (d.value !== tar.length) throw new Error(`${choice.encoding} round trip lost bytes`);
    decompressMs.push(d.ms);
  }
  const transferMs = (size / LINK_BYTES_PER_S) * 1000;
  const streamed = compressMs.map((c, i) => Math.max(c, transferMs, decompressMs[i] as number));
  return { size, compressMs, decompressMs, transferMs, streamed };
}

const benchmark: Benchmark = {
  name: "compression",
  title: "sync compression at 4 MB/s",
  async run(ctx) {
    const dir = ctx.tmpdir("compression");
    const spec = ctx.quick
      ? { files: 600, bytes: 10_000_000, seed: 6 }
      : { files: 3000, bytes: 50_000_000, seed: 6 };
    const corpus = generateCorpus(dir, spec);
    const tar = await tarOf(dir, corpus.paths);
    ctx.log(`corpus ${corpus.paths.length} files, tar ${tar.length} bytes`);
    const gzipCli = timed(
      () => spawnSync("gzip", ["-6", "-c"], { input: tar, maxBuffer: 1 << 30 }).stdout as Buffer,
    );
    const gzipSize = (await gzipCli).value.length;

    const results = new Map<string, Awaited<ReturnType<typeof measureCandidate>>>();
    for (const { label, choice } of CANDIDATES) {
      if (compressionImplementation(choice) === "unavailable") continue;
      results.set(label, await measureCandidate(ctx, tar, choice));
      const r = results.get(label);
      if (r) {
        ctx.log(
          `${label}: ${r.size} bytes, compress ${median(r.compressMs).toFixed(0)} ms, decompress ${median(r.decompressMs).toFixed(0)} ms, transfer ${r.transferMs.toFixed(0)} ms`,
        );
      }
    }
    const base = results.get("gzip-6 (zlib)");
    if (!base) throw new Error("the portable gzip baseline did not run");
    const baseline = measured("gzip-6 (zlib), streamed at 4 MB/s", base.streamed);
    const figures: Figure[] = [];
    let best: { label: string; ms: number } | undefined;
    for (const [label, r] of results) {
      const streamed = median(r.streamed);
      if (!best || streamed < best.ms) best = { label, ms: streamed };
      figures.push(
        figure({
          id: `compression-${label
            .replace(/[^a-z0-9]+/gi, "-")
            .replace(/-$/, "")
            .toLowerCase()}`,
          title: `sync body ${label}, streamed at 4 MB/s`,
          unit: "ms",
          subject: measured(label, r.streamed),
          baseline,
          details: {
            bytes: r.size,
            ratioToGzipCli: r.size / gzipSize,
            compressMs: median(r.compressMs),
            decompressMs: median(r.decompressMs),
            transferMs: r.transferMs,
            implementation: compressionImplementation(
              CANDIDATES.find((c) => c.label === label)?.choice ?? { encoding: "identity" },
            ),
          },
        }),
      );
    }
    figures.push(
      figure({
        id: "compression-best",
        title: `fastest at 4 MB/s: ${best?.label}`,
        unit: "ms",
        subject: measured(best?.label ?? "", [best?.ms ?? Number.NaN]),
        baseline,
        details: { tarBytes: tar.length, gzipCliBytes: gzipSize, files: corpus.paths.length },
      }),
    );
    return figures;
  },
};

export default benchmark;
