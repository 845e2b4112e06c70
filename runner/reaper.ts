/**
 * Zombie reaping for a runner that is PID 1 (an image whose CMD is the runner, or the emulator's
 * `unshare --pid --fork` isolation). Background children of a command outlive their shell and are
 * re-parented to PID 1; Bun only waits for the processes it spawned itself, so without this they
 * would stay zombies forever. Bun has no waitpid, hence libc through bun:ffi; the runner's own
 * shells are left to Bun, so their exit statuses are never stolen.
 */
import { readdir, readFile } from "node:fs/promises";

const WNOHANG = 1;

type WaitPid = (pid: number, status: null, options: number) => number;

async function loadWaitPid(): Promise<WaitPid | undefined> {
  const { dlopen, FFIType } = await import("bun:ffi");
  for (const library of ["libc.so.6", "libc.so"]) {
    try {
      const lib = dlopen(library, {
        waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
      });
      return lib.symbols.waitpid as unknown as WaitPid;
    } catch {
      // try the next name (musl, unusual layouts)
    }
  }
  return undefined;
}

/** Zombie children of this process, from /proc (pid, state and ppid of each). */
async function zombieChildren(): Promise<number[]> {
  const zombies: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    // comm may contain spaces and parentheses: the fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" && Number(rest[1]) === process.pid) zombies.push(Number(name));
  }
  return zombies;
}

/**
 * When this process is PID 1 on Linux, reaps zombie children that `isOwn` does not claim, once a
 * second. Returns a stop function, or undefined when there is nothing to do.
 */
export async function startOrphanReaper(isOwn: (pid: number) => boolean): Promise<(() => void) | undefined> {
  if (process.pid !== 1 || process.platform !== "linux") return undefined;
  const waitpid = await loadWaitPid().catch(() => undefined);
  if (!waitpid) {
    process.stderr.write("crabbox-runner: running as PID 1 but cannot load waitpid; orphans stay zombies\n");
    return undefined;
  }
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      for (const pid of await zombieChildren()) {
        if (!isOwn(pid)) waitpid(pid, null, WNOHANG);
      }
    } finally {
      busy = false;
    }
  }, 1000);
  timer.unref?.();
  return () => clearInterval(timer);
}
