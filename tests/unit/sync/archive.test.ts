import { afterEach, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as zlib from "node:zlib";
import { sha256Hex } from "../../../src/core/crypto.ts";
import { CrabboxError, ExitCode } from "../../../src/core/errors.ts";
import { symlinkEntry } from "../../../src/protocol/fingerprint.ts";
import { readTar } from "../../../src/protocol/tar.ts";
import { type ManifestEntry, SYNC_META_NAME } from "../../../src/protocol/types.ts";
import { createSyncArchive } from "../../../src/sync/archive.ts";
import { type CompressionChoice, compressStream } from "../../../src/sync/compress.ts";
import { EMPTY_REMOTE, planSync } from "../../../src/sync/plan.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-archive-"));
  dirs.push(dir);
  return dir;
}

function fileEntry(root: string, path: string, content: Uint8Array | string, mode = 0o644): ManifestEntry {
  const absolute = join(root, path);
  mkdirSync(join(absolute, ".."), { recursive: true });
  writeFileSync(absolute, content, { mode });
  const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
  return { path, type: "file", mode, size: bytes.length, sha256: sha256Hex(bytes) };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** node:zlib's zstd (Bun, Node ≥ 22.15); missing from the @types/node this repo pins. */
function zstdDecompress(): zlib.Gunzip {
  return (zlib as unknown as { createZstdDecompress: () => zlib.Gunzip }).createZstdDecompress();
}

async function decompressAsync(
  bytes: Uint8Array,
  encoding: CompressionChoice["encoding"],
): Promise<Uint8Array> {
  if (encoding === "identity") return bytes;
  const stream = encoding === "gzip" ? zlib.createGunzip() : zstdDecompress();
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", resolve);
    stream.on("error", reject);
    Readable.from([Buffer.from(bytes)]).pipe(stream);
  });
  return new Uint8Array(Buffer.concat(chunks));
}

async function members(tar: Uint8Array) {
  const out: { path: string; type: string; mode: number; linkpath: string; mtime: number; data: string }[] =
    [];
  for await (const entry of readTar(new Blob([Buffer.from(tar)]).stream())) {
    const data = new TextDecoder().decode(await collect(entry.body));
    out.push({ ...entry.header, data });
  }
  return out;
}

