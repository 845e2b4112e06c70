/**
 * Hostile inputs against a real runner: each must be refused (4xx with an error body) and a
 * sentinel tree outside the workdir — on the host, beside the workdir in the VM root, and at the
 * absolute paths an archive names — must be byte-identical afterwards.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { sha256Hex } from "../../src/core/crypto.ts";
import { fingerprint, symlinkEntry } from "../../src/protocol/fingerprint.ts";
import type { TarWriteEntry } from "../../src/protocol/tar.ts";
import { EMPTY_FINGERPRINT } from "../../src/protocol/types.ts";
import {
  fingerprintOf,
  manifest,
  postExec,
  startRunner,
  sync,
  syncBody,
  type TestRunner,
  type TreeSpec,
  tarEntries,
} from "../fixtures/runner/harness.ts";
import { walkSync } from "../fixtures/runner/tree.ts";

// Real processes on a possibly busy 2-core CI machine: bun test's 5 s default is too tight.
setDefaultTimeout(30_000);
const W = "/workspace/hostile";
let runner: TestRunner;
let sentinels: string[];
let before: string;

function snapshot(): string {
  const lines: string[] = [];
  for (const dir of sentinels) {
    for (const path of walkSync(dir)) {
      const stats = lstatSync(path);
      const kind = stats.isSymbolicLink() ? "l" : stats.isDirectory() ? "d" : "f";
      const content =
        kind === "l" ? readlinkSync(path) : kind === "f" ? readFileSync(path).toString("base64") : "";
      lines.push(`${path} ${kind} ${(stats.mode & 0o7777).toString(8)} ${stats.mtimeMs} ${content}`);
    }
  }
  return lines.join("\n");
}

function plant(dir: string): void {
  mkdirSync(join(dir, "sub"), { recursive: true });
  writeFileSync(join(dir, "keep.txt"), "precious\n");
  writeFileSync(join(dir, "sub/secret"), new Uint8Array([0, 1, 2, 255]));
  chmodSync(join(dir, "sub/secret"), 0o600);
  symlinkSync("keep.txt", join(dir, "link"));
}

const initial: TreeSpec = { "ok.txt": { content: "fine" }, "dir/inner.txt": { content: "inner" } };

beforeAll(async () => {
  runner = await startRunner();
  const hostSentinel = join(runner.dir, "sentinel");
  const besideW = join(runner.root, "workspace/sentinel");
  const absoluteTarget = join(runner.root, "etc");
  for (const dir of [hostSentinel, besideW, absoluteTarget]) plant(dir);
  sentinels = [hostSentinel, besideW, absoluteTarget];
  const body = await syncBody(
    { version: 1, deletes: [], expect: fingerprintOf(initial) },
    tarEntries(initial),
  );
  expect((await sync(runner, W, EMPTY_FINGERPRINT, body)).status).toBe(200);
  // What a remote command might leave behind: symlinks from inside W to the sentinels.
  symlinkSync(hostSentinel, join(runner.root, W, "to-host"));
  symlinkSync("../sentinel", join(runner.root, W, "to-beside"));
  before = snapshot();
});
afterAll(async () => {
  await runner.stop();
});

/** Header + content blocks for entry kinds our writer refuses to produce. */
function rawEntry(
  name: string | Uint8Array,
  typeflag: string,
  linkname = "",
  content = new Uint8Array(0),
): Uint8Array {
  const header = new Uint8Array(512);
  const enc = new TextEncoder();
  header.set(typeof name === "string" ? enc.encode(name) : name, 0);
  header.set(enc.encode("0000644\0"), 100);
  header.set(enc.encode("0000000\0"), 108);
  header.set(enc.encode("0000000\0"), 116);
  header.set(enc.encode(`${content.length.toString(8).padStart(11, "0")}\0`), 124);
  header.set(enc.encode("00000000000\0"), 136);
  header.fill(0x20, 148, 156);
  header[156] = typeflag.charCodeAt(0);
  header.set(enc.encode(linkname), 157);
  header.set(enc.encode("ustar\0" + "00"), 257);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.set(enc.encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  const padded = new Uint8Array(Math.ceil(content.length / 512) * 512);
  padded.set(content);
  return Buffer.concat([header, padded]);
}

/** A sync body whose entries after the metadata are raw blocks. */
async function rawSyncBody(...blocks: Uint8Array[]): Promise<Uint8Array> {
  const withMeta = await syncBody({ version: 1, deletes: [], expect: "0".repeat(64) }, []);
  return Buffer.concat([withMeta.subarray(0, withMeta.length - 1024), ...blocks, new Uint8Array(1024)]);
}

async function currentBase(): Promise<string> {
  return (await manifest(runner, W)).fingerprint;
}

async function hostileSync(
  body: Uint8Array,
  headers: Record<string, string> = {},
  workdir = W,
): Promise<Response> {
  return sync(runner, workdir, await currentBase().catch(() => EMPTY_FINGERPRINT), body, headers);
}

const files = (entries: TarWriteEntry[], deletes: string[] = []) =>
  syncBody({ version: 1, deletes, expect: "0".repeat(64) }, entries);
const file = (path: string, content = "pwned"): TarWriteEntry => ({
  type: "file",
  path,
  mode: 0o644,
  size: content.length,
  body: new TextEncoder().encode(content),
});

/** A raw HTTP/1.1 request: lets a test lie about Content-Length. */
function rawRequest(head: string): Promise<string> {
  const url = new URL(runner.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
    let data = "";
    socket.on("data", (chunk) => {
      data += chunk.toString();
      if (data.includes("\r\n\r\n") && data.includes("}")) socket.destroy();
    });
    socket.on("close", () => resolve(data));
    socket.on("error", reject);
    setTimeout(() => socket.destroy(), 3000);
  });
}

