import { spawn } from "node:child_process";
import { readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { CrabboxError, ExitCode } from "../core/errors.ts";

/**
 * git as crabbox runs it: a minimal environment (so a user's GIT_* tweaks or pager settings cannot
 * change what gets synced), raw bytes out, and failures as exit-6 sync errors with git's own words.
 */

const GIT_ENV_NAMES = new Set([
  "PATH",
  "HOME",
  "USER",
  "LOGNAME",
  "SHELL",
  "TMPDIR",
  "TMP",
  "TEMP",
  "LANG",
  "TZ",
  "XDG_CONFIG_HOME",
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_CEILING_DIRECTORIES",
  "GIT_DISCOVERY_ACROSS_FILESYSTEM",
  "SYSTEMROOT",
  "COMSPEC",
  "PATHEXT",
  "USERPROFILE",
  "APPDATA",
  "LOCALAPPDATA",
]);

export function gitEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (GIT_ENV_NAMES.has(name) || name.startsWith("LC_")) out[name] = value;
  }
  // Never block on a credential or pager prompt: crabbox only reads the index.
  out.GIT_TERMINAL_PROMPT = "0";
  out.GIT_PAGER = "cat";
  return out;
}

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

interface BunSpawn {
  spawn(
    argv: string[],
    options: { cwd: string; env: Record<string, string>; stdin: "ignore"; stdout: "pipe"; stderr: "pipe" },
  ): { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array>; exited: Promise<number> };
}

/**
 * Under Bun, its own spawn: node:child_process's stdout stream in Bun allocates per chunk, which
 * made collecting `git ls-files` of a 10,000-file checkout cost more than git itself.
 */
async function runGitBun(
  bun: BunSpawn,
  args: readonly string[],
  cwd: string,
  env: Record<string, string>,
): Promise<GitResult> {
  let child: ReturnType<BunSpawn["spawn"]>;
  try {
    child = bun.spawn(["git", ...args], { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    throw gitMissing(error);
  }
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).arrayBuffer(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout: Buffer.from(stdout), stderr: stderr.trim() };
}

/** Runs git and collects its output; rejects only when git cannot be started at all. */
export function runGit(
  args: readonly string[],
  cwd: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<GitResult> {
  const bun = (globalThis as { Bun?: Partial<BunSpawn> }).Bun;
  if (typeof bun?.spawn === "function") return runGitBun(bun as BunSpawn, args, cwd, gitEnv(env));
  return new Promise((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn("git", [...args], { cwd, env: gitEnv(env), stdio: ["ignore", "pipe", "pipe"] });
    } catch (error) {
      reject(gitMissing(error));
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => err.push(chunk));
    child.once("error", (error) => reject(gitMissing(error)));
    child.once("close", (code) => {
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString("utf8").trim(),
      });
    });
  });
}

function gitMissing(error: unknown): CrabboxError {
  const code = (error as { code?: string } | null)?.code;
  if (code === "ENOENT") {
    return new CrabboxError("git not found: crabbox reads the file list from git", {
      exitCode: ExitCode.sync,
      hint: "install git, or run with --no-sync",
      cause: error,
    });
  }
  return new CrabboxError(`could not run git: ${(error as Error).message ?? String(error)}`, {
    exitCode: ExitCode.sync,
    cause: error,
  });
}

/** Variables that change where git looks for the repository: with any of them set, git decides. */
const DISCOVERY_ENV = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_CEILING_DIRECTORIES",
  "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/**
 * The work-tree top as git finds it in the ordinary case, without starting git: the nearest
 * directory (of the real path) holding a `.git` directory with a `HEAD`, or a `.git` file that
 * points elsewhere (`gitdir:`, worktrees and submodules), on the same filesystem as `cwd`.
 * Undefined whenever git's answer could differ (a discovery variable is set, a `.git` that is not a
 * repository, a mount boundary on the way): then git is asked. Every run starts here, and a git
 * process costs ~10 ms.
 */
export function workTreeOnDisk(
  cwd: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string | undefined {
  if (DISCOVERY_ENV.some((name) => env[name] !== undefined)) return undefined;
  let dir: string;
  let device: number;
  try {
    dir = realpathSync(cwd);
    device = statSync(dir).dev;
  } catch {
    return undefined;
  }
  for (;;) {
    const dotGit = join(dir, ".git");
    const info = statSync(dotGit, { throwIfNoEntry: false });
    if (info?.isDirectory())
      return statSync(join(dotGit, "HEAD"), { throwIfNoEntry: false })?.isFile() ? dir : undefined;
    if (info?.isFile()) {
      try {
        return readFileSync(dotGit, "utf8").startsWith("gitdir:") ? dir : undefined;
      } catch {
        return undefined;
      }
    }
    if (info) return undefined;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    if (statSync(parent, { throwIfNoEntry: false })?.dev !== device) return undefined;
    dir = parent;
  }
}

/** The way out when git refuses a checkout another user owns (its `safe.directory` check). */
export function safeDirectoryHint(stderr: string): string | undefined {
  return stderr.includes("safe.directory")
    ? "mark the checkout as safe: git config --global --add safe.directory <path>"
    : undefined;
}

/** The top of the work tree containing `cwd`; exit 6 with a hint when there is none. */
export async function findRepoRoot(
  cwd: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<string> {
  const onDisk = workTreeOnDisk(cwd, env);
  if (onDisk !== undefined) return onDisk;
  const result = await runGit(["rev-parse", "--show-toplevel"], cwd, env);
  const root = result.stdout.toString("utf8").replace(/\n$/, "");
  if (result.code === 0 && root !== "") return root;
  if (/not a git repository/i.test(result.stderr)) {
    throw new CrabboxError(`not a git repository: ${cwd}`, {
      exitCode: ExitCode.sync,
      hint: "crabbox syncs a git checkout: run it inside one (git init && git add -A), or pass --no-sync",
    });
  }
  throw new CrabboxError(
    `git could not find the repository root: ${result.stderr || `exit ${result.code}`}`,
    {
      exitCode: ExitCode.sync,
      hint:
        safeDirectoryHint(result.stderr) ?? "run `git status` in this directory to see what git objects to",
    },
  );
}
