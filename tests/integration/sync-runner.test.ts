/**
 * The client half of sync end to end: a real git checkout → manifest → hashes → plan against the
 * runner's manifest → streamed compressed archive → POST /v1/sync through the data-plane client,
 * against a real runner process. After every step the runner's workdir must equal the checkout.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fingerprint } from "../../src/protocol/fingerprint.ts";
import {
  dataPlaneTarget,
  parseControlPlaneEndpoint,
} from "../../src/providers/aws-lambda-microvm/endpoint.ts";
import { RunnerHttpError } from "../../src/providers/aws-lambda-microvm/http.ts";
import {
  createRunnerClient,
  type RunnerClient,
} from "../../src/providers/aws-lambda-microvm/runner-client.ts";
import { createSyncArchive } from "../../src/sync/archive.ts";
import type { CompressionChoice } from "../../src/sync/compress.ts";
import { syncToRunner } from "../../src/sync/engine.ts";
import { DEFAULT_SYNC_LIMITS } from "../../src/sync/guard.ts";
import { hashLocalFiles } from "../../src/sync/hash.ts";
import { readLocalManifest } from "../../src/sync/manifest.ts";
import { isNoopPlan, planSync } from "../../src/sync/plan.ts";
import { snapshotCheckout } from "../../src/sync/snapshot.ts";
import { repoRoot, startRunner, type TestRunner } from "../fixtures/runner/harness.ts";

const HOST = "vm-sync.lambda-microvm.eu-west-1.on.aws";
let runner: TestRunner;
let client: RunnerClient;
const dirs: string[] = [];

beforeAll(async () => {
  runner = await startRunner();
  const target = dataPlaneTarget(HOST, "eu-west-1", parseControlPlaneEndpoint(runner.url, "flag"));
  client = createRunnerClient({ target, getToken: async () => ({ value: "test-token", fromCache: false }) });
});
afterAll(async () => {
  client?.close();
  await runner?.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function makeRepo(): { root: string; env: Record<string, string> } {
  const base = mkdtempSync(join(tmpdir(), "crabbox-sync-runner-"));
  dirs.push(base);
  const root = join(base, "repo");
  mkdirSync(root);
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: base, GIT_CONFIG_NOSYSTEM: "1" };
  execFileSync("git", ["init", "-q"], { cwd: root, env });
  return { root, env };
}

function write(root: string, path: string, content: string, mode = 0o644): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), content);
  chmodSync(join(root, path), mode);
}

/** Every file/symlink under a directory: path → description (type, mode, content or target). */
function snapshot(dir: string, skip: (path: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (current: string) => {
    for (const name of readdirSync(current)) {
      const absolute = join(current, name);
      const path = relative(dir, absolute);
      if (skip(path)) continue;
      const stat = lstatSync(absolute);
      if (stat.isDirectory()) walk(absolute);
      else if (stat.isSymbolicLink()) out[path] = `link:${readlinkSync(absolute)}`;
      else out[path] = `file:${(stat.mode & 0o777).toString(8)}:${readFileSync(absolute, "utf8")}`;
    }
  };
  walk(dir);
  return out;
}

async function syncRepo(
  root: string,
  env: Record<string, string>,
  workdir: string,
  compression: CompressionChoice,
) {
  const manifest = await readLocalManifest({ cwd: root, env });
  const { entries } = await hashLocalFiles(manifest.root, manifest.files);
  const remote = await client.manifest(workdir);
  const plan = planSync(entries, remote);
  const mtimes = new Map(manifest.files.map((file) => [file.path, file.mtimeMs]));
  const archive = createSyncArchive({ root: manifest.root, plan, compression, mtimes });
  const result = await client.sync(workdir, plan.base, archive.body, archive.encoding);
  return { plan, result, counters: archive.counters, entries };
}

const isGit = (path: string) => path === ".git" || path.startsWith(".git/");

describe.each([
  ["gzip", { encoding: "gzip" }],
  ["gzip-portable", { encoding: "gzip", portable: true }],
  ["zstd", { encoding: "zstd" }],
  ["identity", { encoding: "identity" }],
] as [string, CompressionChoice][])("sync through the runner (%s)", (name, compression) => {
  test("full sync, then edits of every kind converge; unsynced remote files survive", async () => {
    const { root, env } = makeRepo();
    const workdir = `/workspace/${name}`;
    const remoteDir = join(runner.root, workdir);
    const long = `${"p".repeat(60)}/${"q".repeat(60)}/${"r".repeat(70)}.txt`;
    write(root, "README.md", "# hello\n");
    write(root, "bin/run.sh", "#!/bin/sh\necho run\n", 0o755);
    write(root, long, "long path\n");
    write(root, "dir-to-file/child.txt", "child\n");
    write(root, "file-to-dir", "plain\n");
    write(root, "rename-me.txt", "moving\n");
    write(root, "node_modules/local-only.js", "never synced\n");
    symlinkSync("README.md", join(root, "link"));

    const first = await syncRepo(root, env, workdir, compression);
    expect(first.plan.base).toBe("empty");
    expect(first.result.fingerprint).toBe(first.plan.expect);
    expect(snapshot(remoteDir)).toEqual(snapshot(root, (p) => isGit(p) || p.startsWith("node_modules")));
    expect(readFileSync(join(remoteDir, long), "utf8")).toBe("long path\n");
    expect(existsSync(join(remoteDir, "node_modules"))).toBe(false);

    // Something the remote command created outside the synced set.
    mkdirSync(join(remoteDir, "build-cache"), { recursive: true });
    writeFileSync(join(remoteDir, "build-cache/artifact.o"), "remote");

    // One edit: only that file travels.
    write(root, "README.md", "# hello again\n");
    const edit = await syncRepo(root, env, workdir, compression);
    expect(edit.plan.writes.map((e) => e.path)).toEqual(["README.md"]);
    expect(edit.plan.deletes).toEqual([]);
    expect(edit.counters.contentBytes).toBe("# hello again\n".length);
    expect(edit.result).toMatchObject({ written: 1, deleted: 0, fingerprint: edit.plan.expect });

    // Rename, delete, mode change, symlink retarget, file↔directory swaps.
    renameSync(join(root, "rename-me.txt"), join(root, "renamed.txt"));
    chmodSync(join(root, "bin/run.sh"), 0o700);
    rmSync(join(root, "link"));
    symlinkSync(long, join(root, "link"));
    rmSync(join(root, "dir-to-file"), { recursive: true });
    write(root, "dir-to-file", "now a file\n");
    rmSync(join(root, "file-to-dir"));
    write(root, "file-to-dir/inside.txt", "now a dir\n");
    const change = await syncRepo(root, env, workdir, compression);
    expect(change.plan.deletes).toEqual(["dir-to-file/child.txt", "file-to-dir", "rename-me.txt"]);
    expect(change.plan.writes.map((e) => e.path)).toEqual([
      "bin/run.sh",
      "dir-to-file",
      "file-to-dir/inside.txt",
      "link",
      "renamed.txt",
    ]);
    expect(change.result.fingerprint).toBe(fingerprint(change.entries));
    expect(snapshot(remoteDir, (p) => p.startsWith("build-cache"))).toEqual(
      snapshot(root, (p) => isGit(p) || p.startsWith("node_modules")),
    );
    expect(readFileSync(join(remoteDir, "build-cache/artifact.o"), "utf8")).toBe("remote");

    // Unchanged: nothing to send.
    const remote = await client.manifest(workdir);
    const manifest = await readLocalManifest({ cwd: root, env });
    const { entries } = await hashLocalFiles(manifest.root, manifest.files);
    expect(isNoopPlan(planSync(entries, remote))).toBe(true);
  });
});

describe("sync conflicts", () => {
  test("a stale base is refused with the runner's fingerprint (409) and nothing changes", async () => {
    const { root, env } = makeRepo();
    const workdir = "/workspace/conflict";
    write(root, "a.txt", "a\n");
    const first = await syncRepo(root, env, workdir, { encoding: "gzip" });
    write(root, "a.txt", "changed\n");
    const manifest = await readLocalManifest({ cwd: root, env });
    const { entries } = await hashLocalFiles(manifest.root, manifest.files);
    const plan = planSync(entries, { fingerprint: "0".repeat(64), entries: [] });
    const archive = createSyncArchive({ root, plan, compression: { encoding: "gzip" } });
    const error = await client
      .sync(workdir, plan.base, archive.body, archive.encoding)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RunnerHttpError);
    expect(error).toMatchObject({
      status: 409,
      code: "base_mismatch",
      fingerprint: first.result.fingerprint,
    });
    expect(readFileSync(join(runner.root, workdir, "a.txt"), "utf8")).toBe("a\n");
  });
});

