/**
 * Starting a runner process for a MicroVM (or for an image build's smoke boot) and talking to it.
 * Each runner gets: its own process group (detached), stdin as a pipe only the emulator holds (the
 * runner's `--exit-on-stdin-eof` makes it die with the emulator, even after SIGKILL), the VM marker
 * in its environment, a clean environment otherwise (never the host's HOME or AWS credentials), and
 * a unix socket for port 8080 in a per-VM 0700 directory.
 */

import { closeSync, mkdirSync, openSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type IsolationMode, sandboxArgv } from "./isolation.ts";
import { trackGroup, VM_MARKER } from "./processes.ts";
import { hostRunner } from "./runner-command.ts";
import type { Backend } from "./types.ts";

export interface LaunchOptions {
  id: string;
  /** The VM's host directory: root/ (workspace, tmp, home) and console.log live here. */
  dir: string;
  socketsDir: string;
  backend: Backend;
  isolation: IsolationMode;
  env: Record<string, string>;
  /** Host runners only: add the runner's `--test-echo` endpoint (the emulator's --test-api). */
  testEcho: boolean;
}

export interface RunnerProcess {
  proc: Subprocess<"pipe", number, number>;
  socket: string;
  socketDir: string;
  /** The VM's /workspace on the host. */
  workspace: string;
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export function launchRunner(options: LaunchOptions): RunnerProcess {
  const root = join(options.dir, "root");
  const workspace = join(root, "workspace");
  for (const sub of ["workspace", "tmp", "root"]) mkdirSync(join(root, sub), { recursive: true });
  mkdirSync(join(options.dir, "nsroot"), { recursive: true });
  const socketDir = join(options.socketsDir, options.id.replace(/^microvm-/, "").slice(0, 8));
  rmSync(socketDir, { recursive: true, force: true });
  mkdirSync(socketDir, { mode: 0o700 });
  const socket = join(socketDir, "8080.sock");

  let argv: string[];
  let readOnly: string[];
  const listen = ["--listen", `unix:${socket}`, "--exit-on-stdin-eof"];
  if (options.backend.kind === "host") {
    const runner = hostRunner();
    argv = [...runner.argv, ...listen, ...(options.testEcho ? ["--test-echo"] : [])];
    readOnly = runner.readOnly;
  } else {
    argv = [...options.backend.interpreter, ...options.backend.argv, ...listen];
    readOnly = [options.backend.dir];
  }
  // Later --listen/--root win in the runner, so ours override whatever the image's CMD said.
  if (options.isolation === "none") argv.push("--root", root);
  const full = sandboxArgv(options.isolation, {
    argv,
    workspace,
    readOnly,
    writable: [socketDir],
    nsRoot: join(options.dir, "nsroot"),
  });
  // CRABBOX_RUNNER_* are the runner's own knobs (e.g. its heartbeat interval): tests set them on
  // the emulator and every runner it starts inherits them. Nothing else of the host env leaks in.
  const knobs = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[0].startsWith("CRABBOX_RUNNER_") && entry[1] !== undefined,
    ),
  );
  const env: Record<string, string> = {
    ...knobs,
    PATH,
    LANG: "C.UTF-8",
    HOME: options.isolation === "none" ? join(root, "root") : "/root",
    ...options.env,
    [VM_MARKER]: options.id,
  };
  const consoleFd = openSync(join(options.dir, "console.log"), "a");
  try {
    const proc = Bun.spawn(full, {
      cwd: options.isolation === "none" ? root : options.dir,
      env,
      stdin: "pipe",
      stdout: consoleFd,
      stderr: consoleFd,
      detached: true,
    });
    trackGroup(options.id, proc.pid);
    return { proc, socket, socketDir, workspace };
  } finally {
    closeSync(consoleFd);
  }
}

/**
 * The unix socket behind a guest port. Only the runner's 8080 exists in an emulated VM; any other
 * port maps to a path nothing listens on, so a hook configured there fails as it would on AWS if
 * the app did not listen on its hooks port.
 */
export function portSocket(socket: string, port: number): string {
  return port === 8080 ? socket : `${socket}.port-${port}`;
}

export type HookResult =
  | { ok: true; status: number }
  | { ok: false; status?: number; reason: "timeout" | "status" | "unreachable" };

export const HOOK_PATH = "/aws/lambda-microvms/runtime/v1";

/** One lifecycle hook call, as the platform makes it: POST over loopback with `Host: localhost:<hooks port>`. */
export async function callHook(
  socket: string,
  hooksPort: number,
  hook: string,
  body: unknown,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<HookResult> {
  const timeout = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(`http://localhost:${hooksPort}${HOOK_PATH}/${hook}`, {
      method: "POST",
      headers: { host: `localhost:${hooksPort}`, "content-type": "application/json" },
      body: JSON.stringify(body ?? {}),
      signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
      unix: portSocket(socket, hooksPort),
    });
    await response.arrayBuffer().catch(() => undefined);
    if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
    return { ok: false, status: response.status, reason: "status" };
  } catch {
    return { ok: false, reason: timeout.aborted ? "timeout" : "unreachable" };
  }
}

/** The HTTP status something answers on a guest port of the runner, or undefined if nothing does yet. */
export async function answers(
  socket: string,
  port: number,
  path: string,
  method: "GET" | "POST",
  timeoutMs: number,
) {
  try {
    const response = await fetch(`http://localhost:${port}${path}`, {
      method,
      headers: { host: `localhost:${port}`, "content-type": "application/json" },
      body: method === "POST" ? "{}" : undefined,
      signal: AbortSignal.timeout(timeoutMs),
      unix: portSocket(socket, port),
    });
    await response.arrayBuffer().catch(() => undefined);
    return response.status;
  } catch {
    return undefined;
  }
}
