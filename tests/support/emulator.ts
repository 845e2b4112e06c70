/**
 * Start a real `crabbox emulator` for a test and point the real AWS SDK at it.
 *
 *   const emu = await startEmulator({ timeScale: 0.02, testApi: true });
 *   const client = emu.client();                       // LambdaMicrovmsClient, dummy credentials
 *   const vm = await runMicrovm(emu);                  // RunMicrovm on crabbox-runner, waits RUNNING
 *   const res = await dataFetch(emu, vm, "/health");   // through the data plane (Host routing + token)
 *   await emu.stop();                                  // SIGTERM; asserts nothing; cleans temp dirs
 *
 * Every emulator gets its own temp HOME / XDG dirs / state dir and `--log-json`, so tests never
 * touch the developer's state and can count requests. `stop()` also SIGKILLs any VM process that
 * survived (there should be none — assert with `emu.vmProcesses()` before stopping if you care).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  CreateMicrovmAuthTokenCommand,
  GetMicrovmCommand,
  LambdaMicrovmsClient,
  RunMicrovmCommand,
  type RunMicrovmCommandInput,
  type RunMicrovmCommandOutput,
} from "@aws-sdk/client-lambda-microvms";
import type { RequestRecord } from "../../src/emulator/log.ts";
import { markedProcesses } from "../../src/emulator/processes.ts";
import { decodeExecEvents, fromBase64 } from "../../src/protocol/ndjson.ts";
import type { ExecEvent } from "../../src/protocol/types.ts";

export const repoRoot = resolve(import.meta.dir, "../..");
export const RUNNER_IMAGE = (region = "us-east-1") =>
  `arn:aws:lambda:${region}:000000000000:microvm-image:crabbox-runner`;

export interface EmulatorOptions {
  /** "source": `bun src/cli.ts emulator` (default); "dist": the compiled `dist/crabbox emulator`. */
  binary?: "source" | "dist";
  timeScale?: number;
  isolation?: "auto" | "none" | "ns" | "bwrap";
  faults?: string[];
  testApi?: boolean;
  maxVms?: number;
  /** Reuse a state dir (restart tests); default: a fresh one in the emulator's temp dir. */
  stateDir?: string;
  /** Extra environment for the emulator (CRABBOX_RUNNER_* reach every runner it starts). */
  env?: Record<string, string>;
  args?: string[];
}

export interface TestEmulator {
  url: string;
  port: number;
  /** Temp dir holding home/, config/, state/ (unless stateDir was given) and log.jsonl; removed by stop(). */
  dir: string;
  stateDir: string;
  logFile: string;
  pid: number;
  process: ChildProcess;
  stderr(): string;
  /** Every `--log-json` record so far. */
  records(): RequestRecord[];
  client(region?: string): LambdaMicrovmsClient;
  /** Live processes of every VM this emulator started (ids from its log), found by the VM marker. */
  vmProcesses(): number[];
  /** SIGTERM (or `signal`) and wait for exit; returns the exit code. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Send `signal` without waiting or cleaning up (crash tests); call stop() afterwards. */
  kill(signal: NodeJS.Signals): void;
  /** VM processes still alive 5 s after the emulator exited (stop() then kills them): should be []. */
  survivors(): number[];
}

const live = new Set<TestEmulator>();

