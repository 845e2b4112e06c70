/**
 * The in-MicroVM runner: `crabbox-runner [--listen :8080 | host:port | unix:/path] [--root DIR]
 * [--version] [--test-echo] [--exit-on-stdin-eof]`. The same code runs as `crabbox __runner …`
 * (the emulator) and as `bun runner/main.ts …` (tests). A later --listen/--root wins, because the
 * emulator appends its own to an image's CMD.
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { version } from "../src/core/version.ts";
import { HEARTBEAT_INTERVAL_MS, PROTOCOL_VERSION, RUNNER_PORT } from "../src/protocol/types.ts";
import { type ListenAddress, startRunner } from "./server.ts";

const USAGE =
  "usage: crabbox-runner [--listen :8080 | host:port | unix:/path] [--root DIR] [--version] [--test-echo] [--exit-on-stdin-eof]";

interface RunnerArgs {
  listen: ListenAddress;
  root: string | undefined;
  version: boolean;
  testEcho: boolean;
  exitOnStdinEof: boolean;
}

export function parseListen(value: string): ListenAddress {
  if (value.startsWith("unix:")) {
    const path = value.slice("unix:".length);
    if (!path.startsWith("/")) throw new Error(`--listen ${value}: the unix socket path must be absolute`);
    return { kind: "unix", path };
  }
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new Error(`--listen ${value}: expected :port, host:port or unix:/path`);
  const hostname = match[1] ?? match[2] ?? "";
  return { kind: "tcp", hostname: hostname === "" ? "0.0.0.0" : hostname, port };
}

export function parseRunnerArgs(argv: string[]): RunnerArgs {
  const args: RunnerArgs = {
    listen: { kind: "tcp", hostname: "0.0.0.0", port: RUNNER_PORT },
    root: undefined,
    version: false,
    testEcho: false,
    exitOnStdinEof: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    const [flag, inline] = token.startsWith("--") && token.includes("=") ? token.split(/=(.*)/s, 2) : [token];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--listen":
        args.listen = parseListen(value());
        break;
      case "--root": {
        const root = value();
        if (root === "") throw new Error("--root needs a directory");
        args.root = resolve(root);
        break;
      }
      case "--version":
        args.version = true;
        break;
      case "--test-echo":
        args.testEcho = true;
        break;
      case "--exit-on-stdin-eof":
        args.exitOnStdinEof = true;
        break;
      default:
        throw new Error(`unknown argument ${token}`);
    }
  }
  return args;
}

/** Test knob: heartbeats every N ms instead of every 10 s. */
function heartbeatMs(): number {
  const value = Number(process.env.CRABBOX_RUNNER_HEARTBEAT_MS);
  return Number.isInteger(value) && value > 0 && value <= HEARTBEAT_INTERVAL_MS
    ? value
    : HEARTBEAT_INTERVAL_MS;
}

/** Runs the runner until SIGTERM/SIGINT (or stdin EOF with --exit-on-stdin-eof); resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  let args: RunnerArgs;
  try {
    args = parseRunnerArgs(argv);
  } catch (error) {
    process.stderr.write(`crabbox-runner: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.version) {
    process.stdout.write(`crabbox-runner ${version} protocol ${PROTOCOL_VERSION}\n`);
    return 0;
  }
  if (args.listen.kind === "unix") {
    // A socket file left by a killed runner would make the bind fail.
    await rm(args.listen.path, { force: true });
  }
  let runner: Awaited<ReturnType<typeof startRunner>>;
  try {
    runner = await startRunner({
      listen: args.listen,
      root: args.root,
      version,
      testEcho: args.testEcho,
      heartbeatMs: heartbeatMs(),
    });
  } catch (error) {
    process.stderr.write(`crabbox-runner: cannot listen: ${(error as Error).message}\n`);
    return 1;
  }
  process.stderr.write(
    `crabbox-runner ${version} listening on ${runner.address} (protocol ${PROTOCOL_VERSION}${args.root ? `, root ${args.root}` : ""})\n`,
  );

  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const shutdown = (why: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`crabbox-runner: ${why}; stopping every exec group\n`);
      void runner
        .stop()
        .catch(() => {})
        .then(async () => {
          if (args.listen.kind === "unix") await rm(args.listen.path, { force: true });
          resolveExit(0);
        });
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
    if (args.exitOnStdinEof) {
      process.stdin.on("end", () => shutdown("stdin closed"));
      process.stdin.on("error", () => shutdown("stdin closed"));
      process.stdin.resume();
    }
  });
}

// No top-level await: the binary is a CommonJS bundle (scripts/build.ts says why).
if (import.meta.main) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
