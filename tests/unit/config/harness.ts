import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type ResolvedConfig, resolveConfig } from "../../../src/config/resolve.ts";
import { CrabboxError } from "../../../src/core/errors.ts";

/** A throwaway home + git repo for config tests; nothing touches the developer's real files. */
export interface Sandbox {
  root: string;
  home: string;
  repo: string;
  env: Record<string, string>;
  userFile: string;
  write(path: string, content: unknown): string;
  resolve(options?: {
    env?: Record<string, string>;
    flags?: Record<string, unknown>;
    cwd?: string;
  }): Promise<ResolvedConfig>;
  warnings: string[];
  cleanup(): void;
}

export function sandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), "crabbox-config-"));
  const home = join(root, "home");
  const repo = join(root, "repo");
  mkdirSync(join(repo, ".git"), { recursive: true });
  mkdirSync(join(repo, "sub", "dir"), { recursive: true });
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, "state") };
  const warnings: string[] = [];
  return {
    root,
    home,
    repo,
    env,
    userFile: join(home, ".config", "crabbox", "config.yaml"),
    warnings,
    write(path, content) {
      mkdirSync(dirname(path), { recursive: true });
      // JSON is YAML, so objects are written as JSON; strings verbatim.
      writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
      return path;
    },
    resolve(options = {}) {
      return resolveConfig({
        cwd: options.cwd ?? join(repo, "sub", "dir"),
        env: { ...env, ...options.env },
        flags: options.flags,
        platform: "linux",
        onWarning: (message) => warnings.push(message),
      });
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export async function failure(promise: Promise<unknown> | (() => unknown)): Promise<CrabboxError> {
  try {
    await (typeof promise === "function" ? promise() : promise);
  } catch (error) {
    if (error instanceof CrabboxError) return error;
    throw error;
  }
  throw new Error("expected a CrabboxError");
}