type Case = [
  name: string,
  run: () => Promise<Response | { status: number; text: string }>,
  status: number,
  code?: string,
];

const cases: Case[] = [
  [
    "tar traversal ../",
    async () => hostileSync(await files([file("../sentinel/keep.txt")])),
    400,
    "unsafe_path",
  ],
  [
    "tar traversal a/../../",
    async () => hostileSync(await files([file("dir/../../sentinel/keep.txt")])),
    400,
    "unsafe_path",
  ],
  ["tar absolute path", async () => hostileSync(await files([file("/etc/keep.txt")])), 400, "unsafe_path"],
  [
    "tar path with NUL (PAX)",
    async () => hostileSync(await files([file("ok\0/../../x")])),
    400,
    "unsafe_path",
  ],
  ["tar dot segment", async () => hostileSync(await files([file("./ok.txt")])), 400, "unsafe_path"],
  [
    "tar symlink parent (left by a remote command)",
    async () => hostileSync(await files([file("to-host/keep.txt")])),
    400,
    "unsafe_path",
  ],
  [
    "tar symlink parent (relative link)",
    async () => hostileSync(await files([file("to-beside/sub/secret")])),
    400,
    "unsafe_path",
  ],
  [
    "symlink then file below it",
    async () =>
      hostileSync(
        await files([
          { type: "symlink", path: "evil", target: join(runner.dir, "sentinel") },
          file("evil/keep.txt"),
        ]),
      ),
    400,
    "unsafe_path",
  ],
  [
    "delete through a symlink",
    async () => hostileSync(await files([], ["to-host/keep.txt"])),
    400,
    "unsafe_path",
  ],
  [
    "delete with traversal",
    async () => hostileSync(await files([], ["../sentinel/keep.txt"])),
    400,
    "unsafe_path",
  ],
  ["delete absolute", async () => hostileSync(await files([], ["/etc/keep.txt"])), 400, "unsafe_path"],
  [
    "hardlink entry",
    async () => hostileSync(await rawSyncBody(rawEntry("hl", "1", "/etc/keep.txt"))),
    400,
    "unsafe_path",
  ],
  [
    "character device entry",
    async () => hostileSync(await rawSyncBody(rawEntry("dev", "3"))),
    400,
    "unsafe_path",
  ],
  ["fifo entry", async () => hostileSync(await rawSyncBody(rawEntry("fifo", "6"))), 400, "unsafe_path"],
  ["unknown entry type", async () => hostileSync(await rawSyncBody(rawEntry("v", "V"))), 400, "bad_request"],
  [
    "non-UTF-8 entry name",
    async () => hostileSync(await rawSyncBody(rawEntry(new Uint8Array([0x61, 0xff]), "0"))),
    400,
    "bad_request",
  ],
  [
    "malformed tar",
    async () => hostileSync(new TextEncoder().encode("this is not a tar archive".repeat(50))),
    400,
    "bad_request",
  ],
  [
    "gzip header on a plain body",
    async () => hostileSync(await files([file("x")]), { "content-encoding": "gzip" }),
    400,
    "bad_request",
  ],
  [
    "unknown content encoding",
    async () => hostileSync(gzipSync(await files([])), { "content-encoding": "br" }),
    400,
    "bad_request",
  ],
  [
    "metadata not first",
    async () =>
      hostileSync(
        Buffer.concat([rawEntry("x.txt", "0", "", new Uint8Array([120])), rawMeta(), new Uint8Array(1024)]),
      ),
    400,
    "bad_request",
  ],
  ["metadata missing (empty archive)", async () => hostileSync(new Uint8Array(1024)), 400, "bad_request"],
  ["metadata malformed JSON", async () => hostileSync(rawSyncBodyWithMeta("{not json")), 400, "bad_request"],
  [
    "metadata with a bad expect",
    async () => hostileSync(rawSyncBodyWithMeta('{"version":1,"deletes":[],"expect":"nope"}')),
    400,
    "bad_request",
  ],
  ["missing base header", async () => sync(runner, W, "", await files([])), 400, "bad_request"],
  ["too-broad workdir /", async () => hostileSync(await files([file("x")]), {}, "/"), 400, "bad_request"],
  [
    "too-broad workdir /etc",
    async () => hostileSync(await files([file("x")]), {}, "/etc"),
    400,
    "bad_request",
  ],
  [
    "workdir in /proc",
    async () => hostileSync(await files([file("x")]), {}, "/proc/self"),
    400,
    "bad_request",
  ],
  [
    "relative workdir",
    async () => hostileSync(await files([file("x")]), {}, "workspace/x"),
    400,
    "bad_request",
  ],
  [
    "unclean workdir",
    async () => hostileSync(await files([file("x")]), {}, "/workspace/../etc"),
    400,
    "bad_request",
  ],
  [
    "workdir over runner state",
    async () => hostileSync(await files([file("x")]), {}, "/var/lib/crabbox-runner/m"),
    400,
    "bad_request",
  ],
  [
    "oversize sync (Content-Length)",
    async () => {
      const text = await rawRequest(
        `POST /v1/sync?workdir=${W} HTTP/1.1\r\nHost: x\r\nX-Crabbox-Sync-Base: empty\r\nContent-Length: ${2 ** 31 + 1}\r\n\r\n`,
      );
      return { status: Number(text.split(" ")[1]), text: text.slice(text.indexOf("\r\n\r\n") + 4) };
    },
    413,
    "too_large",
  ],
  [
    "oversize exec JSON",
    async () => postExec(runner, { command: "true", workdir: W, pad: "x".repeat(1024 * 1024) }),
    413,
    "too_large",
  ],
  [
    "malformed exec JSON",
    async () => fetch(`${runner.url}/v1/exec`, { method: "POST", body: '{"command": "true", ' }),
    400,
    "bad_request",
  ],
  [
    "bad env name",
    async () => postExec(runner, { command: "true", workdir: W, env: { "BAD-NAME": "x" } }),
    400,
    "bad_request",
  ],
  [
    "env value with NUL",
    async () => postExec(runner, { command: "true", workdir: W, env: { OK: "a\0b" } }),
    400,
    "bad_request",
  ],
  [
    "exec too-broad workdir",
    async () => postExec(runner, { command: "true", workdir: "/" }),
    400,
    "bad_request",
  ],
  [
    "exec cwd traversal",
    async () => postExec(runner, { command: "true", workdir: W, cwd: "../../etc" }),
    400,
    "unsafe_path",
  ],
  [
    "exec cwd absolute",
    async () => postExec(runner, { command: "true", workdir: W, cwd: "/etc" }),
    400,
    "unsafe_path",
  ],
  [
    "exec command with NUL",
    async () => postExec(runner, { command: "true\0rm -rf /", workdir: W }),
    400,
    "bad_request",
  ],
  ["exec blank command", async () => postExec(runner, { command: "  ", workdir: W }), 400, "bad_request"],
  [
    "exec bad execId",
    async () => postExec(runner, { command: "true", workdir: W, execId: "../x" }),
    400,
    "bad_request",
  ],
];

