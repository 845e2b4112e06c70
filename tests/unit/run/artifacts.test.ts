import { afterEach, describe, expect, test } from "bun:test";
import {
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
  createArtifactWriter,
  destinationFor,
  ensureCrabboxGitignore,
  parseDownloadSpec,
  remotePattern,
  staticBase,
} from "../../../src/core/artifacts.ts";
import { CrabboxError } from "../../../src/core/errors.ts";
import type { SummaryDownload } from "../../../src/core/run-summary.ts";
import { createTarStream, type TarWriteEntry } from "../../../src/protocol/tar.ts";
import { FILES_META_NAME } from "../../../src/protocol/types.ts";
import { downloadArtifacts } from "../../../src/providers/aws-lambda-microvm/artifacts.ts";
import type { RunnerClient } from "../../../src/providers/aws-lambda-microvm/runner-client.ts";
import type { Reporter } from "../../../src/providers/provider.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-artifacts-"));
  dirs.push(dir);
  return dir;
}

describe("--download values", () => {
  test("remote, optional =local, tidied", () => {
    expect(parseDownloadSpec("coverage/")).toEqual({
      raw: "coverage/",
      remote: "coverage",
      local: undefined,
    });
    expect(parseDownloadSpec("./junit.xml=reports/junit.xml")).toEqual({
      raw: "./junit.xml=reports/junit.xml",
      remote: "junit.xml",
      local: "reports/junit.xml",
    });
    expect(parseDownloadSpec("**/*.xml=xml").remote).toBe("**/*.xml");
    expect(parseDownloadSpec(".").remote).toBe(".");
  });

  test.each([
    ["/etc/passwd", "remote absolute path"],
    ["../secret", "remote path contains '..'"],
    ["a/../../b", "remote path contains '..'"],
    ["out=../up", "local path contains '..'"],
    ["out=/tmp/x", "local absolute path"],
    ["out=", "local empty local path"],
  ])("%s is refused (exit 2)", (value, message) => {
    let error: unknown;
    try {
      parseDownloadSpec(value);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(2);
    expect((error as CrabboxError).message).toContain(message);
  });

  test("patterns are relative to the workdir, under the remote cwd", () => {
    expect(remotePattern(parseDownloadSpec("out"), ".")).toBe("out");
    expect(remotePattern(parseDownloadSpec("out"), "packages/api")).toBe("packages/api/out");
    expect(remotePattern(parseDownloadSpec("."), "packages/api")).toBe("packages/api");
    expect(staticBase("reports/**/*.xml")).toBe("reports");
    expect(staticBase("**/*.xml")).toBe("");
    expect(staticBase("dist/app.js")).toBe("dist/app.js");
  });
});

describe("where entries land", () => {
  const at = (value: string, cwd: string, entry: string) =>
    destinationFor(parseDownloadSpec(value), cwd, entry);

  test("without =local: the path below the remote cwd", () => {
    expect(at("coverage/lcov.info", ".", "coverage/lcov.info")).toBe("coverage/lcov.info");
    expect(at("out", "pkg", "pkg/out/a.txt")).toBe("out/a.txt");
    expect(at("**/*.xml", ".", "a/b/t.xml")).toBe("a/b/t.xml");
  });

  test("with =local: a file is renamed, a directory or glob is rooted there", () => {
    expect(at("coverage/lcov.info=lcov.info", ".", "coverage/lcov.info")).toBe("lcov.info");
    expect(at("dist=out", ".", "dist")).toBe("out");
    expect(at("dist=out", ".", "dist/js/app.js")).toBe("out/js/app.js");
    expect(at("reports/**/*.xml=junit", ".", "reports/a/t.xml")).toBe("junit/a/t.xml");
  });

  test("entries the spec did not ask for, or that could escape, go nowhere", () => {
    expect(at("dist", ".", "src/secret.ts")).toBeUndefined();
    expect(at("dist", ".", "distant/file")).toBeUndefined();
    expect(at("out", "pkg", "other/out/a")).toBeUndefined();
    expect(at("dist", ".", "dist/../../etc/passwd")).toBeUndefined();
    expect(at("dist", ".", "/dist/a")).toBeUndefined();
  });
});

describe("the artifact writer never writes outside its directory", () => {
  const body = (text: string) => new Blob([text]).stream() as ReadableStream<Uint8Array>;

  test("files, directories and modes", async () => {
    const dir = tempDir();
    const writer = await createArtifactWriter(join(dir, "art"));
    expect(await writer.file("a/b/c.txt", 0o755, 0, body("hi"))).toBe(2);
    await writer.directory("empty/dir", 0o700);
    expect(readFileSync(join(dir, "art/a/b/c.txt"), "utf8")).toBe("hi");
    expect(lstatSync(join(dir, "art/a/b/c.txt")).mode & 0o777).toBe(0o755);
    expect(lstatSync(join(dir, "art/empty/dir")).isDirectory()).toBe(true);
  });

  test("a symlink parent is refused, its target untouched", async () => {
    const dir = tempDir();
    const outside = join(dir, "outside");
    mkdirSync(outside);
    mkdirSync(join(dir, "art"));
    symlinkSync(outside, join(dir, "art", "link"));
    const writer = await createArtifactWriter(join(dir, "art"));
    await expect(writer.file("link/owned.txt", 0o644, 0, body("x"))).rejects.toThrow(/link is a symlink/);
    await expect(writer.directory("link/sub", 0o755)).rejects.toThrow(/symlink/);
    expect(() => lstatSync(join(outside, "owned.txt"))).toThrow();
  });

  test("an existing symlink at the target is replaced, never followed", async () => {
    const dir = tempDir();
    const victim = join(dir, "victim.txt");
    writeFileSync(victim, "original");
    mkdirSync(join(dir, "art"));
    symlinkSync(victim, join(dir, "art", "report.txt"));
    const writer = await createArtifactWriter(join(dir, "art"));
    await writer.file("report.txt", 0o644, 0, body("new"));
    expect(readFileSync(victim, "utf8")).toBe("original");
    expect(lstatSync(join(dir, "art/report.txt")).isSymbolicLink()).toBe(false);
    expect(readFileSync(join(dir, "art/report.txt"), "utf8")).toBe("new");
  });

  test("symlinks only to relative targets without ..", async () => {
    const dir = tempDir();
    const writer = await createArtifactWriter(join(dir, "art"));
    await writer.symlink("bin/tool", "real-tool");
    expect(readlinkSync(join(dir, "art/bin/tool"))).toBe("real-tool");
    await expect(writer.symlink("x", "/etc/passwd")).rejects.toThrow(/outside/);
    await expect(writer.symlink("y", "../../etc")).rejects.toThrow(/outside/);
    await expect(writer.symlink("sub/z", "a/../../..")).rejects.toThrow(/outside/);
  });

  test("unsafe paths are refused", async () => {
    const writer = await createArtifactWriter(join(tempDir(), "art"));
    await expect(writer.file("../escape", 0o644, 0, body("x"))).rejects.toThrow(/\.\./);
    await expect(writer.file("/abs", 0o644, 0, body("x"))).rejects.toThrow(/absolute/);
  });

  test(".crabbox/.gitignore holds * and is left alone once there", async () => {
    const root = tempDir();
    await ensureCrabboxGitignore(root);
    expect(readFileSync(join(root, ".crabbox/.gitignore"), "utf8")).toBe("*\n");
    writeFileSync(join(root, ".crabbox/.gitignore"), "custom\n");
    await ensureCrabboxGitignore(root);
    expect(readFileSync(join(root, ".crabbox/.gitignore"), "utf8")).toBe("custom\n");
  });
});

describe("downloadArtifacts with a hostile runner", () => {
  const quiet: Reporter = { info() {}, warn() {}, debug() {}, stdout() {}, stderr() {} };

  function runnerAnswering(entries: TarWriteEntry[]): RunnerClient {
    const meta = new TextEncoder().encode(JSON.stringify({ stale: ["dist/old.js"], unmatched: [] }));
    const all: TarWriteEntry[] = [
      ...entries,
      { type: "file", path: FILES_META_NAME, mode: 0o644, size: meta.length, body: meta },
    ];
    return {
      files: async () => createTarStream(all),
    } as unknown as RunnerClient;
  }

  test("entries outside the request, escaping links and link parents are refused; the rest lands", async () => {
    const dir = tempDir();
    const file = (path: string, text: string): TarWriteEntry => {
      const bytes = new TextEncoder().encode(text);
      return { type: "file", path, mode: 0o644, size: bytes.length, body: bytes };
    };
    const runner = runnerAnswering([
      file("dist/app.js", "ok"),
      file("src/not-asked.ts", "no"),
      { type: "symlink", path: "dist/escape", target: "../../../etc" },
      file("dist/escape/passwd", "inside"),
      { type: "symlink", path: "dist/ok-link", target: "app.js" },
      { type: "symlink", path: "dist/dir-link", target: "sub" },
      file("dist/dir-link/through.txt", "no"),
    ]);
    const result = await downloadArtifacts({
      runner,
      workdir: "/workspace/crabbox",
      cwd: ".",
      specs: [parseDownloadSpec("dist=out")],
      sinceMs: 0,
      dir: join(dir, "art"),
      required: true,
      report: quiet,
      signal: new AbortController().signal,
    });
    const [download] = result.downloads as [SummaryDownload];
    expect(download.status).toBe("downloaded");
    expect(download.files.map((f) => [f.remote, f.local, f.type])).toEqual([
      ["dist/app.js", "out/app.js", "file"],
      ["dist/escape/passwd", "out/escape/passwd", "file"],
      ["dist/ok-link", "out/ok-link", "symlink"],
      ["dist/dir-link", "out/dir-link", "symlink"],
    ]);
    expect(download.refused.map((r) => r.remote)).toEqual([
      "src/not-asked.ts",
      "dist/escape",
      "dist/dir-link/through.txt",
    ]);
    expect(download.stale).toEqual(["dist/old.js"]);
    expect(readFileSync(join(dir, "art/out/app.js"), "utf8")).toBe("ok");
    // The refused link never existed: its path became a plain directory inside the artifact dir.
    expect(lstatSync(join(dir, "art/out/escape")).isDirectory()).toBe(true);
    expect(() => lstatSync(join(dir, "art/out/sub/through.txt"))).toThrow();
  });
});