describe("under Deno", () => {
  test("manifest, hashing, archive (portable gzip) and the node:http client work unchanged", async () => {
    const { root, env } = makeRepo();
    write(root, "hello.txt", "from deno\n");
    write(root, "tool.sh", "#!/bin/sh\n", 0o755);
    symlinkSync("hello.txt", join(root, "alias"));
    const script = join(root, "..", "deno-sync.ts");
    const src = (path: string) => JSON.stringify(join(repoRoot, "src", path));
    writeFileSync(
      script,
      `
import { readLocalManifest } from ${src("sync/manifest.ts")};
import { hashLocalFiles } from ${src("sync/hash.ts")};
import { planSync } from ${src("sync/plan.ts")};
import { createSyncArchive } from ${src("sync/archive.ts")};
import { compressionImplementation } from ${src("sync/compress.ts")};
import { dataPlaneTarget, parseControlPlaneEndpoint } from ${src("providers/aws-lambda-microvm/endpoint.ts")};
import { createRunnerClient } from ${src("providers/aws-lambda-microvm/runner-client.ts")};
const [cwd, url, workdir] = Deno.args;
const target = dataPlaneTarget(${JSON.stringify(HOST)}, "eu-west-1", parseControlPlaneEndpoint(url, "flag"));
const client = createRunnerClient({ target, getToken: async () => ({ value: "t", fromCache: false }) });
const manifest = await readLocalManifest({ cwd });
const { entries } = await hashLocalFiles(manifest.root, manifest.files);
const plan = planSync(entries, await client.manifest(workdir));
const archive = createSyncArchive({ root: manifest.root, plan, compression: { encoding: "gzip" } });
const result = await client.sync(workdir, plan.base, archive.body, archive.encoding);
const events = [];
for await (const event of client.exec({ command: "cat hello.txt", workdir })) events.push(event.type);
client.close();
console.log(JSON.stringify({ impl: compressionImplementation({ encoding: "gzip" }), expect: plan.expect, result, events }));
`,
    );
    const deno = join(repoRoot, "node_modules/.bin/deno");
    const child = spawn(deno, ["run", "-A", "--quiet", script, root, runner.url, "/workspace/deno"], {
      env: { ...env, DENO_NO_UPDATE_CHECK: "1", DENO_DIR: join(root, "..", "deno-dir") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.impl).toBe("zlib-stream");
    expect(out.result).toMatchObject({ fingerprint: out.expect, written: 3 });
    expect(out.events).toEqual(["started", "stdout", "exit"]);
    expect(readFileSync(join(runner.root, "workspace/deno/hello.txt"), "utf8")).toBe("from deno\n");
    expect(readlinkSync(join(runner.root, "workspace/deno/alias"))).toBe("hello.txt");
  }, 60_000);
});

describe("syncToRunner against the runner", () => {
  test("remembered manifest: unchanged → no request; stale base → 409, re-read, converge", async () => {
    const { root, env } = makeRepo();
    const workdir = "/workspace/engine";
    write(root, "a.txt", "a\n");
    write(root, "b.txt", "b\n");
    const limits = { ...DEFAULT_SYNC_LIMITS };
    const snap = () => snapshotCheckout({ cwd: root, env, limits });

    const first = await syncToRunner({
      runner: client,
      workdir,
      snapshot: await snap(),
      compression: { encoding: "gzip" },
    });
    expect(first).toMatchObject({ uploads: 1, manifestReads: 1 });
    expect(first.result?.written).toBe(2);

    const unchanged = await syncToRunner({
      runner: client,
      workdir,
      snapshot: await snap(),
      compression: { encoding: "gzip" },
      remembered: first.remote,
    });
    expect(unchanged).toMatchObject({ uploads: 0, manifestReads: 0, result: undefined });

    // A remote command rewrites a synced file; locally another file changes.
    writeFileSync(join(runner.root, workdir, "b.txt"), "changed remotely\n");
    write(root, "a.txt", "a2\n");
    const resync = await syncToRunner({
      runner: client,
      workdir,
      snapshot: await snap(),
      compression: { encoding: "gzip" },
      remembered: first.remote,
    });
    expect(resync).toMatchObject({ uploads: 2, manifestReads: 1 });
    expect(resync.plan.writes.map((e) => e.path)).toEqual(["a.txt", "b.txt"]);
    expect(readFileSync(join(runner.root, workdir, "b.txt"), "utf8")).toBe("b\n");
    expect(readFileSync(join(runner.root, workdir, "a.txt"), "utf8")).toBe("a2\n");
    expect((await client.manifest(workdir)).fingerprint).toBe(resync.remote.fingerprint);
  });
});
