/**
 * One MicroVM: its state machine (reference §2.1), its runner process, its timers. The class guards
 * that state; transitions run one at a time on a per-VM chain, while the API sees the new state
 * (SUSPENDING, TERMINATING) as soon as a transition is accepted — the real API is asynchronous too.
 */

import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Hooks } from "@aws-sdk/client-lambda-microvms";
import type { Clock } from "./clock.ts";
import type { FaultSet } from "./faults.ts";
import type { IsolationMode } from "./isolation.ts";
import { answers, callHook, HOOK_PATH, type HookResult, launchRunner, type RunnerProcess } from "./launch.ts";
import type { EmulatorLog } from "./log.ts";
import { freezeVm, killVm, signalVm, untrackGroup } from "./processes.ts";
import { forgetVm, recordVm, type StatePaths } from "./state.ts";
import type { IdlePolicy, ImageRecord, ImageVersion, MicrovmState } from "./types.ts";

export interface SupervisorContext {
  clock: Clock;
  log: EmulatorLog;
  faults: FaultSet;
  paths: StatePaths;
  isolation: IsolationMode;
  testApi: boolean;
}

export interface MicrovmSpec {
  microvmId: string;
  region: string;
  endpoint: string;
  image: ImageRecord;
  version: ImageVersion;
  maximumDurationInSeconds: number;
  executionRoleArn?: string;
  idlePolicy?: IdlePolicy;
  ingressNetworkConnectors?: string[];
  egressNetworkConnectors?: string[];
  runHookPayload?: string;
}

/** Seconds a runner may take to answer after spawn, before scaling (floored, see Clock). */
const BOOT_TIMEOUT_S = 30;
const BOOT_FLOOR_S = 20;
/** Hook timeouts when the image sets none: AWS's documented default is 1 s; we are kinder to CI. */
const DEFAULT_HOOK_TIMEOUT_S = 3;
const HOOK_FLOOR_S = 5;
/** Real time between SIGTERM and SIGKILL when a VM is torn down. */
const KILL_GRACE_MS = 2000;

const terminal = (state: MicrovmState) => state === "TERMINATING" || state === "TERMINATED";

export class Microvm {
  state: MicrovmState = "PENDING";
  stateReason: string | undefined;
  readonly startedAt = Date.now();
  terminatedAt: number | undefined;
  /** Only data-plane request arrival and completion move this (strict idle accounting). */
  lastTrafficAt = Date.now();
  suspendedAt: number | undefined;
  /** For the first-request-502 fault. */
  firstRequestSeen = false;
  private readonly history: { at: number; state: MicrovmState }[] = [];
  private runner: RunnerProcess | undefined;
  private frozen = false;
  private wasRunning = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly listeners = new Set<() => void>();
  private readonly bootAbort = new AbortController();
  private exited: Promise<unknown> = Promise.resolve();

  constructor(
    readonly spec: MicrovmSpec,
    readonly dir: string,
    private readonly ctx: SupervisorContext,
  ) {
    this.history.push({ at: this.startedAt, state: "PENDING" });
  }

  get id(): string {
    return this.spec.microvmId;
  }

  get socket(): string | undefined {
    return this.runner?.socket;
  }

  /** The VM's /workspace on the host (tests inspect files through it while the VM is frozen). */
  get workspace(): string | undefined {
    return this.runner?.workspace;
  }

  private get hooks(): Hooks | undefined {
    return this.spec.version.config.hooks;
  }

  /** The state `lagMs` ago: GetMicrovm is only eventually consistent on AWS. */
  stateAt(lagMs: number): MicrovmState {
    const at = Date.now() - lagMs;
    let state: MicrovmState = "PENDING";
    for (const entry of this.history) if (entry.at <= at) state = entry.state;
    return state;
  }

  private setState(state: MicrovmState, why?: string): void {
    if (this.state === state) return;
    const from = this.state;
    this.state = state;
    this.history.push({ at: Date.now(), state });
    if (this.history.length > 64) this.history.splice(0, this.history.length - 64);
    this.ctx.log.note(`[${this.id}] ${from} -> ${state}${why ? ` (${why})` : ""}`);
    for (const listener of [...this.listeners]) listener();
  }

