import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { CrabboxError, ExitCode } from "./errors.ts";

/**
 * Real kernel locks (flock(2)) on lock files that are never deleted. The kernel drops a lock when
 * its holder dies — even by `kill -9` — so there is no stale-lock cleanup and no pid guessing, and
 * a Go crabbox using the same paths excludes us and we exclude it. Under Bun, libc's flock via
 * bun:ffi; under Deno, `Deno.FsFile.tryLock` (flock on Unix).
 */

export interface FileLock {
  readonly path: string;
  /** Releases the lock; safe to call twice. */
  release(): void;
}

export interface LockOptions {
  /** Cancels the wait (Ctrl-C, deadline). The lock is never taken after it fires. */
  signal?: AbortSignal;
  /** Called once, when the lock is busy on the first try, with the holder's pid if it wrote one. */
  onWait?: (holderPid: number | undefined) => void;
  /** Poll interval while waiting; upstream retries every 50 ms. */
  pollMs?: number;
}

interface Held {
  release(): void;
}

interface Locker {
  /** One non-blocking attempt on an open handle; `undefined` when someone else holds it. */
  open(path: string): Promise<{ attempt(): Promise<Held | undefined>; close(): void }>;
}

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
// EWOULDBLOCK is 11 on Linux, 35 on macOS; EINTR is 4 on both.
const BUSY_ERRNOS = new Set([11, 35, 4]);

let lockerPromise: Promise<Locker> | undefined;

function locker(): Promise<Locker> {
  lockerPromise ??= loadLocker();
  return lockerPromise;
}

async function loadLocker(): Promise<Locker> {
  const runtime = globalThis as { Bun?: unknown; Deno?: DenoLike };
  if (runtime.Bun) return bunLocker();
  if (runtime.Deno) return denoLocker(runtime.Deno);
  throw new CrabboxError("file locks need the Bun or Deno runtime", { exitCode: ExitCode.generic });
}

/**
 * The holder's pid is only for the `waiting for … (held by pid N)` line: on a full disk the lock is
 * still taken (a `stop` or `cleanup` that frees space must work there), just without it.
 */
function writeHolder(fd: number): void {
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    // ENOSPC and friends: the lock itself is the flock, not this text.
  }
}

async function bunLocker(): Promise<Locker> {
  // A computed specifier keeps Deno's module graph from ever resolving bun:ffi.
  const specifier = "bun:ffi";
  const ffi = (await import(specifier)) as typeof import("bun:ffi");
  const mac = process.platform === "darwin";
  const library = mac ? "/usr/lib/libSystem.B.dylib" : "libc.so.6";
  const errnoSymbol = mac ? "__error" : "__errno_location";
  const lib = ffi.dlopen(library, {
    flock: { args: ["i32", "i32"], returns: "i32" },
    [errnoSymbol]: { args: [], returns: "ptr" },
  });
  const flock = lib.symbols.flock as (fd: number, op: number) => number;
  const errnoPointer = lib.symbols[errnoSymbol] as () => import("bun:ffi").Pointer | null;
  const errno = (): number => {
    const pointer = errnoPointer();
    return pointer === null ? 0 : ffi.read.i32(pointer, 0);
  };
  return {
    async open(path) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        closeSync(fd);
      };
      return {
        async attempt() {
          if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
            const code = errno();
            if (BUSY_ERRNOS.has(code)) return undefined;
            close();
            throw new CrabboxError(`lock ${path}: flock failed (errno ${code})`, {
              exitCode: ExitCode.usage,
            });
          }
          writeHolder(fd);
          return {
            release() {
              if (closed) return;
              flock(fd, LOCK_UN);
              close();
            },
          };
        },
        close,
      };
    },
  };
}

interface DenoFile {
  tryLock(exclusive?: boolean): Promise<boolean>;
  unlockSync(): void;
  truncateSync(length?: number): void;
  writeSync(data: Uint8Array): number;
  seekSync(offset: number, whence: number): number;
  close(): void;
}

interface DenoLike {
  open(path: string, options: Record<string, unknown>): Promise<DenoFile>;
}

function denoLocker(deno: DenoLike): Locker {
  return {
    async open(path) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const file = await deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
      let closed = false;
      const close = () => {
        if (closed) return;
        closed = true;
        file.close();
      };
      return {
        async attempt() {
          if (!(await file.tryLock(true))) return undefined;
          try {
            file.truncateSync(0);
            file.seekSync(0, 0);
            file.writeSync(new TextEncoder().encode(`${process.pid}\n`));
          } catch {
            // As in writeHolder: a full disk still gets the lock, without the holder's pid.
          }
          return {
            release() {
              if (closed) return;
              file.unlockSync();
              close();
            },
          };
        },
        close,
      };
    },
  };
}

/**
 * Creates a lock file ahead of need, unlocked: a disk that fills up later can still lock it (the
 * commands that free resources — stop, cleanup — must work on a full disk, and a new file needs
 * space where an existing one does not).
 */
export function prepareLockFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600));
}

/** The pid the current holder wrote into the lock file, if any. */
export function lockHolder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8").trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function abortError(signal: AbortSignal, path: string): Error {
  if (signal.reason instanceof Error && signal.reason.name !== "AbortError") return signal.reason;
  return new CrabboxError(`interrupted while waiting for lock ${path}`, { exitCode: ExitCode.interrupted });
}

/** One attempt: the lock, or undefined when another process (or another handle here) holds it. */
export async function tryLock(path: string): Promise<FileLock | undefined> {
  const handle = await (await locker()).open(path);
  const held = await handle.attempt().catch((error: unknown) => {
    handle.close();
    throw error;
  });
  if (!held) {
    handle.close();
    return undefined;
  }
  return { path, release: () => held.release() };
}

/** Waits for the lock, polling every `pollMs` (50 ms), until it is free or `signal` fires. */
export async function acquireLock(path: string, options: LockOptions = {}): Promise<FileLock> {
  const { signal, onWait, pollMs = 50 } = options;
  if (signal?.aborted) throw abortError(signal, path);
  const handle = await (await locker()).open(path);
  try {
    let waited = false;
    for (;;) {
      const held = await handle.attempt();
      if (held) return { path, release: () => held.release() };
      if (!waited) {
        waited = true;
        onWait?.(lockHolder(path));
      }
      await sleep(pollMs, signal);
      if (signal?.aborted) throw abortError(signal, path);
    }
  } catch (error) {
    handle.close();
    throw error;
  }
}

/** Runs `fn` holding the lock, and releases it however `fn` ends. */
export async function withLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const lock = await acquireLock(path, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
