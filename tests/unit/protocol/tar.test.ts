import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createTarStream,
  readBody,
  readTar,
  type TarHeader,
  type TarWriteEntry,
} from "../../../src/protocol/tar.ts";

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-tar-"));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function readAll(source: Uint8Array | ReadableStream<Uint8Array>) {
  const out: { header: TarHeader; content: string }[] = [];
  const stream = source instanceof Uint8Array ? new Blob([new Uint8Array(source)]).stream() : source;
  for await (const { header, body } of readTar(stream)) {
    out.push({ header, content: Buffer.from(await readBody(body, 1 << 26)).toString("latin1") });
  }
  return out;
}

function tar(args: string[], cwd: string): Buffer {
  const result = spawnSync("tar", args, { cwd });
  if (result.status !== 0) throw new Error(`tar ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

const long200 = `${"d123456789/".repeat(18)}file-name-end.txt`.slice(0, 200);

describe("tar writer", () => {
  test("GNU tar extracts files, modes, symlinks, 200-char and non-ASCII paths exactly", async () => {
    const dir = tempDir();
    const entries: TarWriteEntry[] = [
      { type: "file", path: "hello.txt", mode: 0o644, size: 5, body: new TextEncoder().encode("hello") },
      {
        type: "file",
        path: "bin/run.sh",
        mode: 0o755,
        size: 10,
        body: [new TextEncoder().encode("#!/bin/sh\n")],
      },
      { type: "file", path: long200, mode: 0o600, size: 3, body: new Blob(["abc"]).stream() },
      {
        type: "file",
        path: "ünïcödé/日本.txt",
        mode: 0o640,
        size: 3,
        body: new Uint8Array([0xff, 0x00, 0xfe]),
      },
      { type: "symlink", path: "link", target: "hello.txt" },
      { type: "symlink", path: "long-link", target: `../${long200}` },
      { type: "directory", path: "empty", mode: 0o750 },
      { type: "file", path: "zero", mode: 0o644, size: 0, body: new Uint8Array(0) },
    ];
    const archive = await collect(createTarStream(entries));
    expect(archive.length % 512).toBe(0);
    writeFileSync(join(dir, "a.tar"), archive);
    mkdirSync(join(dir, "out"));
    tar(["xf", "../a.tar"], join(dir, "out"));
    const out = join(dir, "out");
    expect(readFileSync(join(out, "hello.txt"), "utf8")).toBe("hello");
    expect(lstatSync(join(out, "bin/run.sh")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, long200), "utf8")).toBe("abc");
    expect(lstatSync(join(out, long200)).mode & 0o777).toBe(0o600);
    expect([...readFileSync(join(out, "ünïcödé/日本.txt"))]).toEqual([0xff, 0x00, 0xfe]);
    expect(readlinkSync(join(out, "link"))).toBe("hello.txt");
    expect(readlinkSync(join(out, "long-link"))).toBe(`../${long200}`);
    expect(lstatSync(join(out, "empty")).isDirectory()).toBe(true);
    expect(lstatSync(join(out, "zero")).size).toBe(0);
  });

  test("is reproducible: same entries, same bytes (uid 0, fixed mtime)", async () => {
    const make = () =>
      collect(
        createTarStream([{ type: "file", path: "x", mode: 0o644, size: 1, body: new Uint8Array([1]) }]),
      );
    const [a, b] = await Promise.all([make(), make()]);
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    const listing = spawnSync("tar", ["tvf", "-", "--numeric-owner"], { input: a }).stdout.toString();
    expect(listing).toContain("0/0");
    expect(listing).toContain("1970-01-01");
  });

  test("streams: the producer is never far ahead of the consumer", async () => {
    let produced = 0;
    const chunk = new Uint8Array(64 * 1024);
    const total = 256; // 16 MiB
    async function* body() {
      for (let i = 0; i < total; i++) {
        produced++;
        yield chunk;
      }
    }
    const stream = createTarStream([
      { type: "file", path: "big", mode: 0o644, size: total * chunk.length, body: body() },
    ]);
    const reader = stream.getReader();
    for (let i = 0; i < 10; i++) await reader.read();
    expect(produced).toBeLessThan(20);
    await reader.cancel();
  });

  test("a body that is shorter or longer than its size is an error, not a corrupt archive", async () => {
    const short = createTarStream([
      { type: "file", path: "x", mode: 0o644, size: 10, body: new Uint8Array(3) },
    ]);
    await expect(collect(short)).rejects.toThrow(/declared size 10/);
    const long = createTarStream([
      { type: "file", path: "x", mode: 0o644, size: 1, body: new Uint8Array(3) },
    ]);
    await expect(collect(long)).rejects.toThrow(/longer than its declared size/);
  });
});

describe("tar reader", () => {
  function tree(): string {
    const dir = tempDir();
    const src = join(dir, "src");
    mkdirSync(join(src, "sub"), { recursive: true });
    writeFileSync(join(src, "a.txt"), "alpha");
    writeFileSync(join(src, "sub/exec.sh"), "#!/bin/sh\necho hi\n");
    chmodSync(join(src, "sub/exec.sh"), 0o755);
    mkdirSync(join(src, long200.split("/").slice(0, -1).join("/")), { recursive: true });
    writeFileSync(join(src, long200), "deep");
    writeFileSync(join(src, "name with spaces=and=equals.txt"), "eq");
    symlinkSync("a.txt", join(src, "sym"));
    symlinkSync(`./${long200}`, join(src, "longsym"));
    return dir;
  }

  for (const format of ["gnu", "pax", "ustar"] as const) {
    test(`reads GNU tar --format=${format} (long names, prefix, symlinks, modes)`, async () => {
      const dir = tree();
      const files = ["a.txt", "sub/exec.sh", long200, "name with spaces=and=equals.txt", "sym"];
      // ustar cannot hold a 202-byte link target; leave it out there.
      if (format !== "ustar") files.push("longsym");
      const archive = tar(
        ["cf", "-", `--format=${format}`, "--owner=0", "--group=0", ...files],
        join(dir, "src"),
      );
      const entries = await readAll(new Uint8Array(archive));
      const byPath = new Map(entries.map((entry) => [entry.header.path, entry]));
      expect([...byPath.keys()].sort()).toEqual([...files].sort());
      expect(byPath.get("a.txt")?.content).toBe("alpha");
      expect(byPath.get("sub/exec.sh")?.header.mode).toBe(0o755);
      expect(byPath.get(long200)?.content).toBe("deep");
      expect(byPath.get("name with spaces=and=equals.txt")?.content).toBe("eq");
      expect(byPath.get("sym")?.header).toMatchObject({ type: "symlink", linkpath: "a.txt", size: 0 });
      if (format !== "ustar") expect(byPath.get("longsym")?.header.linkpath).toBe(`./${long200}`);
    });
  }

  test("round trip through our writer and reader, chunked one byte at a time", async () => {
    const content = new Uint8Array(3000).map((_, i) => i % 251);
    const archive = await collect(
      createTarStream([
        { type: "file", path: long200, mode: 0o755, size: content.length, body: content },
        { type: "symlink", path: "s", target: "ü".repeat(80) },
      ]),
    );
    async function* oneByte() {
      for (const byte of archive) yield new Uint8Array([byte]);
    }
    const out: { header: TarHeader; bytes: Uint8Array }[] = [];
    for await (const { header, body } of readTar(oneByte()))
      out.push({ header, bytes: await readBody(body, 1 << 20) });
    expect(out.map((entry) => entry.header.path)).toEqual([long200, "s"]);
    expect(Buffer.from(out[0]?.bytes ?? []).equals(Buffer.from(content))).toBe(true);
    expect(out[0]?.header.mode).toBe(0o755);
    expect(out[1]?.header.linkpath).toBe("ü".repeat(80));
  });

  test("bytes() gives an entry's whole content, across chunk boundaries or within one chunk", async () => {
    const first = new Uint8Array(1300).map((_, i) => i % 253);
    const second = new TextEncoder().encode("second");
    const archive = await collect(
      createTarStream([
        { type: "file", path: "a", mode: 0o644, size: first.length, body: first },
        { type: "file", path: "empty", mode: 0o644, size: 0, body: new Uint8Array(0) },
        { type: "file", path: "b", mode: 0o600, size: second.length, body: second },
      ]),
    );
    for (const chunk of [7, 512, archive.length]) {
      async function* chunks() {
        for (let i = 0; i < archive.length; i += chunk) yield archive.slice(i, i + chunk);
      }
      const out: string[] = [];
      for await (const { header, bytes } of readTar(chunks())) {
        const content = await bytes();
        expect(content.length).toBe(header.size);
        out.push(`${header.path}:${Buffer.from(content).toString("hex").slice(0, 16)}`);
        if (header.path === "a") expect(Buffer.from(content).equals(Buffer.from(first))).toBe(true);
      }
      expect(out).toEqual([
        `a:${Buffer.from(first.subarray(0, 8)).toString("hex")}`,
        "empty:",
        `b:${Buffer.from(second).toString("hex").slice(0, 16)}`,
      ]);
    }
    const cut = archive.slice(0, 512 + 700);
    const read = async () => {
      for await (const { bytes } of readTar(new Blob([cut]).stream())) await bytes();
    };
    await expect(read()).rejects.toThrow(/truncated/);
  });

  test("skips bodies the consumer does not read", async () => {
    const archive = await collect(
      createTarStream([
        { type: "file", path: "a", mode: 0o644, size: 2000, body: new Uint8Array(2000) },
        { type: "file", path: "b", mode: 0o644, size: 2, body: new TextEncoder().encode("ok") },
      ]),
    );
    const seen: string[] = [];
    for await (const { header, body } of readTar(new Blob([new Uint8Array(archive)]).stream())) {
      seen.push(header.path);
      if (header.path === "b") expect(new TextDecoder().decode(await readBody(body, 10))).toBe("ok");
    }
    expect(seen).toEqual(["a", "b"]);
  });

  test("reports hardlinks and fifos as such (callers refuse them)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "one"), "1");
    linkSync(join(dir, "one"), join(dir, "two"));
    spawnSync("mkfifo", [join(dir, "pipe")]);
    const archive = tar(["cf", "-", "one", "two", "pipe"], dir);
    const types = (await readAll(new Uint8Array(archive))).map(
      (entry) => `${entry.header.path}:${entry.header.type}`,
    );
    expect(types).toEqual(["one:file", "two:hardlink", "pipe:fifo"]);
  });

  test("rejects unknown entry types, bad checksums, truncation and non-UTF-8 names", async () => {
    const good = await collect(
      createTarStream([{ type: "file", path: "x", mode: 0o644, size: 600, body: new Uint8Array(600) }]),
    );
    const unknown = good.slice();
    unknown[156] = "V".charCodeAt(0);
    fixChecksum(unknown);
    await expect(readAll(unknown)).rejects.toThrow(/unsupported tar entry type "V"/);

    const corrupt = good.slice();
    corrupt[0] = "y".charCodeAt(0);
    await expect(readAll(corrupt)).rejects.toThrow(/checksum/);

    await expect(readAll(good.slice(0, 700))).rejects.toThrow(/truncated/);
    await expect(readAll(good.slice(0, 1024 + 512 - 512))).rejects.toThrow(/end-of-archive|truncated/);
    await expect(readAll(new Uint8Array(0))).rejects.toThrow(/end-of-archive/);
    await expect(readAll(new TextEncoder().encode("not a tar at all".repeat(40)))).rejects.toThrow();

    const latin1 = good.slice();
    latin1[0] = 0xe9;
    fixChecksum(latin1);
    await expect(readAll(latin1)).rejects.toThrow(/UTF-8/);
  });
});

function fixChecksum(block: Uint8Array): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += block[i] as number;
  block.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
}
