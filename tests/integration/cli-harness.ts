import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { type Claim, serializeClaim } from "../../src/core/claims.ts";
import { claimFile } from "../../src/core/paths.ts";

/**
 * Drives the compiled `dist/crabbox` in a throwaway home: HOME, XDG_CONFIG_HOME and XDG_STATE_HOME
 * point into a temp dir, so the developer's real config and leases are never read or touched.
 */

export const repoRoot = resolve(import.meta.dir, "..", "..");
export const binary = join(repoRoot, "dist", "crabbox");

export function requireBinary(): void {
  if (!existsSync(binary)) {
    throw new Error(
      `${binary} is missing: build it with node_modules/.bin/bun scripts/build.ts (npm test does)`,
    );
  }
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Home {
  root: string;
  /** A git repository (a `.git` directory) to run commands in. */
  repo: string;
  env: Record<string, string>;
  userFile: string;
  stateDir: string;
  write(path: string, content: string): string;
  claim(fields: Partial<Claim> & { leaseID: string; slug: string }): Claim;
  run(
    args: string[],
    options?: { env?: Record<string, string>; cwd?: string; command?: string[] },
  ): Promise<Result>;
  cleanup(): void;
}

/** The environment a child gets: PATH and the sandbox dirs only, so ambient AWS_* or CRABBOX_* never leak in. */
function baseEnv(root: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: join(root, "home"),
    XDG_CONFIG_HOME: join(root, "home", ".config"),
    XDG_STATE_HOME: join(root, "home", "state"),
    NO_COLOR: "1",
  };
}

export function run(
  command: string[],
  options: { env: Record<string, string>; cwd: string },
): Promise<Result> {
  return new Promise((resolvePromise, reject) => {
    const [file, ...args] = command as [string, ...string[]];
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code: code ?? -1, stdout, stderr }));
  });
}

export function home(): Home {
  const root = mkdtempSync(join(tmpdir(), "crabbox-cli-"));
  const repo = join(root, "repo");
  mkdirSync(join(repo, ".git"), { recursive: true });
  const env = baseEnv(root);
  const stateDir = join(env.XDG_STATE_HOME as string, "crabbox");
  const write = (path: string, content: string) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    return path;
  };
  return {
    root,
    repo,
    env,
    userFile: join(env.XDG_CONFIG_HOME as string, "crabbox", "config.yaml"),
    stateDir,
    write,
    claim(fields) {
      const claim: Claim = {
        revision: "0".repeat(32),
        provider: "aws-lambda-microvm",
        cloudID: `mvm-${fields.slug}`,
        providerScope: "eu-west-1",
        repoRoot: repo,
        claimedAt: "2026-06-01T12:00:00Z",
        lastUsedAt: "2026-06-01T12:00:00Z",
        ...fields,
      };
      write(claimFile(stateDir, claim.leaseID), serializeClaim(claim));
      return claim;
    },
    run(args, options = {}) {
      return run([...(options.command ?? [binary]), ...args], {
        env: { ...env, ...options.env },
        cwd: options.cwd ?? repo,
      });
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}
