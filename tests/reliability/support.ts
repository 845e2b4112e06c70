/**
 * The reliability suite's harness: sandboxes for the compiled CLI (each with its own TMPDIR), and
 * `assertNoLeaks`, the check every scenario ends with. It asks the emulator (through the real SDK)
 * which MicroVMs are alive, scans /proc for VM and CLI processes, try-locks every lock file, parses
 * every claim and looks for temp archives and token files — and records one row per scenario, so the
 * suite can print its table (`printLeakTable`).
 */
import { expect } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ListMicrovmsCommand } from "@aws-sdk/client-lambda-microvms";
import { parseClaim } from "../../src/core/claims.ts";
import { tryLock } from "../../src/core/lock.ts";
import { isAtomicTempName } from "../../src/core/state.ts";
import { markedProcesses } from "../../src/emulator/processes.ts";
import { repoRoot } from "../integration/cli-harness.ts";
import { type Sandbox, sandbox } from "../integration/provider-run-harness.ts";
import { RUNNER_IMAGE, type TestEmulator } from "../support/emulator.ts";

export interface Box extends Sandbox {
  /** The CLI's TMPDIR: a temp archive or any other leftover would show up here. */
  tmp: string;
}

/** A provider sandbox (temp HOME/XDG, git checkout, emulator endpoint) whose CLI gets its own TMPDIR. */
export function box(emu: TestEmulator, boxes?: Box[]): Box {
  const made = sandbox(emu) as Box;
  made.tmp = join(made.root, "tmp");
  mkdirSync(made.tmp);
  made.env.TMPDIR = made.tmp;
  boxes?.push(made);
  return made;
}

export interface ExitCheck {
  label: string;
  actual: number;
  expected: number;
}

export interface LeakCheckOptions {
  scenario: string;
  emu: TestEmulator;
  boxes: Box[];
  /** Exit codes the scenario's commands must have had. */
  exits?: ExitCheck[];
  /** MicroVM ids that must still be alive (kept leases); every other MicroVM must be gone. */
  kept?: string[];
  /** Image ARNs whose MicroVMs are inspected; default the emulator's crabbox-runner in us-east-1. */
  images?: string[];
  /** How long terminating MicroVMs and their processes get to finish (default 15 s). */
  settleMs?: number;
}

export interface LeakRow {
  scenario: string;
  exits: string;
  checks: string[];
}

const rows: LeakRow[] = [];

const CHECKS = ["exit", "microvms", "vm-procs", "cli-procs", "tmp", "locks", "claims", "tokens"] as const;

/** Every MicroVM of the images, with its state (TERMINATED ones included). */
async function microvms(
  emu: TestEmulator,
  images: string[],
): Promise<{ microvmId: string; state: string }[]> {
  const client = emu.client();
  const all: { microvmId: string; state: string }[] = [];
  for (const image of images) {
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new ListMicrovmsCommand({ imageIdentifier: image, maxResults: 50, nextToken }),
      );
      for (const item of page.items ?? []) {
        all.push({ microvmId: item.microvmId ?? "", state: item.state ?? "" });
      }
      nextToken = page.nextToken || undefined;
    } while (nextToken);
  }
  return all;
}

/** Live processes whose environment holds exactly `entry` (e.g. `HOME=/tmp/x/home`). */
function processesWithEnv(entry: string): number[] {
  const found: number[] = [];
  let names: string[] = [];
  try {
    names = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return found;
  }
  for (const name of names) {
    const pid = Number(name);
    if (pid === process.pid) continue;
    let environ = "";
    try {
      environ = readFileSync(`/proc/${pid}/environ`, "latin1");
    } catch {
      continue;
    }
    if (environ.split("\0").includes(entry)) {
      // A zombie has an empty environ, so anything found here is still running.
      found.push(pid);
    }
  }
  return found;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function poll<T>(read: () => Promise<T> | T, ok: (value: T) => boolean, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() >= deadline) return value;
    await Bun.sleep(100);
  }
}

/**
 * After a scenario: the expected exit codes; no MicroVM alive but the kept ones; no process of a
 * MicroVM that is not kept; no CLI process of any sandbox; nothing in any CLI's TMPDIR; every lock
 * free (a held lock with every CLI gone is stale); every claim valid JSON and only the kept leases
 * claimed; no cached token of a MicroVM that is not kept. Records the scenario's row.
 */