  /** Resolves true once `predicate` holds, false after `ms`. */
  waitFor(predicate: (state: MicrovmState) => boolean, ms: number): Promise<boolean> {
    if (predicate(this.state)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const listener = () => {
        if (!predicate(this.state)) return;
        cleanup();
        resolve(true);
      };
      const timer = setTimeout(() => {
        cleanup();
        resolve(predicate(this.state));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
    });
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work);
    this.chain = next.catch((error) => this.ctx.log.note(`[${this.id}] transition failed: ${String(error)}`));
    return next;
  }

  touch(): void {
    this.lastTrafficAt = Date.now();
  }

  start(): void {
    void this.enqueue(() => this.boot());
  }

  private hookTimeoutMs(name: "run" | "resume" | "suspend" | "terminate"): number {
    const seconds = this.hooks?.microvmHooks?.[`${name}TimeoutInSeconds`] ?? DEFAULT_HOOK_TIMEOUT_S;
    return this.ctx.clock.timeoutMs(seconds, HOOK_FLOOR_S);
  }

  private hookEnabled(name: "run" | "resume" | "suspend" | "terminate"): boolean {
    return this.hooks?.microvmHooks?.[name] === "ENABLED";
  }

  private async hook(name: "run" | "resume" | "suspend" | "terminate", body: unknown, signal?: AbortSignal) {
    const socket = this.runner?.socket;
    const started = Date.now();
    const result: HookResult = socket
      ? await callHook(socket, this.hooks?.port ?? 8080, name, body, this.hookTimeoutMs(name), signal)
      : { ok: false, reason: "unreachable" };
    this.ctx.log.request({
      ts: new Date(started).toISOString(),
      plane: "hook",
      op: name,
      method: "POST",
      path: `/aws/lambda-microvms/runtime/v1/${name}`,
      microvmId: this.id,
      status: result.status ?? (result.ok ? 200 : 0),
      bytesIn: 0,
      bytesOut: 0,
      ms: Date.now() - started,
      ...(result.ok ? {} : { error: result.reason }),
    });
    return result;
  }