describe("createSyncArchive", () => {
  const longPath = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(75)}.txt`;

  for (const choice of [
    { encoding: "gzip" },
    { encoding: "gzip", portable: true },
    { encoding: "zstd" },
    { encoding: "identity" },
  ] as CompressionChoice[]) {
    test(`round trip: ${choice.encoding}${choice.portable ? " (portable)" : ""}`, async () => {
      const root = tempDir();
      const entries = [
        fileEntry(root, "a.txt", "alpha\n"),
        fileEntry(root, "bin/run.sh", "#!/bin/sh\necho hi\n", 0o755),
        fileEntry(root, longPath, "long\n"),
        fileEntry(
          root,
          "big.bin",
          new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) => (i * 7) % 251),
        ),
        symlinkEntry("link", "a.txt"),
      ];
      symlinkSync("a.txt", join(root, "link"));
      const stale: ManifestEntry = {
        path: "stale.txt",
        type: "file",
        mode: 0o644,
        size: 1,
        sha256: "0".repeat(64),
      };
      const plan = planSync(entries, { fingerprint: "f".repeat(64), entries: [stale] });
      const mtimes = new Map([["a.txt", 1_700_000_000_123]]);
      const archive = createSyncArchive({ root, plan, compression: choice, mtimes });
      expect(archive.encoding).toBe(choice.encoding);
      const body = await collect(archive.body);
      const tar = await decompressAsync(body, choice.encoding);
      const list = await members(tar);
      expect(list[0]?.path).toBe(SYNC_META_NAME);
      expect(JSON.parse(list[0]?.data ?? "")).toEqual({
        version: 1,
        deletes: ["stale.txt"],
        expect: plan.expect,
      });
      const byPath = new Map(list.map((m) => [m.path, m]));
      expect(byPath.get("a.txt")).toMatchObject({
        type: "file",
        mode: 0o644,
        data: "alpha\n",
        mtime: 1_700_000_000,
      });
      expect(byPath.get("bin/run.sh")).toMatchObject({ mode: 0o755 });
      expect(byPath.get(longPath)?.data).toBe("long\n");
      expect(byPath.get("link")).toMatchObject({ type: "symlink", linkpath: "a.txt" });
      expect(byPath.get("big.bin")?.data.length).toBeGreaterThan(0);
      expect(archive.counters).toEqual({
        entries: 6,
        contentBytes: plan.bytes,
        bytesIn: tar.length,
        bytesOut: body.length,
      });
      if (choice.encoding === "gzip") {
        // GNU tar extracts it as well (the upstream runner's format).
        const out = tempDir();
        writeFileSync(join(out, "a.tgz"), body);
        const result = spawnSync("tar", ["-xzf", "a.tgz"], { cwd: out });
        expect(result.status).toBe(0);
        expect(readFileSync(join(out, longPath), "utf8")).toBe("long\n");
        expect(readlinkSync(join(out, "link"))).toBe("a.txt");
        expect(statSync(join(out, "bin/run.sh")).mode & 0o777).toBe(0o755);
        expect(readFileSync(join(out, "big.bin")).equals(readFileSync(join(root, "big.bin")))).toBe(true);
      }
    });
  }

  test("clean is carried in the metadata", async () => {
    const root = tempDir();
    const plan = planSync([fileEntry(root, "a", "x")], EMPTY_REMOTE);
    const archive = createSyncArchive({
      root,
      plan,
      compression: { encoding: "identity" },
      clean: { keep: ["node_modules/**"] },
    });
    const list = await members(await collect(archive.body));
    expect(JSON.parse(list[0]?.data ?? "")).toMatchObject({ clean: { keep: ["node_modules/**"] } });
  });

  test("a file deleted after planning → exit 6 naming it", async () => {
    const root = tempDir();
    const plan = planSync([fileEntry(root, "gone.txt", "x")], EMPTY_REMOTE);
    rmSync(join(root, "gone.txt"));
    const archive = createSyncArchive({ root, plan, compression: { encoding: "gzip" } });
    const error = await collect(archive.body).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(ExitCode.sync);
    expect((error as CrabboxError).message).toStartWith("create sync archive: stat sync path gone.txt");
  });

  test("a file that grew after planning → exit 6 naming it", async () => {
    const root = tempDir();
    const plan = planSync([fileEntry(root, "grow.txt", "x")], EMPTY_REMOTE);
    writeFileSync(join(root, "grow.txt"), "xxxxxxxx");
    const archive = createSyncArchive({ root, plan, compression: { encoding: "gzip", portable: true } });
    const error = (await collect(archive.body).catch((e: unknown) => e)) as CrabboxError;
    expect(error).toBeInstanceOf(CrabboxError);
    expect(error.exitCode).toBe(ExitCode.sync);
    expect(error.message).toContain("grow.txt");
  });

  test("nothing is read until the body is pulled", async () => {
    const root = tempDir();
    const plan = planSync([fileEntry(root, "a", "x")], EMPTY_REMOTE);
    const archive = createSyncArchive({ root, plan, compression: { encoding: "gzip" } });
    rmSync(join(root, "a"));
    expect(archive.counters.entries).toBe(0);
    await archive.body.cancel();
  });
});

describe("compressStream", () => {
  test("the gzip block path is valid multi-member gzip for streaming decoders", async () => {
    const input = new Uint8Array(2.5 * 1024 * 1024).map((_, i) => i % 13);
    const source = new Blob([input]).stream();
    const body = await collect(compressStream(source, { encoding: "gzip" }));
    expect(Buffer.from(zlib.gunzipSync(body)).equals(Buffer.from(input))).toBe(true);
    const viaWeb = await collect(
      new Blob([Buffer.from(body)]).stream().pipeThrough(new DecompressionStream("gzip")),
    );
    expect(Buffer.from(viaWeb).equals(Buffer.from(input))).toBe(true);
  });
});
