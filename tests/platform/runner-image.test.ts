/**
 * The image artifact: `npm run package:runner` builds a zip with exactly Dockerfile, the
 * linux-arm64 runner and a README, and that runner works on arm64 (under qemu-aarch64-static with
 * the Debian arm64 libc: `apt-get install qemu-user-static libc6-arm64-cross`).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, inflateRawSync } from "node:zlib";
import { repoRoot } from "../../scripts/bun-runtime.ts";
import { packageRunner, RUNNER_BINARY_NAME } from "../../scripts/package-runner.ts";
import { parseRunnerDockerfile } from "../../src/image/dockerfile.ts";

// qemu-user runs a 110 MB Bun binary slowly; bun test's 5 s default is too tight.
setDefaultTimeout(60_000);

const qemu = spawnSync("sh", ["-c", "command -v qemu-aarch64-static"], { encoding: "utf8" }).stdout.trim();
const sysroot = "/usr/aarch64-linux-gnu";
if (!qemu) {
  console.log(
    "SKIP runner-image arm64 checks: qemu-aarch64-static is not installed (apt-get install qemu-user-static libc6-arm64-cross)",
  );
}

interface ZipEntry {
  name: string;
  mode: number;
  data: Uint8Array;
}

/** Reads a zip through its central directory (what unzip does), inflating and checking CRCs. */
function readZip(zip: Buffer): ZipEntry[] {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let offset = zip.readUInt32LE(end + 16);
  const entries: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    expect(zip.readUInt32LE(offset)).toBe(0x02014b50);
    const method = zip.readUInt16LE(offset + 10);
    const crc = zip.readUInt32LE(offset + 16);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const external = zip.readUInt32LE(offset + 38);
    const local = zip.readUInt32LE(offset + 42);
    const name = zip.subarray(offset + 46, offset + 46 + nameLength).toString("utf8");
    const dataStart = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(dataStart, dataStart + compressedSize);
    const data = method === 8 ? inflateRawSync(raw) : raw;
    expect(crc32(data)).toBe(crc);
    entries.push({ name, mode: (external >>> 16) & 0o7777, data });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

let dir: string;
let entries: ZipEntry[];
let binary: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "crabbox-runner-image-"));
  const zipPath = await packageRunner(join(dir, "image.zip"));
  entries = readZip(readFileSync(zipPath));
  binary = join(dir, RUNNER_BINARY_NAME);
  const runner = entries.find((entry) => entry.name === RUNNER_BINARY_NAME);
  if (runner) {
    writeFileSync(binary, runner.data);
    chmodSync(binary, 0o755);
  }
}, 120_000);

afterAll(() => {
  for (const child of children) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("runner image zip", () => {
  test("holds exactly Dockerfile, the runner binary and README.md", () => {
    expect(entries.map((entry) => entry.name).sort()).toEqual([
      "Dockerfile",
      "README.md",
      RUNNER_BINARY_NAME,
    ]);
    expect(entries.find((entry) => entry.name === RUNNER_BINARY_NAME)?.mode).toBe(0o755);
    const dockerfile = entries.find((entry) => entry.name === "Dockerfile");
    expect(new TextDecoder().decode(dockerfile?.data)).toBe(
      readFileSync(join(repoRoot, "runner/Dockerfile"), "utf8"),
    );
    const parsed = parseRunnerDockerfile(new TextDecoder().decode(dockerfile?.data));
    expect(parsed.copies.some((copy) => copy.sources.includes(RUNNER_BINARY_NAME))).toBe(true);
  });

  test("the runner binary is an aarch64 ELF", () => {
    const data = entries.find((entry) => entry.name === RUNNER_BINARY_NAME)?.data as Uint8Array;
    expect([...data.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
    // e_machine at 0x12: 183 = EM_AARCH64
    expect(Buffer.from(data).readUInt16LE(0x12)).toBe(183);
  });

  test.skipIf(!qemu)("answers --version under qemu-aarch64-static", () => {
    const result = spawnSync(qemu, ["-L", sysroot, binary, "--version"], {
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^crabbox-runner \S+ protocol 1\n$/);
  });

  test.skipIf(!qemu)(
    "serves /health and runs a command under qemu-aarch64-static",
    async () => {
      const root = join(dir, "root");
      const child = spawn(qemu, ["-L", sysroot, binary, "--listen", "127.0.0.1:0", "--root", root], {
        stdio: ["ignore", "ignore", "pipe"],
        detached: true,
      });
      children.push(child);
      let stderr = "";
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr?.on("data", (chunk: Buffer) => {
          stderr += chunk.toString();
          const match = /listening on (http:\/\/\S+)/.exec(stderr);
          if (match) resolve(match[1] as string);
        });
        child.on("exit", (code) => reject(new Error(`runner exited ${code}: ${stderr}`)));
      });
      expect(await (await fetch(`${url}/health`)).json()).toMatchObject({ status: "ok", protocol: 1 });
      const response = await fetch(`${url}/v1/exec`, {
        method: "POST",
        body: JSON.stringify({ command: "uname -m; exit 4", workdir: "/workspace/crabbox" }),
      });
      const lines = (await response.text())
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(lines.at(-1)).toMatchObject({ type: "exit", exitCode: 4 });
      process.kill(-(child.pid as number), "SIGTERM");
    },
    60_000,
  );
});