export async function assertNoLeaks(options: LeakCheckOptions): Promise<void> {
  const { emu, boxes } = options;
  const kept = new Set(options.kept ?? []);
  const images = options.images ?? [RUNNER_IMAGE()];
  const settle = options.settleMs ?? 15_000;

  for (const exit of options.exits ?? []) {
    expect(`${exit.label} exit ${exit.actual}`).toBe(`${exit.label} exit ${exit.expected}`);
  }

  // Every CLI of every sandbox has exited (a background straggler would hold locks or files).
  for (const b of boxes) {
    const cli = await poll(
      () => processesWithEnv(`HOME=${join(b.root, "home")}`),
      (pids) => pids.length === 0,
      settle,
    );
    expect({ box: b.root, cliProcesses: cli }).toEqual({ box: b.root, cliProcesses: [] });
  }

  const alive = (state: string) => state !== "TERMINATED" && state !== "TERMINATING";
  const all = await poll(
    () => microvms(emu, images),
    (vms) => vms.every((vm) => kept.has(vm.microvmId) || vm.state === "TERMINATED"),
    settle,
  );
  const live = all.filter((vm) => alive(vm.state)).map((vm) => vm.microvmId);
  expect(live.sort()).toEqual([...kept].sort());
  const gone = all.map((vm) => vm.microvmId).filter((id) => !kept.has(id));
  const procs = await poll(
    () => markedProcesses(gone),
    (found) => found.size === 0,
    settle,
  );
  expect(Object.fromEntries(procs)).toEqual({});

  const claimed: string[] = [];
  for (const b of boxes) {
    expect({ tmp: b.tmp, entries: listDir(b.tmp) }).toEqual({ tmp: b.tmp, entries: [] });

    const locksDir = join(b.stateDir, "claim-locks");
    for (const name of listDir(locksDir)) {
      const lock = await tryLock(join(locksDir, name));
      expect({ lock: name, free: lock !== undefined }).toEqual({ lock: name, free: true });
      lock?.release();
    }

    const claimsDir = join(b.stateDir, "claims");
    for (const name of listDir(claimsDir)) {
      expect({ claimFile: name, tempLeftover: isAtomicTempName(name) }).toEqual({
        claimFile: name,
        tempLeftover: false,
      });
      const claim = parseClaim(readFileSync(join(claimsDir, name), "utf8"), join(claimsDir, name));
      claimed.push(claim.cloudID);
    }

    const tokens = listDir(join(b.stateDir, "tokens")).filter((name) => !isAtomicTempName(name));
    const stray = tokens.filter((name) => !kept.has(name.replace(/\.json$/, "")));
    expect({ tokensOfGoneMicrovms: stray }).toEqual({ tokensOfGoneMicrovms: [] });
    expect(listDir(join(b.stateDir, "tokens")).filter(isAtomicTempName)).toEqual([]);
  }
  expect(claimed.sort()).toEqual([...kept].sort());

  rows.push({
    scenario: options.scenario,
    exits: describeExits(options.exits ?? []),
    checks: [...CHECKS],
  });
}

/** `run=1, stop=0`; numbered labels with one code fold: `8× run=0`. */
function describeExits(exits: ExitCheck[]): string {
  const groups = new Map<string, number>();
  for (const exit of exits) {
    const key = `${exit.label.replace(/ \d+$/, "")}=${exit.actual}`;
    groups.set(key, (groups.get(key) ?? 0) + 1);
  }
  return [...groups].map(([key, count]) => (count > 1 ? `${count}× ${key}` : key)).join(", ") || "-";
}

/**
 * The rows recorded since the last call (bun runs every test file in one process, so each file's
 * afterAll takes its own), as a Markdown table; also written to .cache/reliability/<name>.md.
 */
export function printLeakTable(name: string): string {
  const lines = [
    "| scenario | exit codes | leak checks passed |",
    "|---|---|---|",
    ...rows.splice(0).map((row) => `| ${row.scenario} | ${row.exits} | ${row.checks.join(" ")} |`),
  ];
  const table = `${lines.join("\n")}\n`;
  const dir = join(repoRoot, ".cache", "reliability");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${name}.md`), table);
  if (existsSync(dir)) process.stdout.write(`\n${name}:\n${table}`);
  return table;
}
