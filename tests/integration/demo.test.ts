import { afterAll, describe, expect, test } from "bun:test";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { markedProcesses } from "../../src/emulator/processes.ts";
import { repoRoot, requireBinary } from "./cli-harness.ts";

/**
 * `npm run demo` (scripts/demo.ts --no-build: npm test has built the binary): it proves the sync,
 * shows a retained lease, and stops everything it started — also when Ctrl-C lands mid-way.
 */

const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {}
  }
});

interface Demo {
  child: ChildProcess;
  output(): string;
  waitFor(text: string): Promise<void>;
  exited: Promise<number>;
}

function startDemo(): Demo {
  requireBinary();
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith("CRABBOX_") && !key.startsWith("AWS_")) env[key] = value;
  }
  const child = spawn(process.execPath, [join(repoRoot, "scripts", "demo.ts"), "--no-build"], {
    cwd: repoRoot,
    env: { ...env, CI: "1", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, like a terminal's foreground job: Ctrl-C goes to the whole group.
    detached: true,
  });
  children.add(child);
  let output = "";
  const waiters = new Set<() => void>();
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    for (const wake of waiters) wake();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number>((resolve) =>
    child.on("close", (code, signal) => {
      children.delete(child);
      for (const wake of waiters) wake();
      resolve(code ?? (signal === "SIGINT" ? 130 : 128));
    }),
  );
  const waitFor = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${text}" in 60 s:\n${output}`)), 60_000);
      const check = () => {
        if (output.includes(text)) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        } else if (child.exitCode !== null) {
          clearTimeout(timer);
          waiters.delete(check);
          reject(new Error(`demo exited before "${text}":\n${output}`));
        }
      };
      waiters.add(check);
      check();
    });
  return { child, output: () => output, waitFor, exited };
}

function emulatorPid(output: string): number {
  const match = /emulator at \S+ \(pid (\d+)\)/.exec(output);
  if (!match) throw new Error(`no emulator pid in:\n${output}`);
  return Number(match[1]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Processes of every MicroVM the demo's output names (the emulator marks each VM's processes). */
function vmProcesses(output: string): number[] {
  const ids = new Set(
    [...output.matchAll(/microvm=(microvm-[0-9a-f-]+)/g)].map((match) => match[1] as string),
  );
  expect(ids.size).toBeGreaterThan(0);
  return [...markedProcesses(ids).values()].flat();
}

describe("npm run demo", () => {
  test("proves the sync, shows a retained lease, and leaves nothing running", async () => {
    const demo = startDemo();
    const code = await demo.exited;
    const output = demo.output();
    if (code !== 0) throw new Error(`demo exited ${code}:\n${output}`);
    expect(output).toContain("✓ sync proof:");
    expect(output).toMatch(/leased cbx_[a-f0-9]{12} slug=demo /);
    expect(output).toContain("reused lease demo");
    expect(output).toMatch(/released lease=cbx_[a-f0-9]{12} microvm=/);
    expect(output).toContain("demo complete");
    expect(alive(emulatorPid(output))).toBe(false);
    expect(vmProcesses(output)).toEqual([]);
  });

  test("Ctrl-C mid-way: the lease is stopped, the emulator too, exit 130", async () => {
    const demo = startDemo();
    await demo.waitFor("reused lease demo");
    process.kill(-(demo.child.pid as number), "SIGINT");
    const code = await demo.exited;
    const output = demo.output();
    expect(code).toBe(130);
    expect(output).toContain("demo interrupted; everything it started is stopped");
    expect(output).toMatch(/released lease=cbx_[a-f0-9]{12} microvm=/);
    expect(alive(emulatorPid(output))).toBe(false);
    expect(vmProcesses(output)).toEqual([]);
  });
});
