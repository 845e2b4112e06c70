import { afterAll, describe, expect, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CrabboxError, ExitCode } from "../../src/core/errors.ts";
import { fingerprint } from "../../src/protocol/fingerprint.ts";
import { checkSyncSize, DEFAULT_SYNC_LIMITS } from "../../src/sync/guard.ts";
import { hashLocalFiles } from "../../src/sync/hash.ts";
import { readLocalManifest } from "../../src/sync/manifest.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** git with a fixed identity and no user/system config, so the developer's settings never leak in. */
function gitEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: join(home, ".gitconfig"),
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@example.com",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@example.com",
    GIT_ALLOW_PROTOCOL: "file",
  };
}

function makeRepo(): { root: string; env: Record<string, string>; git: (...args: string[]) => string } {
  const base = mkdtempSync(join(tmpdir(), "crabbox-sync-manifest-"));
  dirs.push(base);
  const root = join(base, "repo");
  mkdirSync(root);
  const env = gitEnv(base);
  writeFileSync(join(base, ".gitconfig"), '[protocol "file"]\n\tallow = always\n[safe]\n\tdirectory = *\n');
  const git = (...args: string[]) => execFileSync("git", args, { cwd: root, env, encoding: "utf8" });
  git("init", "-q", "-b", "main");
  return { root, env, git };
}

function write(root: string, path: string, content: string, mode = 0o644): void {
  mkdirSync(join(root, path, ".."), { recursive: true });
  writeFileSync(join(root, path), content);
  chmodSync(join(root, path), mode);
}

