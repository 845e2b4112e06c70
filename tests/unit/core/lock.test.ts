import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CrabboxError } from "../../../src/core/errors.ts";
import { acquireLock, lockHolder, tryLock, withLock } from "../../../src/core/lock.ts";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "crabbox-lock-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

test("a held lock excludes another handle until released, and records the holder pid", async () => {
  const path = join(dir, "locks", "a.lock");
  const first = await tryLock(path);
  expect(first).toBeDefined();
  expect(await tryLock(path)).toBeUndefined();
  expect(lockHolder(path)).toBe(process.pid);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, "locks")).mode & 0o777).toBe(0o700);
  first?.release();
  first?.release();
  const again = await tryLock(path);
  expect(again).toBeDefined();
  again?.release();
  expect(readFileSync(path, "utf8")).toBe(`${process.pid}\n`);
});

test("acquireLock waits for the holder, telling onWait who holds it", async () => {
  const path = join(dir, "b.lock");
  const held = await tryLock(path);
  const waits: (number | undefined)[] = [];
  const waiting = acquireLock(path, { onWait: (pid) => waits.push(pid), pollMs: 10 });
  setTimeout(() => held?.release(), 100);
  const lock = await waiting;
  expect(waits).toEqual([process.pid]);
  lock.release();
});

test("a cancelled wait never takes the lock", async () => {
  const path = join(dir, "c.lock");
  const held = await tryLock(path);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const error = await acquireLock(path, { signal: controller.signal, pollMs: 10 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(CrabboxError);
  expect((error as CrabboxError).exitCode).toBe(130);
  held?.release();
  const free = await tryLock(path);
  expect(free).toBeDefined();
  free?.release();
});

test("withLock serialises concurrent sections", async () => {
  const path = join(dir, "d.lock");
  const order: string[] = [];
  await Promise.all(
    ["one", "two", "three"].map((name) =>
      withLock(
        path,
        async () => {
          order.push(`${name}:in`);
          await Bun.sleep(20);
          order.push(`${name}:out`);
        },
        { pollMs: 5 },
      ),
    ),
  );
  for (let i = 0; i < order.length; i += 2) {
    expect(order[i]?.replace(":in", "")).toBe(order[i + 1]?.replace(":out", "") as string);
  }
});
