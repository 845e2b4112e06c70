/**
 * The emulator's state directory. The registry itself lives in memory; on disk are only the things a
 * restarted emulator needs to clean up after a crashed one (which VMs it had started), the VMs'
 * files, S3 objects and built image versions:
 *
 *   <state>/emulator.json          pid of the emulator using this directory
 *   <state>/vms/<microvmId>.json   one record per VM whose processes may be alive
 *   <state>/microvms/<microvmId>/  root/workspace (the VM's /workspace), console.log
 *   <state>/images/<region>/<name>/<version>/  an image version's unpacked artifact
 *   <state>/s3/<bucket>/<key>      S3 objects
 *   <state>/sock/                  runner sockets (0700), unless the path is too long for AF_UNIX
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commandLine, isAlive, killVm, markedProcesses } from "./processes.ts";

export interface StatePaths {
  root: string;
  vmRecords: string;
  microvms: string;
  images: string;
  s3: string;
  sockets: string;
  /** Whether `sockets` is a temp dir outside the state dir, removed on shutdown. */
  socketsTemporary: boolean;
}

/** sun_path holds 108 bytes including the NUL; our socket names are 13 characters. */
const SOCKET_PATH_LIMIT = 107 - 14;

export function prepareState(root: string): StatePaths {
  const paths = {
    root,
    vmRecords: join(root, "vms"),
    microvms: join(root, "microvms"),
    images: join(root, "images"),
    s3: join(root, "s3"),
  };
  for (const dir of Object.values(paths)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  let sockets = join(root, "sock");
  let socketsTemporary = false;
  if (Buffer.byteLength(sockets) > SOCKET_PATH_LIMIT) {
    sockets = mkdtempSync("/tmp/crabbox-emu-");
    socketsTemporary = true;
  } else {
    rmSync(sockets, { recursive: true, force: true });
    mkdirSync(sockets, { mode: 0o700 });
  }
  return { ...paths, sockets, socketsTemporary };
}

/** Refuse to share a state directory with a live emulator: its VMs would be reaped under it. */
export function claimState(root: string): void {
  const file = join(root, "emulator.json");
  try {
    const { pid } = JSON.parse(readFileSync(file, "utf8")) as { pid: number };
    if (pid !== process.pid && isAlive(pid) && commandLine(pid).includes("emulator")) {
      throw new Error(`another crabbox emulator (pid ${pid}) is using ${root}; stop it or pass --state-dir`);
    }
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("another crabbox emulator")) throw error;
  }
  mkdirSync(root, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() })}\n`);
}

export function releaseState(paths: StatePaths): void {
  rmSync(join(paths.root, "emulator.json"), { force: true });
  if (paths.socketsTemporary) rmSync(paths.sockets, { recursive: true, force: true });
}

export interface VmProcessRecord {
  microvmId: string;
  pid: number;
  startedAt: string;
}

export function recordVm(paths: StatePaths, record: VmProcessRecord): void {
  writeFileSync(join(paths.vmRecords, `${record.microvmId}.json`), `${JSON.stringify(record)}\n`);
}

export function forgetVm(paths: StatePaths, microvmId: string): void {
  rmSync(join(paths.vmRecords, `${microvmId}.json`), { force: true });
}

/**
 * Kill every process a previous emulator on this state directory started: found by the VM marker
 * in their environment (the recorded pid alone could have been reused by an unrelated process).
 * Then drop the records and the dead VMs' files. Returns how many processes were killed.
 */
export async function reapLeftovers(paths: StatePaths): Promise<number> {
  const ids = readdirSync(paths.vmRecords)
    .filter((name) => name.endsWith(".json"))
    .map((name) => name.slice(0, -".json".length));
  let killed = 0;
  for (const [, pids] of markedProcesses(ids)) killed += pids.length;
  // SIGKILL needs no SIGCONT first: it also ends stopped (suspended) processes.
  await Promise.all(ids.map((id) => killVm(id, 5000)));
  for (const id of ids) forgetVm(paths, id);
  rmSync(paths.microvms, { recursive: true, force: true });
  mkdirSync(paths.microvms, { recursive: true, mode: 0o700 });
  return killed;
}