  private async boot(): Promise<void> {
    const { faults, clock } = this.ctx;
    const slow = faults.take("slow-boot-ms", "RunMicrovm");
    if (slow) await abortableSleep(Number(slow.value), this.bootAbort.signal);
    if (this.state !== "PENDING") return;
    try {
      this.runner = launchRunner({
        id: this.id,
        dir: this.dir,
        socketsDir: this.ctx.paths.sockets,
        backend: this.spec.version.backend ?? { kind: "host" },
        isolation: this.ctx.isolation,
        env: this.guestEnv(),
        testEcho: this.ctx.testApi,
      });
    } catch (error) {
      this.requestTerminate(`MicroVM failed to start: ${String(error)}`);
      return;
    }
    const proc = this.runner.proc;
    recordVm(this.ctx.paths, { microvmId: this.id, pid: proc.pid, startedAt: new Date().toISOString() });
    this.exited = proc.exited.then((code) =>
      this.onExit(code, proc.signalCode ? String(proc.signalCode) : null),
    );
    if (faults.take("runner-crash", "RunMicrovm", { explicit: true })) {
      // The runner dies while booting. The VM is terminated right here rather than when the exit
      // is noticed: a kill sent in the instant after spawn can miss part of the VM (a sandbox
      // wrapper's child that has not yet asked to die with its parent, a process not yet carrying
      // the marker), and waiting for the exit left a window in which that survivor answered the
      // boot probe and the VM booted normally. terminate() kills whatever is left, by marker.
      proc.kill("SIGKILL");
      signalVm(this.id, "SIGKILL");
      void this.requestTerminate("MicroVM application was killed by SIGKILL.");
      return;
    }

    // No snapshot to restore: the runner boots now. With a ready hook it counts as up once /ready
    // says 200 (503 = not yet); without, once anything answers HTTP on port 8080.
    const readyHook = this.hooks?.microvmImageHooks?.ready === "ENABLED";
    const deadline = Date.now() + clock.timeoutMs(BOOT_TIMEOUT_S, BOOT_FLOOR_S);
    let up = false;
    while (!this.bootAbort.signal.aborted && Date.now() < deadline) {
      const status = readyHook
        ? await answers(this.runner.socket, this.hooks?.port ?? 8080, `${HOOK_PATH}/ready`, "POST", 2000)
        : await answers(this.runner.socket, 8080, "/", "GET", 2000);
      if (status !== undefined && (!readyHook || status === 200)) {
        up = true;
        break;
      }
      await abortableSleep(50, this.bootAbort.signal);
    }
    if (this.state !== "PENDING") return;
    if (!up) {
      this.requestTerminate(
        `MicroVM application did not become ready on port 8080 within ${BOOT_TIMEOUT_S} seconds. Please check your application logs for more details.`,
      );
      return;
    }
    if (this.hookEnabled("run")) {
      const result = await this.hook(
        "run",
        { microvmId: this.id, runHookPayload: this.spec.runHookPayload ?? "" },
        this.bootAbort.signal,
      );
      if (this.state !== "PENDING") return;
      if (!result.ok) {
        this.requestTerminate(
          result.reason === "status"
            ? `Run lifecycle hook returned HTTP status ${result.status}. Please check your hook endpoint and application logs for more details.`
            : `Run lifecycle hook ${result.reason === "timeout" ? "timed out" : "could not be reached"}. Please check your hook endpoint and application logs for more details.`,
        );
        return;
      }
    }
    this.wasRunning = true;
    this.touch();
    this.setState("RUNNING");
  }

  private guestEnv(): Record<string, string> {
    const { image, version } = this.spec;
    return {
      ...version.config.environmentVariables,
      AWS_LAMBDA_MICROVM_IMAGE_ARN: image.arn,
      AWS_LAMBDA_MICROVM_IMAGE_VERSION: version.version,
      AWS_LAMBDA_MICROVM_IMAGE_NAME: image.name,
      AWS_REGION: this.spec.region,
      AWS_DEFAULT_REGION: this.spec.region,
    };
  }

  private onExit(code: number | null, signal: string | null): void {
    if (terminal(this.state)) return;
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    this.requestTerminate(`MicroVM application ${how}.`);
  }

  /** "started" when the VM begins suspending, "noop" when it already is (idempotent), else "conflict". */
  requestSuspend(why: string): "started" | "noop" | "conflict" {
    if (this.state === "SUSPENDING" || this.state === "SUSPENDED") return "noop";
    if (this.state !== "RUNNING") return "conflict";
    this.setState("SUSPENDING", why);
    void this.enqueue(() => this.suspend());
    return "started";
  }

  private async suspend(): Promise<void> {
    if (this.state !== "SUSPENDING") return;
    if (this.hookEnabled("suspend")) {
      const result = await this.hook("suspend", { microvmId: this.id });
      if (this.state !== "SUSPENDING") return;
      if (!result.ok) {
        // AWS: a failing /suspend means the VM does not suspend; it keeps running.
        this.touch();
        this.setState("RUNNING", `suspend hook failed (${result.reason})`);
        return;
      }
    }
    await freezeVm(this.id);
    if (this.state !== "SUSPENDING") return;
    this.frozen = true;
    this.suspendedAt = Date.now();
    this.setState("SUSPENDED");
  }

  /**
   * Resume a suspended VM; resolves true once it is RUNNING. A suspending VM is resumed once its
   * suspension completes (the chain orders them). Undefined when the state allows no resume.
   */
  requestResume(): Promise<boolean> | undefined {
    if (this.state === "RUNNING") return Promise.resolve(true);
    if (this.state !== "SUSPENDED" && this.state !== "SUSPENDING") return undefined;
    return this.enqueue(() => this.resume());
  }

