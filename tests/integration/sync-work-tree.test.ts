import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findRepoRoot, workTreeOnDisk } from "../../src/sync/git.ts";

/**
 * findRepoRoot answers from the disk when it can (no git process) and must give git's answer:
 * each case is checked against `git rev-parse --show-toplevel`.
 */

setDefaultTimeout(60_000);

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function temp(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), "crabbox-worktree-")));
  dirs.push(dir);
  return dir;
}

const env = { PATH: process.env.PATH, HOME: process.env.HOME, GIT_CONFIG_NOSYSTEM: "1" };
const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", args, { cwd, env, encoding: "utf8" }).trim();

describe("work tree found on disk", () => {
  test("from the root, a subdirectory and through a symlink it is git's answer", async () => {
    const root = temp();
    git(root, "init", "-q");
    mkdirSync(join(root, "a", "b"), { recursive: true });
    const link = join(temp(), "link");
    symlinkSync(join(root, "a"), link);
    for (const cwd of [root, join(root, "a", "b"), link]) {
      expect(workTreeOnDisk(cwd, env)).toBe(git(cwd, "rev-parse", "--show-toplevel"));
      expect(await findRepoRoot(cwd, env)).toBe(git(cwd, "rev-parse", "--show-toplevel"));
    }
  });

  test("a linked worktree and a nested repository are their own tops", async () => {
    const root = temp();
    git(root, "init", "-q");
    writeFileSync(join(root, "f"), "x");
    git(root, "add", "f");
    git(root, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c");
    const tree = join(temp(), "tree");
    git(root, "worktree", "add", "-q", tree);
    mkdirSync(join(tree, "sub"));
    const nested = join(root, "nested");
    mkdirSync(nested);
    git(nested, "init", "-q");
    for (const cwd of [join(tree, "sub"), nested]) {
      expect(workTreeOnDisk(cwd, env)).toBe(git(cwd, "rev-parse", "--show-toplevel"));
    }
  });

  test("git decides when a discovery variable is set or .git is not a repository", async () => {
    const root = temp();
    git(root, "init", "-q");
    expect(workTreeOnDisk(root, { ...env, GIT_DIR: join(root, ".git") })).toBeUndefined();
    expect(workTreeOnDisk(root, { ...env, GIT_CEILING_DIRECTORIES: root })).toBeUndefined();
    const fake = temp();
    mkdirSync(join(fake, ".git"));
    expect(workTreeOnDisk(fake, env)).toBeUndefined();
    const none = temp();
    expect(workTreeOnDisk(none, env)).toBeUndefined();
    await expect(findRepoRoot(none, env)).rejects.toThrow(/not a git repository/);
  });
});
