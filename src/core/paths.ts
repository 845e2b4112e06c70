import { statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";

/** The environment a path is derived from; tests pass their own so real state is never touched. */
export type Env = Readonly<Record<string, string | undefined>>;

function home(env: Env): string {
  return env.HOME || homedir();
}

/**
 * Go's os.UserConfigDir, which upstream Crabbox uses: on macOS always
 * ~/Library/Application Support; elsewhere an absolute $XDG_CONFIG_HOME, else ~/.config.
 */
export function userConfigDir(env: Env = process.env, platform: string = process.platform): string {
  if (platform === "darwin") return join(home(env), "Library", "Application Support");
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg?.startsWith("/")) return xdg;
  return join(home(env), ".config");
}

/** The user (trusted) config file. */
export function userConfigFile(env: Env = process.env, platform: string = process.platform): string {
  return join(userConfigDir(env, platform), "crabbox", "config.yaml");
}

/**
 * Local state: `$XDG_STATE_HOME/crabbox`, else `<user config dir>/crabbox/state` — not
 * ~/.local/state, so a Go crabbox and this one share claims and locks.
 */
export function stateDir(env: Env = process.env, platform: string = process.platform): string {
  const xdg = env.XDG_STATE_HOME;
  if (xdg) return join(resolve(xdg), "crabbox");
  return join(userConfigDir(env, platform), "crabbox", "state");
}

export function claimsDir(state: string): string {
  return join(state, "claims");
}

export function claimLocksDir(state: string): string {
  return join(state, "claim-locks");
}

export function claimFile(state: string, leaseId: string): string {
  return join(claimsDir(state), `${leaseId}.json`);
}

/** Guards read-modify-write of one claim file. */
export function claimLockFile(state: string, leaseId: string): string {
  return join(claimLocksDir(state), `${leaseId}.json.lock`);
}

/** Serialises run --id, pause, resume and stop on one lease (upstream §3.6 path). */
export function operationLockFile(state: string, leaseId: string, provider: string): string {
  return join(claimLocksDir(state), `${leaseId}.${provider}-operation.lock`);
}

/** State-wide lock held while a slug is chosen and its claim written, so two creates never share a slug. */
export function slugLockFile(state: string): string {
  return join(claimLocksDir(state), "slug-allocation.lock");
}

/**
 * The repository root: the nearest directory at or above `cwd` holding `.git` (a directory, or
 * a file for worktrees and submodules), else `cwd` itself, as upstream does outside git. Walking
 * up instead of running git keeps config loading free of a child process.
 */
export function findRepoRoot(cwd: string): string {
  const start = resolve(cwd);
  let dir = start;
  for (;;) {
    if (statSync(join(dir, ".git"), { throwIfNoEntry: false })) return dir;
    const parent = dirname(dir);
    if (parent === dir) return start;
    dir = parent;
  }
}

/** Whether `path` is `dir` or inside it. */
export function isInside(path: string, dir: string): boolean {
  const p = resolve(path);
  const d = resolve(dir);
  return p === d || p.startsWith(d.endsWith("/") ? d : `${d}/`);
}