  private async resume(): Promise<boolean> {
    if (this.state === "RUNNING") return true;
    if (this.state !== "SUSPENDED") return false;
    signalVm(this.id, "SIGCONT");
    this.frozen = false;
    if (this.hookEnabled("resume")) {
      // AWS keeps the VM SUSPENDED while /resume runs.
      const result = await this.hook("resume", { microvmId: this.id });
      if (this.state !== "SUSPENDED") return false;
      if (!result.ok) {
        await freezeVm(this.id);
        this.frozen = true;
        this.ctx.log.note(`[${this.id}] resume hook failed (${result.reason}); staying SUSPENDED`);
        return false;
      }
    }
    this.touch();
    this.suspendedAt = undefined;
    this.setState("RUNNING");
    return true;
  }

  /** Begin termination (idempotent). Returns a promise that settles once the VM is TERMINATED. */
  requestTerminate(reason: string): Promise<unknown> {
    if (terminal(this.state)) return this.chain;
    this.stateReason = reason;
    this.setState("TERMINATING", reason);
    this.bootAbort.abort();
    return this.enqueue(() => this.terminate());
  }

  private async terminate(): Promise<void> {
    if (this.state !== "TERMINATING") return;
    const runner = this.runner;
    if (runner) {
      if (this.frozen) {
        signalVm(this.id, "SIGCONT");
        this.frozen = false;
      }
      const alive = runner.proc.exitCode === null && runner.proc.signalCode === null;
      if (alive && this.wasRunning && this.hookEnabled("terminate"))
        await this.hook("terminate", { microvmId: this.id });
      if (runner.proc.exitCode === null && runner.proc.signalCode === null) {
        signalVm(this.id, "SIGTERM");
        await Promise.race([runner.proc.exited, Bun.sleep(KILL_GRACE_MS)]);
      }
      // Every process of the VM, including exec children that left the runner's process group.
      signalVm(this.id, "SIGKILL");
      try {
        process.kill(-runner.proc.pid, "SIGKILL");
      } catch {
        // The group is already empty.
      }
      await Promise.race([this.exited, Bun.sleep(5000)]);
      if (!(await killVm(this.id, 5000))) this.ctx.log.note(`[${this.id}] some processes would not die`);
      forgetVm(this.ctx.paths, this.id);
      untrackGroup(this.id);
      rmSync(runner.socketDir, { recursive: true, force: true });
    }
    // The VM's files go; its console.log stays until the VM is forgotten, for post-mortems.
    for (const sub of ["root", "nsroot"]) rmSync(join(this.dir, sub), { recursive: true, force: true });
    if (this.stateReason && !this.wasRunning && runner) {
      this.ctx.log.note(`[${this.id}] runner output: ${join(this.dir, "console.log")}`);
    }
    this.terminatedAt = Date.now();
    this.setState("TERMINATED");
  }

  /** The sweep: idle suspension, suspended and maximum durations (all scaled by --time-scale). */
  tick(now: number): void {
    const { clock } = this.ctx;
    if (terminal(this.state)) return;
    if (now - this.startedAt >= clock.ms(this.spec.maximumDurationInSeconds)) {
      void this.requestTerminate(
        `MicroVM exceeded its maximum duration of ${this.spec.maximumDurationInSeconds} seconds.`,
      );
      return;
    }
    const policy = this.spec.idlePolicy;
    if (!policy) return;
    if (this.state === "RUNNING" && now - this.lastTrafficAt >= clock.ms(policy.maxIdleDurationSeconds)) {
      this.requestSuspend(`idle ${policy.maxIdleDurationSeconds}s`);
    } else if (
      this.state === "SUSPENDED" &&
      this.suspendedAt !== undefined &&
      now - this.suspendedAt >= clock.ms(policy.suspendedDurationSeconds)
    ) {
      void this.requestTerminate(
        `MicroVM exceeded its suspended duration of ${policy.suspendedDurationSeconds} seconds.`,
      );
    }
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