describe("readLocalManifest on real repositories", () => {
  test("tracked + untracked-not-ignored files, modes, symlinks, 200-char paths, deleted files", async () => {
    const { root, env, git } = makeRepo();
    const long = `${"l".repeat(49)}/${"o".repeat(49)}/${"n".repeat(49)}/${"g".repeat(49)}.t`;
    expect(long.length).toBe(201);
    write(root, "README.md", "hi\n");
    write(root, "bin/run.sh", "#!/bin/sh\n", 0o755);
    write(root, long, "long\n");
    write(root, "deleted.txt", "soon gone\n");
    write(root, ".gitignore", "ignored.log\n");
    symlinkSync("README.md", join(root, "readme-link"));
    git("add", "-A");
    git("commit", "-qm", "init");
    rmSync(join(root, "deleted.txt"));
    write(root, "untracked.txt", "new\n");
    write(root, "ignored.log", "x\n");
    write(root, "node_modules/pkg/index.js", "x\n");

    const manifest = await readLocalManifest({ cwd: join(root, "bin"), env });
    expect(manifest.root).toBe(root);
    expect(manifest.files.map((f) => f.path)).toEqual([
      ".gitignore",
      "README.md",
      "bin/run.sh",
      long,
      "readme-link",
      "untracked.txt",
    ]);
    const byPath = new Map(manifest.files.map((f) => [f.path, f]));
    expect(byPath.get("bin/run.sh")).toMatchObject({ type: "file", mode: 0o755, tracked: true });
    expect(byPath.get("README.md")).toMatchObject({ mode: 0o644, size: 3 });
    expect(byPath.get("readme-link")).toMatchObject({
      type: "symlink",
      mode: 0o777,
      size: "README.md".length,
    });
    expect(byPath.get("untracked.txt")).toMatchObject({ tracked: false });
    expect(manifest.excluded.counts).toEqual({ missing: 1, builtin: 1 });
    expect(manifest.excluded.examples.missing).toEqual(["deleted.txt"]);
    expect(manifest.bytes).toBe(manifest.files.reduce((s, f) => s + f.size, 0));

    const { entries } = await hashLocalFiles(manifest.root, manifest.files);
    expect(entries.find((e) => e.path === "readme-link")).toMatchObject({
      type: "symlink",
      target: "README.md",
    });
    expect(fingerprint(entries)).toMatch(/^[0-9a-f]{64}$/);
  });

  test(".crabboxignore and sync.exclude/include, with reasons", async () => {
    const { root, env } = makeRepo();
    write(root, ".crabboxignore", "# generated\nfixtures/big\n*.bin\n!keep.bin\n");
    write(root, "fixtures/big/a.dat", "x");
    write(root, "fixtures/small/a.dat", "x");
    write(root, "x.bin", "x");
    write(root, "keep.bin", "x");
    write(root, "docs/a.md", "x");
    write(root, "src/a.ts", "x");
    write(root, ".crabbox/env", "SECRET=1");
    const manifest = await readLocalManifest({
      cwd: root,
      env,
      excludes: ["docs"],
      includes: ["src", "fixtures", "*.bin", ".crabbox"],
    });
    expect(manifest.files.map((f) => f.path)).toEqual(["fixtures/small/a.dat", "keep.bin", "src/a.ts"]);
    expect(manifest.excluded.counts).toEqual({ crabboxignore: 2, config: 1, include: 1, protected: 1 });
    expect(manifest.excluded.examples.include).toEqual([".crabboxignore"]);
  });

  test("submodules are skipped with a warning naming them; nested untracked repos too", async () => {
    const sub = makeRepo();
    write(sub.root, "lib.txt", "lib\n");
    sub.git("add", "-A");
    sub.git("commit", "-qm", "lib");
    const { root, env, git } = makeRepo();
    write(root, "main.txt", "main\n");
    git("-c", "protocol.file.allow=always", "submodule", "add", "-q", sub.root, "vendor/lib");
    git("commit", "-qam", "with submodule");
    mkdirSync(join(root, "nested"));
    execFileSync("git", ["init", "-q"], { cwd: join(root, "nested"), env });
    write(root, "nested/inner.txt", "x");

    const manifest = await readLocalManifest({ cwd: root, env });
    expect(manifest.files.map((f) => f.path)).toEqual([".gitmodules", "main.txt"]);
    expect(manifest.submodules).toEqual(["vendor/lib"]);
    expect(manifest.warnings).toContain("skipping git submodules (not synced): vendor/lib");
    expect(manifest.excluded.counts).toEqual({ submodule: 1, "nested-repo": 1 });
  });

  test("tracked files under ambiguous built-ins are kept, with one warning", async () => {
    const { root, env, git } = makeRepo();
    write(root, "dist/lib.js", "x");
    write(root, "target/notes.md", "x");
    git("add", "-A");
    write(root, "dist/untracked.js", "x");
    const manifest = await readLocalManifest({ cwd: root, env });
    expect(manifest.files.map((f) => f.path)).toEqual(["dist/lib.js", "target/notes.md"]);
    expect(manifest.excluded.counts).toEqual({ builtin: 1 });
    expect(manifest.warnings).toEqual([
      "protected 2 tracked files from built-in artifact excludes: dist/lib.js (dist), target/notes.md (target)",
    ]);
  });

  test("a skip-worktree file missing on disk fails closed (exit 6)", async () => {
    const { root, env, git } = makeRepo();
    write(root, "one.txt", "one\n");
    write(root, "two.txt", "two\n");
    git("add", "-A");
    git("commit", "-qm", "init");
    git("update-index", "--skip-worktree", "two.txt");
    rmSync(join(root, "two.txt"));
    const error = await readLocalManifest({ cwd: root, env }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CrabboxError);
    expect((error as CrabboxError).exitCode).toBe(ExitCode.sync);
    expect((error as CrabboxError).message).toContain('tracked path "two.txt" is hidden by sparse checkout');
  });

  test("a directory that is not a git repository → exit 6 with a hint", async () => {
    const dir = mkdtempSync(join(tmpdir(), "crabbox-not-git-"));
    dirs.push(dir);
    const error = (await readLocalManifest({
      cwd: dir,
      env: { ...gitEnv(dir), GIT_CEILING_DIRECTORIES: tmpdir() },
    }).catch((e: unknown) => e)) as CrabboxError;
    expect(error).toBeInstanceOf(CrabboxError);
    expect(error.exitCode).toBe(ExitCode.sync);
    expect(error.message).toBe(`not a git repository: ${dir}`);
    expect(error.hint).toContain("--no-sync");
  });

  test("file names that are not UTF-8 are reported, not synced", async () => {
    const { root, env } = makeRepo();
    write(root, "ok.txt", "x");
    writeFileSync(
      Buffer.concat([Buffer.from(`${root}/bad-`), Buffer.from([0xff, 0xfe]), Buffer.from(".txt")]),
      "x",
    );
    const manifest = await readLocalManifest({ cwd: root, env });
    expect(manifest.files.map((f) => f.path)).toEqual(["ok.txt"]);
    expect(manifest.excluded.counts).toEqual({ unsafe: 1 });
  });

  test("the guard over a real manifest fails with exit 6 and the top dirs", async () => {
    const { root, env } = makeRepo();
    write(root, "one.txt", "one\n");
    write(root, "two.txt", "two\n");
    const manifest = await readLocalManifest({ cwd: root, env });
    const error = (() => {
      try {
        checkSyncSize(manifest.files, { ...DEFAULT_SYNC_LIMITS, failFiles: 2 });
      } catch (e) {
        return e as CrabboxError;
      }
    })();
    expect(error?.exitCode).toBe(ExitCode.sync);
    expect(error?.message).toBe(
      "sync candidate too large: 2 files >= limit 2; use --force-sync-large or CRABBOX_SYNC_ALLOW_LARGE=1",
    );
  });
  test("a rerun reuses the listing memo only while git's listing and the rules are unchanged", async () => {
    const { root, env, git } = makeRepo();
    write(root, "a.ts", "a\n");
    write(root, "dist/vendored.js", "v\n");
    write(root, "skip/me.txt", "s\n");
    write(root, ".crabboxignore", "# nothing yet\n");
    git("add", "-A");
    git("commit", "-qm", "init");
    write(root, "dist/untracked.js", "u\n");
    const paths = (m: { files: { path: string }[] }) => m.files.map((f) => f.path);

    const first = await readLocalManifest({ cwd: root, env });
    expect(first.memo).toBeDefined();
    const again = await readLocalManifest({ cwd: root, env, memo: first.memo });
    expect(again.memo).toBeUndefined();
    expect({ ...again, memo: undefined }).toEqual({ ...first, memo: undefined });

    // A deleted tracked file is still in git's listing: the memo answers, the stat says missing.
    rmSync(join(root, "a.ts"));
    const deleted = await readLocalManifest({ cwd: root, env, memo: first.memo });
    expect(deleted.memo).toBeUndefined();
    expect(paths(deleted)).toEqual([".crabboxignore", "dist/vendored.js", "skip/me.txt"]);
    expect(deleted.excluded.counts).toMatchObject({ builtin: 1, missing: 1 });
    expect(deleted.protectedTracked).toEqual([{ path: "dist/vendored.js", pattern: "dist" }]);

    // Other rules under the same listing (an edited, tracked .crabboxignore; sync.exclude), or
    // another listing (a new file): decided afresh.
    write(root, ".crabboxignore", "skip\n");
    const ignored = await readLocalManifest({ cwd: root, env, memo: first.memo });
    expect(ignored.memo).toBeDefined();
    expect(paths(ignored)).not.toContain("skip/me.txt");
    const configured = await readLocalManifest({ cwd: root, env, memo: ignored.memo, excludes: ["dist"] });
    expect(configured.memo).toBeDefined();
    expect(paths(configured)).not.toContain("dist/vendored.js");
    write(root, "new.ts", "n\n");
    const added = await readLocalManifest({ cwd: root, env, memo: ignored.memo });
    expect(added.memo).toBeDefined();
    expect(paths(added)).toContain("new.ts");
  });
});
