import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CrabboxError, ExitCode } from "./errors.ts";
import { claimsDir } from "./paths.ts";
import { displayShellArg } from "./shell.ts";

/**
 * The one place crabbox handles SIGINT, SIGTERM and SIGHUP.
 *
 * The first signal aborts the command's AbortSignal with an InterruptError naming it: backends
 * forward it to the remote command, stop waiting, roll back (a one-shot MicroVM is terminated) and
 * the command ends with exit 130. A terminal sends Ctrl-C to the whole foreground group and CI
 * systems send SIGTERM before SIGKILL, so all three mean "stop, cleanly".
 *
 * A second signal means "now": forced-exit hooks run synchronously (the --json-summary file is
 * written), every lease this process created and still holds is named with the exact command that
 * ends it, and the process exits 130 at once — cleanup is then the user's, with the command to do it.
 */

export type InterruptSignal = "SIGINT" | "SIGTERM" | "SIGHUP";

const INTERRUPT_SIGNALS: readonly InterruptSignal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** The abort reason of an interrupted command; the funnel prints `error: interrupted`, exit 130. */
export class InterruptError extends CrabboxError {
  /** What interrupted crabbox; forwarded as is to the remote command. */
  readonly signal: InterruptSignal;

  constructor(signal: InterruptSignal) {
    super("interrupted", { exitCode: ExitCode.interrupted });
    this.signal = signal;
  }
}

/** The signal behind an abort reason, when it was an interrupt. */
export function interruptSignalOf(reason: unknown): InterruptSignal | undefined {
  return reason instanceof InterruptError ? reason.signal : undefined;
}

/**
 * Runs synchronously when a second signal forces the exit; returns lines to print (what is still
 * running and how to stop it), if any. It must not throw and must not wait.
 */
export type ForcedExitHook = () => readonly string[] | undefined;

export interface Interrupts {
  readonly signal: AbortSignal;
  /** Registers a forced-exit hook; returns the function that unregisters it. */
  onForcedExit(hook: ForcedExitHook): () => void;
  /** Removes the process signal handlers (tests; a CLI process just exits). */
  dispose(): void;
}

export interface InterruptOptions {
  /** The state dir whose claims this process owns are listed on a forced exit. */
  stateDir?: string;
  write?: (text: string) => void;
  exit?: (code: number) => void;
  /** Where to listen (default: process). */
  target?: Pick<NodeJS.Process, "on" | "off">;
  pid?: number;
}

interface OwnedClaim {
  leaseID: string;
  provider: string;
  cloudID: string;
}

/**
 * Leases this process created and has not released: claims whose `owner.pid` is this process.
 * Synchronous on purpose — it runs inside a signal handler right before exit.
 */
export function ownedClaimsSync(stateDir: string, pid: number): OwnedClaim[] {
  const dir = claimsDir(stateDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const owned: OwnedClaim[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith(".json") || name.startsWith(".")) continue;
    try {
      const claim = JSON.parse(readFileSync(join(dir, name), "utf8")) as Record<string, unknown>;
      const owner = claim.owner as { pid?: unknown } | undefined;
      if (owner?.pid !== pid || typeof claim.leaseID !== "string") continue;
      owned.push({
        leaseID: claim.leaseID,
        provider: typeof claim.provider === "string" ? claim.provider : "",
        cloudID: typeof claim.cloudID === "string" ? claim.cloudID : "",
      });
    } catch {
      // A claim being rewritten right now, or not ours to parse: nothing to say about it.
    }
  }
  return owned;
}

/** The lines naming a lease left behind, with the command that ends it. */
export function leftBehindLines(claims: readonly OwnedClaim[]): string[] {
  return claims.map((claim) => {
    const provider = claim.provider ? ` --provider ${claim.provider}` : "";
    if (claim.cloudID === "") {
      // RunMicrovm was in flight: only cleanup can find the MicroVM (it replays the stored call).
      return `still alive: lease ${claim.leaseID} was being created; find and terminate its MicroVM with: crabbox cleanup${provider}`;
    }
    return `still alive: lease ${claim.leaseID} (MicroVM ${claim.cloudID}); stop it with: crabbox stop${provider} ${displayShellArg(claim.leaseID)}`;
  });
}

export function installInterrupts(options: InterruptOptions = {}): Interrupts {
  const target = options.target ?? process;
  const write = options.write ?? ((text: string) => void process.stderr.write(text));
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const pid = options.pid ?? process.pid;
  const controller = new AbortController();
  const hooks = new Set<ForcedExitHook>();

  const forcedExit = (signal: InterruptSignal) => {
    const lines = [`error: ${signal} again: exiting now, without cleaning up`];
    for (const hook of hooks) {
      try {
        lines.push(...(hook() ?? []));
      } catch {
        // A hook that fails must not keep the user from getting out.
      }
    }
    if (options.stateDir) lines.push(...leftBehindLines(ownedClaimsSync(options.stateDir, pid)));
    write(`${lines.join("\n")}\n`);
    exit(ExitCode.interrupted);
  };

  const handlers = new Map<InterruptSignal, () => void>();
  for (const signal of INTERRUPT_SIGNALS) {
    const handler = () => {
      if (controller.signal.aborted) {
        forcedExit(signal);
        return;
      }
      write(
        `${signal === "SIGINT" ? "interrupted" : `got ${signal}`}: stopping; interrupt again to exit at once\n`,
      );
      controller.abort(new InterruptError(signal));
    };
    handlers.set(signal, handler);
    target.on(signal, handler);
  }

  return {
    signal: controller.signal,
    onForcedExit(hook) {
      hooks.add(hook);
      return () => hooks.delete(hook);
    },
    dispose() {
      for (const [signal, handler] of handlers) target.off(signal, handler);
      handlers.clear();
    },
  };
}
