import { afterEach, beforeEach, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listClaims } from "../../src/core/claims.ts";
import { tryLock } from "../../src/core/lock.ts";
import { claimsDir, operationLockFile } from "../../src/core/paths.ts";
import { repoRoot, run } from "./cli-harness.ts";

/** Local state under real concurrency and real process death. */

let state: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  state = join(mkdtempSync(join(tmpdir(), "crabbox-state-")), "crabbox");
});
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
  rmSync(join(state, ".."), { recursive: true, force: true });
});

const allocate = join(repoRoot, "tests", "fixtures", "claims", "allocate.ts");
const holdLock = join(repoRoot, "tests", "fixtures", "claims", "hold-lock.ts");

async function allocateMany(count: number, slug?: string): Promise<string[]> {
  const results = await Promise.all(
    Array.from({ length: count }, () =>
      run([process.execPath, allocate, state, ...(slug ? [slug] : [])], {
        env: { PATH: process.env.PATH ?? "" },
        cwd: repoRoot,
      }),
    ),
  );
  for (const result of results)
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  return results.map((result) => result.stdout.trim());
}

test("20 concurrent processes allocating generated slugs get 20 distinct slugs and 20 valid claims", async () => {
  const slugs = await allocateMany(20);
  expect(new Set(slugs).size).toBe(20);
  const claims = await listClaims(state);
  expect(claims).toHaveLength(20);
  expect(new Set(claims.map((claim) => claim.slug))).toEqual(new Set(slugs));
  expect(readdirSync(claimsDir(state)).filter((name) => !name.endsWith(".json"))).toEqual([]);
  expect(readdirSync(claimsDir(state)).filter((name) => name.startsWith("."))).toEqual([]);
});

test("concurrent requests for the same slug never share it", async () => {
  const slugs = await allocateMany(10, "api");
  expect(new Set(slugs).size).toBe(10);
  expect(slugs).toContain("api");
  for (const slug of slugs) expect(slug).toMatch(/^api(-[0-9a-f]{4})?$/);
});

function startHolder(command: string[], lockFile: string): Promise<ChildProcess> {
  const child = spawn(command[0] as string, [...command.slice(1), lockFile], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("locked")) resolve(child);
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on("exit", (code) => reject(new Error(`lock holder exited ${code}: ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.on("exit", () => resolve());
  });
}

async function killedHolderFreesLock(command: string[]): Promise<void> {
  const lockFile = operationLockFile(state, "cbx_locktest", "aws-lambda-microvm");
  const holder = await startHolder(command, lockFile);
  expect(await tryLock(lockFile)).toBeUndefined();
  holder.kill("SIGKILL");
  await exited(holder);
  const lock = await tryLock(lockFile);
  expect(lock).toBeDefined();
  lock?.release();
  expect(existsSync(lockFile)).toBe(true);
}

test("a lock held by a process that is then kill -9ed is free again (and its file stays)", async () => {
  await killedHolderFreesLock([process.execPath, holdLock]);
});
