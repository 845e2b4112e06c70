/**
 * Finding every process of a MicroVM. Exec children run in their own process groups and may call
 * setsid, so neither the runner's pid nor its group is enough: a VM's processes are the ones whose
 * environment carries `CRABBOX_EMULATOR_VM=<id>` (inherited from the runner) or that live in one of
 * the VM's pid namespaces (which also catches a child that cleared its environment). Never by name.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";

export const VM_MARKER = "CRABBOX_EMULATOR_VM";

function pids(): number[] {
  try {
    return readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}

function environ(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, "latin1");
  } catch {
    return "";
  }
}

export function pidNamespace(pid: number | "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** Every live process carrying the marker for one of `ids`, grouped by id. */
export function markedProcesses(ids: Iterable<string>): Map<string, number[]> {
  const wanted = new Map<string, string>();
  for (const id of ids) wanted.set(`${VM_MARKER}=${id}`, id);
  const found = new Map<string, number[]>();
  if (wanted.size === 0) return found;
  for (const pid of pids()) {
    if (pid === process.pid) continue;
    for (const entry of environ(pid).split("\0")) {
      const id = wanted.get(entry);
      if (id === undefined) continue;
      const list = found.get(id) ?? [];
      list.push(pid);
      found.set(id, list);
      break;
    }
  }
  return found;
}

/**
 * Without /proc (macOS) there is no environment to read: a VM is reduced to its runner's process
 * group (the runner is spawned detached, so the group is its own). Exec children that start their
 * own groups escape suspend there; docs/emulator.md says so.
 */
const hasProc = process.platform === "linux" && existsSync("/proc/self/environ");
const groups = new Map<string, number>();

export function trackGroup(id: string, pgid: number): void {
  groups.set(id, pgid);
}

export function untrackGroup(id: string): void {
  groups.delete(id);
}

/** Marker processes of one VM plus every process in the private pid namespaces they live in. */
export function vmProcesses(id: string): number[] {
  if (!hasProc) {
    const group = groups.get(id);
    // A negative pid addresses the whole process group in kill(2).
    return group !== undefined && isAlive(-group) ? [-group] : [];
  }
  const marked = markedProcesses([id]).get(id) ?? [];
  const own = pidNamespace("self");
  const namespaces = new Set(
    marked.map((pid) => pidNamespace(pid)).filter((ns): ns is string => ns !== undefined && ns !== own),
  );
  if (namespaces.size === 0) return marked;
  const members = new Set(marked);
  for (const pid of pids()) {
    const ns = pidNamespace(pid);
    if (ns !== undefined && namespaces.has(ns)) members.add(pid);
  }
  members.delete(process.pid);
  return [...members];
}

export function signal(pids: Iterable<number>, sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone: exactly what we wanted.
    }
  }
}

/**
 * Signal every process of the VM, rescanning so processes forked while we were signalling are
 * caught too (a stopped process cannot fork, so the set converges).
 */
export function signalVm(id: string, sig: NodeJS.Signals): number {
  const done = new Set<number>();
  for (let round = 0; round < 4; round++) {
    const fresh = vmProcesses(id).filter((pid) => !done.has(pid));
    if (fresh.length === 0) break;
    signal(fresh, sig);
    for (const pid of fresh) done.add(pid);
  }
  return done.size;
}

/** The scheduler state letter of /proc/<pid>/stat (`R`, `S`, `T`, `Z`…), "" when it is gone. */
function schedulerState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

/**
 * SIGSTOP the whole VM and wait until every process really is stopped. SIGSTOP is delivered
 * asynchronously, and a process forked between listing and signalling escapes the first round; a
 * VM that reports SUSPENDED while one of its processes still runs is not what AWS does. Without
 * /proc (macOS) the signal is all there is.
 */
export async function freezeVm(id: string, ms = 2_000): Promise<void> {
  signalVm(id, "SIGSTOP");
  if (!existsSync("/proc/self/stat")) return;
  const deadline = Date.now() + ms;
  for (;;) {
    const running = vmProcesses(id).filter((pid) => !["T", "t", "Z", ""].includes(schedulerState(pid)));
    if (running.length === 0 || Date.now() > deadline) return;
    signal(running, "SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The command line of a process, "" when it is gone. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/**
 * SIGKILL every process of the VM until none is left (or `ms` passed). A killed process still shows
 * its environment for a moment while it exits; waiting here is what lets the emulator promise that
 * no VM process outlives a terminate — or the emulator itself.
 */
export async function killVm(id: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (signalVm(id, "SIGKILL") === 0) return true;
    if (Date.now() >= deadline) return false;
    await Bun.sleep(20);
  }
}
