import { afterAll, afterEach, beforeAll, setDefaultTimeout } from "bun:test";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ListMicrovmsCommand } from "@aws-sdk/client-lambda-microvms";
import type { RequestRecord } from "../../src/emulator/log.ts";
import { type EmulatorOptions, RUNNER_IMAGE, startEmulator, type TestEmulator } from "../support/emulator.ts";
import { binary, requireBinary } from "./cli-harness.ts";

/**
 * The compiled `dist/crabbox` against a real emulator, in a throwaway home with a fresh git
 * checkout. Every child is started in its own process group and killed (group-wide) by cleanup().
 */

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once `text` appeared on stderr (or stdout). */
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
  exited: Promise<Result>;
}

export interface Sandbox {
  root: string;
  repo: string;
  env: Record<string, string>;
  stateDir: string;
  write(path: string, content: string): void;
  crabbox(args: string[], options?: { cwd?: string; env?: Record<string, string> }): Promise<Result>;
  start(
    args: string[],
    options?: {
      cwd?: string;
      env?: Record<string, string>;
      command?: string[];
      /** The child's stdin: ignored (default) or a pipe the test writes to (`child.stdin`). */
      stdin?: "ignore" | "pipe";
    },
  ): Running;
  /** Lease claims on disk, parsed. */
  claims(): Record<string, unknown>[];
  cleanup(): void;
}

const children = new Set<ChildProcess>();

