/**
 * The runner's sync, manifest and files endpoints, black-box over HTTP against a real runner.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { readBody, readTar } from "../../src/protocol/tar.ts";
import { EMPTY_FINGERPRINT } from "../../src/protocol/types.ts";
import {
  exec,
  fingerprintOf,
  manifest,
  manifestOf,
  startRunner,
  sync,
  syncBody,
  type TestRunner,
  type TreeSpec,
  tarEntries,
  text,
} from "../fixtures/runner/harness.ts";
import { walkSync } from "../fixtures/runner/tree.ts";

// Real processes on a possibly busy 2-core CI machine: bun test's 5 s default is too tight.
setDefaultTimeout(30_000);
let runner: TestRunner;
beforeAll(async () => {
  runner = await startRunner();
});
afterAll(async () => {
  await runner.stop();
});

const host = (workdir: string, path = "") => join(runner.root, workdir, path);
const isDir = (path: string, workdir: string) => path === "" || lstatSync(host(workdir, path)).isDirectory();
const sorted = <T extends { path: string }>(entries: T[]) =>
  [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

async function fullSync(workdir: string, base: string, tree: TreeSpec, deletes: string[] = []) {
  const body = await syncBody({ version: 1, deletes, expect: fingerprintOf(tree) }, tarEntries(tree));
  return sync(runner, workdir, base, body);
}

describe("sync", () => {
  test("full sync, then a delta, round-trips through the manifest", async () => {
    const W = "/workspace/roundtrip";
    const tree: TreeSpec = {
      "README.md": { content: "# hi\n" },
      "bin/run.sh": { content: "#!/bin/sh\necho run\n", mode: 0o755 },
      "src/deep/a.ts": { content: "export const a = 1;\n", mode: 0o600 },
      "link-to-readme": { symlink: "README.md" },
      [`${"long-dir-name/".repeat(12)}file.txt`]: { content: "deep" },
    };
    const first = await fullSync(W, EMPTY_FINGERPRINT, tree);
    expect(first.status).toBe(200);
    const result = await first.json();
    expect(result).toMatchObject({
      fingerprint: fingerprintOf(tree),
      written: 5,
      deleted: 0,
      removedUnsynced: 0,
    });
    expect(result.bytesIn).toBeGreaterThan(0);
    expect(lstatSync(host(W, "bin/run.sh")).mode & 0o777).toBe(0o755);
    expect(lstatSync(host(W, "src/deep/a.ts")).mode & 0o777).toBe(0o600);
    expect(readlinkSync(host(W, "link-to-readme"))).toBe("README.md");

    // The manifest lives outside the workdir: W holds exactly the synced tree.
    expect(
      walkSync(host(W))
        .map((path) => path.slice(host(W).length + 1))
        .filter((path) => !isDir(path, W))
        .sort(),
    ).toEqual(Object.keys(tree).sort());
    const remote = await manifest(runner, W);
    expect(remote.fingerprint).toBe(fingerprintOf(tree));
    expect(sorted(remote.entries)).toEqual(sorted(manifestOf(tree)));

    // Delta: change one file, add one, delete the only file of a directory.
    const next: TreeSpec = {
      ...tree,
      "README.md": { content: "# changed\n" },
      "new.txt": { content: "new" },
    };
    delete next["src/deep/a.ts"];
    const delta = await syncBody({ version: 1, deletes: ["src/deep/a.ts"], expect: fingerprintOf(next) }, [
      ...tarEntries({ "README.md": next["README.md"] as TreeSpec[string], "new.txt": { content: "new" } }),
    ]);
    const second = await sync(runner, W, fingerprintOf(tree), delta);
    expect(second.status).toBe(200);
    expect(await second.json()).toMatchObject({ fingerprint: fingerprintOf(next), written: 2, deleted: 1 });
    expect(existsSync(host(W, "src"))).toBe(false); // emptied directories are removed
    expect((await manifest(runner, W)).fingerprint).toBe(fingerprintOf(next));
  });

  test("a base mismatch is 409 with the runner's fingerprint, and nothing is applied", async () => {
    const W = "/workspace/base";
    const tree: TreeSpec = { "a.txt": { content: "a" } };
    expect((await fullSync(W, EMPTY_FINGERPRINT, tree)).status).toBe(200);
    const response = await fullSync(W, EMPTY_FINGERPRINT, { "b.txt": { content: "b" } });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: "base_mismatch", fingerprint: fingerprintOf(tree) });
    expect(existsSync(host(W, "b.txt"))).toBe(false);
  });

  test("the base is checked before the body is read", async () => {
    const W = "/workspace/base-first";
    expect((await fullSync(W, EMPTY_FINGERPRINT, { "a.txt": { content: "a" } })).status).toBe(200);
    // A body that never ends: only an answer given before reading it can arrive.
    const endless = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        await Bun.sleep(50);
        controller.enqueue(new Uint8Array(512));
      },
    });
    const response = await sync(runner, W, EMPTY_FINGERPRINT, endless);
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ code: "base_mismatch" });
  });

  test("files created remotely survive a sync and are reported as unsynced", async () => {
    const W = "/workspace/survive";
    const tree: TreeSpec = { "package.json": { content: "{}" } };
    expect((await fullSync(W, EMPTY_FINGERPRINT, tree)).status).toBe(200);
    const built = await exec(runner, {
      command: "mkdir -p node_modules/x && printf 12345 > node_modules/x/index.js && printf out > build.log",
      workdir: W,
    });
    expect(built.exit?.exitCode).toBe(0);
    const next: TreeSpec = { ...tree, "src/main.ts": { content: "main" } };
    const body = await syncBody(
      { version: 1, deletes: [], expect: fingerprintOf(next) },
      tarEntries({ "src/main.ts": { content: "main" } }),
    );
    const response = await sync(runner, W, fingerprintOf(tree), body);
    expect(response.status).toBe(200);
    expect(readFileSync(host(W, "node_modules/x/index.js"), "utf8")).toBe("12345");
    const remote = await manifest(runner, W, true);
    expect(remote.unsynced).toEqual({ count: 2, bytes: 8 });
    expect(remote.entries.map((entry) => entry.path).sort()).toEqual(["package.json", "src/main.ts"]);
  });

  test("a file edited or removed remotely shows in the manifest", async () => {
    const W = "/workspace/edited";
    const tree: TreeSpec = {
      "a.txt": { content: "original" },
      "b.txt": { content: "b" },
      "c.sh": { content: "c" },
    };
    expect((await fullSync(W, EMPTY_FINGERPRINT, tree)).status).toBe(200);
    await exec(runner, { command: "printf changed > a.txt; rm b.txt; chmod 755 c.sh", workdir: W });
    const remote = await manifest(runner, W);
    const truth: TreeSpec = { "a.txt": { content: "changed" }, "c.sh": { content: "c", mode: 0o755 } };
    expect(sorted(remote.entries)).toEqual(sorted(manifestOf(truth)));
    expect(remote.fingerprint).toBe(fingerprintOf(truth));
    // The next sync must be built on that truth.
    expect((await fullSync(W, fingerprintOf(tree), tree)).status).toBe(409);
  });

  test("a synced entry wins over unsynced files in its way, and they are counted", async () => {
    const W = "/workspace/wins";
    expect((await fullSync(W, EMPTY_FINGERPRINT, { "keep.txt": { content: "k" } })).status).toBe(200);
    mkdirSync(host(W, "dist/sub"), { recursive: true });
    writeFileSync(host(W, "dist/sub/x.js"), "x");
    writeFileSync(host(W, "dist/y.js"), "y");
    writeFileSync(host(W, "config"), "unsynced file where a directory is needed");
    writeFileSync(host(W, "plain"), "unsynced file at a synced path");
    const tree: TreeSpec = {
      "keep.txt": { content: "k" },
      dist: { content: "now a file" },
      "config/settings.json": { content: "{}" },
      plain: { content: "synced" },
    };
    const body = await syncBody(
      { version: 1, deletes: [], expect: fingerprintOf(tree) },
      tarEntries({
        dist: tree.dist,
        "config/settings.json": tree["config/settings.json"],
        plain: tree.plain,
      } as TreeSpec),
    );
    const response = await sync(runner, W, fingerprintOf({ "keep.txt": { content: "k" } }), body);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ written: 3, removedUnsynced: 4 });
    expect(readFileSync(host(W, "dist"), "utf8")).toBe("now a file");
    expect(readFileSync(host(W, "plain"), "utf8")).toBe("synced");
  });

  test("clean removes unsynced files except the keep globs", async () => {
    const W = "/workspace/clean";
    const tree: TreeSpec = { "src/a.ts": { content: "a" } };
    expect((await fullSync(W, EMPTY_FINGERPRINT, tree)).status).toBe(200);
    mkdirSync(host(W, "node_modules/pkg"), { recursive: true });
    writeFileSync(host(W, "node_modules/pkg/i.js"), "i");
    mkdirSync(host(W, "tmp/deep"), { recursive: true });
    writeFileSync(host(W, "tmp/deep/junk"), "junk");
    writeFileSync(host(W, "src/generated.ts"), "gen");
    writeFileSync(host(W, "keep.log"), "log");
    const body = await syncBody(
      { version: 1, deletes: [], expect: fingerprintOf(tree), clean: { keep: ["node_modules", "*.log"] } },
      [],
    );
    const response = await sync(runner, W, fingerprintOf(tree), body);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ removedUnsynced: 2, written: 0 });
    expect(existsSync(host(W, "node_modules/pkg/i.js"))).toBe(true);
    expect(existsSync(host(W, "keep.log"))).toBe(true);
    expect(existsSync(host(W, "tmp"))).toBe(false);
    expect(existsSync(host(W, "src/generated.ts"))).toBe(false);
    expect(readFileSync(host(W, "src/a.ts"), "utf8")).toBe("a");
  });

  test("expect mismatch is 422 and the manifest tells the truth", async () => {
    const W = "/workspace/expect";
    const tree: TreeSpec = { "a.txt": { content: "a" } };
    const body = await syncBody({ version: 1, deletes: [], expect: "f".repeat(64) }, tarEntries(tree));
    const response = await sync(runner, W, EMPTY_FINGERPRINT, body);
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({
      code: "expect_mismatch",
      fingerprint: fingerprintOf(tree),
    });
    expect((await manifest(runner, W)).fingerprint).toBe(fingerprintOf(tree));
  });

  test("gzip and zstd bodies are accepted", async () => {
    for (const [encoding, compress] of [
      ["gzip", gzipSync],
      ["zstd", (bytes: Uint8Array) => Bun.zstdCompressSync(bytes)],
    ] as const) {
      const W = `/workspace/enc-${encoding}`;
      const tree: TreeSpec = { "x.bin": { content: new Uint8Array(100_000).map((_, i) => i % 7) } };
      const body = compress(
        await syncBody({ version: 1, deletes: [], expect: fingerprintOf(tree) }, tarEntries(tree)),
      );
      const response = await sync(runner, W, EMPTY_FINGERPRINT, new Uint8Array(body), {
        "content-encoding": encoding,
      });
      expect(response.status).toBe(200);
      expect((await response.json()).bytesIn).toBe(body.length);
    }
  });

  test("no exec in a workdir while it syncs, and one sync at a time (409 busy)", async () => {
    const W = "/workspace/busy";
    const tree: TreeSpec = { "a.txt": { content: "a" } };
    const whole = await syncBody({ version: 1, deletes: [], expect: fingerprintOf(tree) }, tarEntries(tree));
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const slow = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(whole.subarray(0, 700));
        await gate;
        controller.enqueue(whole.subarray(700));
        controller.close();
      },
    });
    const pending = sync(runner, W, EMPTY_FINGERPRINT, slow);
    let second: Response | undefined;
    for (let i = 0; i < 100; i++) {
      second = await fullSync(W, EMPTY_FINGERPRINT, tree);
      if (second.status === 409) break;
      await Bun.sleep(20);
    }
    expect(second?.status).toBe(409);
    expect(await second?.json()).toMatchObject({ code: "busy" });
    const execDuring = await fetch(`${runner.url}/v1/exec`, {
      method: "POST",
      body: JSON.stringify({ command: "true", workdir: W }),
    });
    expect(execDuring.status).toBe(409);
    release();
    expect((await pending).status).toBe(200);
  });
});

describe("files", () => {
  test("returns matched files and symlinks as a tar, meta member last", async () => {
    const W = "/workspace/files";
    await exec(runner, {
      command: [
        "mkdir -p out/sub logs",
        "printf one > out/a.txt",
        "printf two > out/sub/b.txt",
        "chmod 750 out/sub/b.txt",
        "ln -s a.txt out/link",
        "ln -s /etc out/escape",
        "printf log > logs/x.log",
        "printf old > old.txt",
        "touch -d '2001-01-01' old.txt",
      ].join("\n"),
      workdir: W,
    });
    symlinkSync("/etc", host(W, "etc-link"));
    const query = ["out", "**/*.log", "old.txt", "missing/**", "etc-link/passwd", "nothing.txt"]
      .map((path) => `path=${encodeURIComponent(path)}`)
      .join("&");
    const response = await fetch(
      `${runner.url}/v1/files?workdir=${W}&${query}&since=${Date.UTC(2020, 0, 1)}`,
    );
    expect(response.status).toBe(200);
    const members: { path: string; type: string; linkpath: string; mode: number; content: string }[] = [];
    for await (const { header, body } of readTar(response.body as ReadableStream<Uint8Array>)) {
      members.push({ ...header, content: text(await readBody(body, 1 << 20)) });
    }
    expect(members.map((member) => member.path)).toEqual([
      "logs/x.log",
      "out",
      "out/a.txt",
      "out/escape",
      "out/link",
      "out/sub",
      "out/sub/b.txt",
      ".crabbox-files.json",
    ]);
    const byPath = new Map(members.map((member) => [member.path, member]));
    expect(byPath.get("out/a.txt")?.content).toBe("one");
    expect(byPath.get("out/sub/b.txt")?.mode).toBe(0o750);
    expect(byPath.get("out/link")).toMatchObject({ type: "symlink", linkpath: "a.txt" });
    expect(byPath.get("out/escape")).toMatchObject({ type: "symlink", linkpath: "/etc" });
    expect(JSON.parse(byPath.get(".crabbox-files.json")?.content ?? "")).toEqual({
      stale: ["old.txt"],
      unmatched: ["missing/**", "etc-link/passwd", "nothing.txt"],
    });
  });

  test("paths outside the workdir are refused", async () => {
    for (const path of ["../x", "/etc/passwd", "a/../../b"]) {
      const response = await fetch(
        `${runner.url}/v1/files?workdir=/workspace/files&path=${encodeURIComponent(path)}`,
      );
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: "unsafe_path" });
    }
  });
});
