import { afterEach, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  claimLockFile,
  findRepoRoot,
  isInside,
  operationLockFile,
  stateDir,
  userConfigFile,
} from "../../../src/core/paths.ts";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test("user config: XDG_CONFIG_HOME, else ~/.config; macOS Application Support", () => {
  expect(userConfigFile({ HOME: "/h", XDG_CONFIG_HOME: "/x" }, "linux")).toBe("/x/crabbox/config.yaml");
  expect(userConfigFile({ HOME: "/h" }, "linux")).toBe("/h/.config/crabbox/config.yaml");
  expect(userConfigFile({ HOME: "/h", XDG_CONFIG_HOME: "relative" }, "linux")).toBe(
    "/h/.config/crabbox/config.yaml",
  );
  expect(userConfigFile({ HOME: "/h", XDG_CONFIG_HOME: "/x" }, "darwin")).toBe(
    "/h/Library/Application Support/crabbox/config.yaml",
  );
});

test("state: XDG_STATE_HOME/crabbox, else <user config dir>/crabbox/state (not ~/.local/state)", () => {
  expect(stateDir({ HOME: "/h", XDG_STATE_HOME: "/s" }, "linux")).toBe("/s/crabbox");
  expect(stateDir({ HOME: "/h" }, "linux")).toBe("/h/.config/crabbox/state");
  expect(stateDir({ HOME: "/h" }, "darwin")).toBe("/h/Library/Application Support/crabbox/state");
});

test("lock paths are upstream's", () => {
  expect(claimLockFile("/s/crabbox", "cbx_0123456789ab")).toBe(
    "/s/crabbox/claim-locks/cbx_0123456789ab.json.lock",
  );
  expect(operationLockFile("/s/crabbox", "cbx_locktest", "aws-lambda-microvm")).toBe(
    "/s/crabbox/claim-locks/cbx_locktest.aws-lambda-microvm-operation.lock",
  );
});

test("the repo root is the nearest directory with .git (dir or worktree file), else cwd", () => {
  const root = mkdtempSync(join(tmpdir(), "crabbox-root-"));
  made.push(root);
  mkdirSync(join(root, "repo", ".git"), { recursive: true });
  mkdirSync(join(root, "repo", "a", "b"), { recursive: true });
  mkdirSync(join(root, "worktree", "src"), { recursive: true });
  writeFileSync(join(root, "worktree", ".git"), "gitdir: /elsewhere\n");
  mkdirSync(join(root, "plain"), { recursive: true });
  expect(findRepoRoot(join(root, "repo", "a", "b"))).toBe(join(root, "repo"));
  expect(findRepoRoot(join(root, "worktree", "src"))).toBe(join(root, "worktree"));
  expect(findRepoRoot(join(root, "plain"))).toBe(join(root, "plain"));
});

test("isInside", () => {
  expect(isInside("/a/b/c", "/a/b")).toBe(true);
  expect(isInside("/a/b", "/a/b")).toBe(true);
  expect(isInside("/a/bc", "/a/b")).toBe(false);
});