export function sandbox(emu: TestEmulator): Sandbox {
  requireBinary();
  const root = mkdtempSync(join(tmpdir(), "crabbox-provider-run-"));
  const repo = join(root, "repo");
  mkdirSync(repo, { recursive: true });
  const home = join(root, "home");
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_STATE_HOME: join(home, "state"),
    NO_COLOR: "1",
    GIT_CONFIG_NOSYSTEM: "1",
    CRABBOX_PROVIDER: "aws-lambda-microvm",
    CRABBOX_AWS_REGION: "us-east-1",
    CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: RUNNER_IMAGE(),
    CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url,
  };
  execFileSync("git", ["init", "-q"], { cwd: repo, env });
  const stateDir = join(env.XDG_STATE_HOME as string, "crabbox");

  const start: Sandbox["start"] = (args, options = {}) => {
    const command = options.command ?? [binary];
    const child = spawn(command[0] as string, [...command.slice(1), ...args], {
      cwd: options.cwd ?? repo,
      env: { ...env, ...options.env },
      stdio: [options.stdin ?? "ignore", "pipe", "pipe"],
      detached: true,
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    const waiters = new Set<() => void>();
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      for (const wake of waiters) wake();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const wake of waiters) wake();
    });
    const exited = new Promise<Result>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => {
        children.delete(child);
        for (const wake of waiters) wake();
        resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
      });
    });
    const waitFor = (text: string | RegExp, ms = 30_000) =>
      new Promise<void>((resolve, reject) => {
        const matches = () =>
          typeof text === "string"
            ? stderr.includes(text) || stdout.includes(text)
            : text.test(stderr) || text.test(stdout);
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${String(text)}; stderr so far:\n${stderr}`));
        }, ms);
        const check = () => {
          if (matches()) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`exited before ${String(text)}; stderr:\n${stderr}`));
          }
        };
        waiters.add(check);
        check();
      });
    return { child, stdout: () => stdout, stderr: () => stderr, waitFor, exited };
  };

  return {
    root,
    repo,
    env,
    stateDir,
    write(path, content) {
      const file = join(repo, path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, content);
    },
    crabbox: (args, options) => start(args, options).exited,
    start,
    claims() {
      const dir = join(stateDir, "claims");
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((name) => name.endsWith(".json") && !name.startsWith("."))
        .map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")) as Record<string, unknown>);
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface ProviderSuite {
  /** The file's emulator (started in beforeAll, so only call this inside a test or hook). */
  emu(): TestEmulator;
  /** A fresh sandbox against that emulator, holding the suite's starter files, removed in afterAll. */
  box(): Sandbox;
}

/**
 * The fixture of a test file that drives `dist/crabbox` against one emulator. Called once at the
 * top level of the file, it registers that file's hooks: the emulator starts before its tests,
 * every child a test left is killed after it (and, with `testApi`, the emulator's faults are
 * cleared, so one test's faults never reach the next), and everything is removed at the end.
 * `files` are written into every box's checkout.
 */
export function providerSuite(options: EmulatorOptions, files: Record<string, string> = {}): ProviderSuite {
  // Each test drives several CLI processes and MicroVMs; bun's 5 s default is too tight under load.
  setDefaultTimeout(60_000);
  let emulator: TestEmulator | undefined;
  const boxes: Sandbox[] = [];
  const emu = () => {
    if (!emulator) throw new Error("the emulator is not running: call emu() inside a test");
    return emulator;
  };

  beforeAll(async () => {
    emulator = await startEmulator(options);
  });
  afterEach(async () => {
    killChildren();
    if (options.testApi && emulator) await setFaults(emulator, []);
  });
  afterAll(async () => {
    killChildren();
    for (const box of boxes) box.cleanup();
    await emulator?.stop();
  });

  return {
    emu,
    box() {
      const made = sandbox(emu());
      boxes.push(made);
      for (const [path, content] of Object.entries(files)) made.write(path, content);
      return made;
    },
  };
}

/** `crabbox args` in the sandbox, which must exit 0 (else the error names the command and its stderr). */
export async function ok(b: Sandbox, args: string[], env: Record<string, string> = {}): Promise<Result> {
  const result = await b.crabbox(args, { env });
  if (result.code !== 0)
    throw new Error(`crabbox ${args.join(" ")} exited ${result.code}:\n${result.stderr}`);
  return result;
}

/**
 * The control- and data-plane requests the emulator logged while `fn` ran; waits (up to 10 s)
 * until a record `until` accepts is among them.
 */
export async function requestsDuring<T>(
  emu: TestEmulator,
  fn: () => Promise<T>,
  until: (r: RequestRecord) => boolean = (r) => r.path === "/v1/exec",
): Promise<{ value: T; records: RequestRecord[] }> {
  const before = emu.records().length;
  const value = await fn();
  // The proxy logs a request when its response ends, a moment after the client read the last byte.
  const deadline = Date.now() + 10_000;
  let records = emu.records().slice(before);
  while (!records.some(until) && Date.now() < deadline) {
    await Bun.sleep(20);
    records = emu.records().slice(before);
  }
  return { value, records: records.filter((r) => r.plane === "control" || r.plane === "data") };
}

/** Kills every child a test left running (its whole process group). */
export function killChildren(): void {
  for (const child of children) {
    try {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    } catch {}
  }
  children.clear();
}

/** MicroVMs the emulator has that are not terminated or terminating. */
export async function liveMicrovms(emu: TestEmulator): Promise<{ microvmId: string; state: string }[]> {
  const out = await emu
    .client()
    .send(new ListMicrovmsCommand({ imageIdentifier: RUNNER_IMAGE(), maxResults: 50 }));
  return (out.items ?? [])
    .filter((item) => item.state !== "TERMINATED" && item.state !== "TERMINATING")
    .map((item) => ({ microvmId: item.microvmId ?? "", state: item.state ?? "" }));
}

/** Replaces the emulator's fault set (needs `testApi: true`). */
export async function setFaults(emu: TestEmulator, faults: string[]): Promise<void> {
  const response = await fetch(`${emu.url}/_emulator/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ faults }),
  });
  if (response.status !== 200) throw new Error(`setting faults failed: ${await response.text()}`);
}

/** The one lease id a crabbox stderr names in its `provisioning` line. */
export function leaseIdOf(stderr: string): string {
  const match = /provisioning provider=\S+ lease=(cbx_[a-f0-9]{12})/.exec(stderr);
  if (!match) throw new Error(`no provisioning line in:\n${stderr}`);
  return match[1] as string;
}

/** The MicroVM id a crabbox stderr names in its `leased` line. */
export function microvmIdOf(stderr: string): string {
  const match = /microvm=(\S+)/.exec(stderr);
  if (!match) throw new Error(`no microvm= in:\n${stderr}`);
  return match[1] as string;
}
