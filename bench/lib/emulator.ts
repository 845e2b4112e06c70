import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RequestRecord } from "../../src/emulator/log.ts";
import {
  type EmulatorOptions,
  mintToken,
  RUNNER_IMAGE,
  startEmulator,
  type TestEmulator,
} from "../../tests/support/emulator.ts";
import { measureProcess, type ProcessSample, type SpawnOptions } from "./process.ts";
import type { BenchContext } from "./types.ts";

/**
 * A benchmark's world: the compiled `crabbox emulator`, a throwaway HOME/XDG for the CLI (the
 * developer's real state is never touched), and a git checkout to run from. Torn down by the
 * harness when the benchmark ends, failed or not.
 */

export interface Lease {
  slug: string;
  leaseId: string;
  microvmId: string;
  /** The MicroVM's data-plane host (the proxy routes on it). */
  endpoint: string;
}

export interface BenchWorld {
  emu: TestEmulator;
  env: Record<string, string>;
  repo: string;
  /** Runs `dist/crabbox` in the checkout with the world's environment. */
  crabbox(args: string[], options?: SpawnOptions): Promise<ProcessSample>;
  /** `crabbox warmup --slug <slug>`, then its identity from `status --json`. */
  warmup(slug: string): Promise<Lease>;
  /** A port-8080 data-plane token, minted through the real SDK. */
  token(microvmId: string): Promise<string>;
  /** How many log records exist now; pass it to `requestsSince` after the measured step. */
  mark(): number;
  /**
   * The records logged after `mark`. A streamed response is logged when its body ends, which can
   * be just after the client exited: the log is read until it stops growing.
   */
  requestsSince(mark: number): Promise<RequestRecord[]>;
}

export async function benchWorld(ctx: BenchContext, options: EmulatorOptions = {}): Promise<BenchWorld> {
  const emu = await startEmulator({ binary: "dist", ...options });
  ctx.onCleanup(() => emu.stop());
  const root = ctx.tmpdir("world");
  const home = join(root, "home");
  const repo = join(root, "repo");
  mkdirSync(home, { recursive: true });
  mkdirSync(repo, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_STATE_HOME: join(home, "state"),
    XDG_RUNTIME_DIR: join(home, "run"),
    NO_COLOR: "1",
    GIT_CONFIG_NOSYSTEM: "1",
    CRABBOX_PROVIDER: "aws-lambda-microvm",
    CRABBOX_AWS_REGION: "us-east-1",
    CRABBOX_AWS_LAMBDA_MICROVM_IMAGE: RUNNER_IMAGE(),
    CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT: emu.url,
  };
  mkdirSync(env.XDG_RUNTIME_DIR as string, { recursive: true, mode: 0o700 });
  const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, env, stdio: "ignore" });
  git("init", "-q");
  writeFileSync(join(repo, "README.md"), "bench checkout\n");
  git("add", "-A");
  git("-c", "user.email=bench@example.com", "-c", "user.name=bench", "commit", "-qm", "bench");

  const crabbox: BenchWorld["crabbox"] = (args, spawn = {}) =>
    measureProcess([ctx.binary, ...args], { cwd: repo, ...spawn, env: { ...env, ...spawn.env } });

  const started: string[] = [];
  ctx.onCleanup(async () => {
    for (const slug of started) await crabbox(["stop", slug], { allowFailure: true });
  });

  return {
    emu,
    env,
    repo,
    crabbox,
    async warmup(slug) {
      await crabbox(["warmup", "--slug", slug]);
      started.push(slug);
      const status = await crabbox(["status", "--id", slug, "--json"], { capture: true });
      const parsed = JSON.parse(status.stdout) as { id: string; serverId: string; host: string };
      return { slug, leaseId: parsed.id, microvmId: parsed.serverId, endpoint: parsed.host };
    },
    token: (microvmId) => mintToken(emu, microvmId),
    mark: () => emu.records().length,
    async requestsSince(mark) {
      let seen = -1;
      for (let i = 0; i < 20 && emu.records().length !== seen; i++) {
        seen = emu.records().length;
        await Bun.sleep(50);
      }
      return emu.records().slice(mark);
    },
  };
}