export async function startEmulator(options: EmulatorOptions = {}): Promise<TestEmulator> {
  const dir = mkdtempSync(join(tmpdir(), "crabbox-emu-test-"));
  for (const sub of ["home", "config", "xdg-state"]) mkdirSync(join(dir, sub));
  const stateDir = options.stateDir ?? join(dir, "state");
  const logFile = join(dir, "log.jsonl");
  const argv = [
    "emulator",
    "--port",
    "0",
    "--state-dir",
    stateDir,
    "--log-json",
    logFile,
    "--time-scale",
    String(options.timeScale ?? 1),
    "--isolation",
    options.isolation ?? "auto",
    ...(options.maxVms !== undefined ? ["--max-vms", String(options.maxVms)] : []),
    ...(options.testApi ? ["--test-api"] : []),
    ...(options.faults ?? []).flatMap((fault) => ["--fault", fault]),
    ...(options.args ?? []),
  ];
  const command =
    options.binary === "dist"
      ? [join(repoRoot, "dist", "crabbox"), ...argv]
      : [process.execPath, join(repoRoot, "src", "cli.ts"), ...argv];
  if (options.binary === "dist" && !existsSync(command[0] as string)) {
    throw new Error("dist/crabbox is missing: run `bun scripts/build.ts` (npm test does)");
  }
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: dir,
    env: {
      ...process.env,
      HOME: join(dir, "home"),
      XDG_CONFIG_HOME: join(dir, "config"),
      XDG_STATE_HOME: join(dir, "xdg-state"),
      AWS_REGION: "us-east-1",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  let stopping = false;
  const exited = new Promise<number | null>((done) =>
    child.on("exit", (code, signal) => {
      // An emulator that dies on its own is a bug worth seeing in the test output.
      if (!stopping)
        process.stderr.write(
          `emulator ${child.pid} exited (${signal ?? code}) unasked:\n${stderr.slice(-4000)}\n`,
        );
      done(code);
    }),
  );
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`emulator did not start in 30 s: ${stderr}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /^crabbox emulator listening on (http:\/\/\S+)\n/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1] as string);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`emulator exited with ${code} before listening: ${stderr}`));
    });
  });
  let finalRecords: RequestRecord[] | undefined;
  const records = (): RequestRecord[] => {
    if (finalRecords) return finalRecords;
    if (!existsSync(logFile)) return [];
    return readFileSync(logFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as RequestRecord);
  };
  const vmIds = () => new Set(records().flatMap((record) => (record.microvmId ? [record.microvmId] : [])));
  let stopped: Promise<number | null> | undefined;
  let survivors: number[] = [];
  const emulator: TestEmulator = {
    url,
    port: Number(new URL(url).port),
    dir,
    stateDir,
    logFile,
    pid: child.pid as number,
    process: child,
    stderr: () => stderr,
    records,
    client: (region = "us-east-1") =>
      new LambdaMicrovmsClient({
        region,
        endpoint: url,
        credentials: { accessKeyId: "AKIDEMULATOR", secretAccessKey: "emulator" },
      }),
    vmProcesses: () => [...markedProcesses(vmIds()).values()].flat(),
    stop(signal: NodeJS.Signals = "SIGTERM") {
      stopped ??= (async () => {
        stopping = true;
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        const code = await exited;
        clearTimeout(timer);
        // The kernel delivers a sandbox's die-with-parent SIGKILL asynchronously: give processes that
        // are already dying a bounded moment before counting them as survivors.
        for (let waited = 0; waited < 5_000 && emulator.vmProcesses().length > 0; waited += 100) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        // Belt and braces: a test must never leave a VM process behind, even when it failed.
        survivors = emulator.vmProcesses();
        for (const pid of survivors) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {}
        }
        live.delete(emulator);
        // The log outlives the temp dir: tests read records after stop().
        finalRecords = records();
        rmSync(dir, { recursive: true, force: true });
        return code;
      })();
      return stopped;
    },
    survivors: () => survivors,
    kill(signal: NodeJS.Signals) {
      stopping = true;
      child.kill(signal);
    },
  };
  live.add(emulator);
  return emulator;
}

/** Stop every emulator a test file started (call from afterAll). */
export async function stopAllEmulators(): Promise<void> {
  await Promise.all([...live].map((emulator) => emulator.stop()));
}

/** Poll GetMicrovm until `state` (or a terminal state), within `ms`. */
export async function waitForState(
  emu: TestEmulator,
  microvmId: string,
  states: string | string[],
  ms = 20_000,
): Promise<string> {
  const wanted = Array.isArray(states) ? states : [states];
  const client = emu.client();
  const deadline = Date.now() + ms;
  let state = "";
  while (Date.now() < deadline) {
    state = (await client.send(new GetMicrovmCommand({ microvmIdentifier: microvmId }))).state ?? "";
    if (wanted.includes(state)) return state;
    await Bun.sleep(50);
  }
  throw new Error(`MicroVM ${microvmId} is ${state}, not ${wanted.join("|")}, after ${ms} ms`);
}

export interface TestVm extends RunMicrovmCommandOutput {
  microvmId: string;
  endpoint: string;
  token: string;
}

/** RunMicrovm (crabbox-runner by default), wait for RUNNING, mint a port-8080 token. */
export async function runMicrovm(
  emu: TestEmulator,
  input: Partial<RunMicrovmCommandInput> = {},
): Promise<TestVm> {
  const client = emu.client();
  const run = await client.send(new RunMicrovmCommand({ imageIdentifier: RUNNER_IMAGE(), ...input }));
  const microvmId = run.microvmId as string;
  await waitForState(emu, microvmId, "RUNNING");
  const token = await mintToken(emu, microvmId);
  return { ...run, microvmId, endpoint: run.endpoint as string, token };
}

export async function mintToken(
  emu: TestEmulator,
  microvmId: string,
  allowedPorts: { port: number }[] = [{ port: 8080 }],
): Promise<string> {
  const out = await emu.client().send(
    new CreateMicrovmAuthTokenCommand({
      microvmIdentifier: microvmId,
      expirationInMinutes: 5,
      allowedPorts,
    }),
  );
  return out.authToken?.["X-aws-proxy-auth"] as string;
}

/** A data-plane request: Host = the VM endpoint, X-aws-proxy-auth = the token (unless given). */
export function dataFetch(
  emu: TestEmulator,
  vm: { endpoint: string; token?: string },
  path: string,
  init: Omit<RequestInit, "headers"> & { headers?: Record<string, string> } = {},
): Promise<Response> {
  const headers: Record<string, string> = { host: vm.endpoint, ...init.headers };
  if (vm.token && !("x-aws-proxy-auth" in headers)) headers["x-aws-proxy-auth"] = vm.token;
  return fetch(`${emu.url}${path}`, { ...init, headers });
}

export interface ExecResult {
  status: number;
  stdout: string;
  stderr: string;
  exit?: Extract<ExecEvent, { type: "exit" }>;
  events: ExecEvent[];
}

/** POST /v1/exec through the data plane and collect its NDJSON events. */
export async function execIn(
  emu: TestEmulator,
  vm: { endpoint: string; token?: string },
  command: string,
  request: Record<string, unknown> = {},
): Promise<ExecResult> {
  const response = await dataFetch(emu, vm, "/v1/exec", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ command, workdir: "/workspace/crabbox", ...request }),
  });
  if (response.status !== 200 || !response.body) {
    return { status: response.status, stdout: "", stderr: await response.text(), events: [] };
  }
  const events: ExecEvent[] = [];
  for await (const event of decodeExecEvents(response.body)) events.push(event);
  const decoder = new TextDecoder();
  const text = (type: "stdout" | "stderr") =>
    events
      .filter((event) => event.type === type)
      .map((event) => decoder.decode(fromBase64((event as { data: string }).data), { stream: true }))
      .join("");
  const exit = events.find((event) => event.type === "exit") as ExecResult["exit"];
  return { status: response.status, stdout: text("stdout"), stderr: text("stderr"), exit, events };
}