function rawMeta(): Uint8Array {
  const meta = JSON.stringify({ version: 1, deletes: [], expect: "0".repeat(64) });
  return rawEntry(".crabbox-sync.json", "0", "", new TextEncoder().encode(meta));
}

function rawSyncBodyWithMeta(meta: string): Uint8Array {
  return Buffer.concat([
    rawEntry(".crabbox-sync.json", "0", "", new TextEncoder().encode(meta)),
    new Uint8Array(1024),
  ]);
}

describe("hostile inputs", () => {
  test("there are at least 30 of them (the reliability issue's floor)", () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  for (const [name, run, status, code] of cases) {
    test(`refused: ${name}`, async () => {
      const response = await run();
      const body = response instanceof Response ? await response.text() : response.text;
      expect(response.status).toBe(status);
      if (code) expect(JSON.parse(body)).toMatchObject({ code });
      expect(JSON.parse(body).message).toBeString();
      expect(snapshot()).toBe(before);
    });
  }

  test("a second metadata member is refused", async () => {
    const twice = await hostileSync(await files([file(".crabbox-sync.json", "{}")]));
    expect(twice.status).toBe(400);
    expect(snapshot()).toBe(before);
  });

  test("a file replacing a symlink to a sentinel replaces the link, never writes through it", async () => {
    const target = join(runner.dir, "sentinel/keep.txt");
    // Refused applies above may have left partial, truthfully recorded state: build on it.
    const current = (await manifest(runner, W)).entries.filter((entry) => entry.path !== "same");
    const step1 = fingerprint([...current, symlinkEntry("same", target)]);
    let response = await sync(
      runner,
      W,
      await currentBase(),
      await syncBody({ version: 1, deletes: [], expect: step1 }, tarEntries({ same: { symlink: target } })),
    );
    expect(response.status).toBe(200);
    const content = new TextEncoder().encode("overwritten?");
    const step2 = fingerprint([
      ...current,
      { path: "same", type: "file", mode: 0o644, size: content.length, sha256: sha256Hex(content) },
    ]);
    response = await sync(
      runner,
      W,
      step1,
      await syncBody({ version: 1, deletes: [], expect: step2 }, [file("same", "overwritten?")]),
    );
    expect(response.status).toBe(200);
    expect(readFileSync(join(runner.root, W, "same"), "utf8")).toBe("overwritten?");
    expect(snapshot()).toBe(before);
  });

  test("the runner is still healthy and the workdir manifest is truthful", async () => {
    expect((await fetch(`${runner.url}/health`)).status).toBe(200);
    const remote = await manifest(runner, W);
    for (const entry of remote.entries) {
      const path = join(runner.root, W, entry.path);
      const stats = lstatSync(path);
      expect(stats.isSymbolicLink()).toBe(entry.type === "symlink");
    }
  });
});
