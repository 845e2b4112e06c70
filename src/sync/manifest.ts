import { lstatSync, readFileSync, type Stats } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../core/crypto.ts";
import { CrabboxError, ExitCode } from "../core/errors.ts";
import { commit, version } from "../core/version.ts";
import { relativePathProblem } from "../protocol/paths.ts";
import {
  BUILTIN_EXCLUDES,
  CRABBOXIGNORE,
  compileExcludes,
  type ExcludeReason,
  parseCrabboxIgnore,
} from "./excludes.ts";
import { findRepoRoot, runGit, safeDirectoryHint } from "./git.ts";
import { comparePathBytes } from "./paths.ts";

/**
 * The local side of a sync: which files of the checkout travel, read from git's index plus the
 * untracked-but-not-ignored files, filtered by crabbox's excludes, and stat'ed (lstat: a symlink
 * stays a symlink). Content hashing is a separate step (hash.ts) so a stat-keyed cache can skip it.
 */

export interface LocalFile {
  /** Relative to the repository root, `/`-separated. */
  path: string;
  type: "file" | "symlink";
  /** `st_mode & 0o777` for files; 0o777 for symlinks. */
  mode: number;
  /** lstat size (for a symlink, the length of its target). */
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
  /** In git's index (as opposed to untracked-but-not-ignored). */
  tracked: boolean;
}

export interface ExclusionSummary {
  /** Paths left out, per reason. */
  counts: Partial<Record<ExcludeReason, number>>;
  /** Up to `EXAMPLE_LIMIT` paths per reason, for `sync-plan`. */
  examples: Partial<Record<ExcludeReason, string[]>>;
}

export interface LocalManifest {
  /** Absolute repository root (git's `--show-toplevel`). */
  root: string;
  /** Sorted by path bytes. */
  files: LocalFile[];
  /** Sum of `size` over `files`. */
  bytes: number;
  excluded: ExclusionSummary;
  /** Submodule paths (gitlinks), never synced. */
  submodules: string[];
  /** Tracked files kept despite an ambiguous built-in exclude (`dist`, `target`, …). */
  protectedTracked: { path: string; pattern: string }[];
  /** Human warning lines (without a `warning:` prefix) the caller prints on stderr. */
  warnings: string[];
  /** A new listing memo to save for the next run; undefined when the given one was reused. */
  memo?: unknown;
}

export interface ManifestOptions {
  /** Any directory inside the checkout. */
  cwd: string;
  /** `sync.exclude` from the resolved config. */
  excludes?: readonly string[];
  /** `sync.include` from the resolved config. */
  includes?: readonly string[];
  env?: Readonly<Record<string, string | undefined>>;
  /** The repository root when the caller already asked git for it (saves a second `git rev-parse`). */
  root?: string;
  /** git's listing, started earlier with `startGitListing` (so other work could overlap it). */
  listing?: Promise<GitListing>;
  /** lstat results taken while git listed (see snapshot.ts `statAhead`), by path. */
  prestat?: (path: string) => Stats | undefined;
  /** What the last run made of its listing: reused when git's output and the rules are the same. */
  memo?: unknown;
}

export const EXAMPLE_LIMIT = 5;
const GITLINK_MODE = "160000";
const REGULAR_MODES = new Set(["100644", "100755"]);
const utf8 = new TextDecoder("utf-8", { fatal: true });

interface IndexInfo {
  /** git mode per stage (0 normally; 1–3 during a conflicted merge). */
  modes: string[];
  skipWorktree: boolean;
}

/** git's output, as it came: parsed only when the listing memo cannot answer for it. */
export interface GitListing {
  stdout: Buffer;
  /** sha256 of `stdout`: the same listing gives the same candidates under the same rules. */
  digest: string;
}

interface ParsedListing {
  /** Every listed path, tracked and untracked; names that are not UTF-8 as `path: null`. */
  paths: { path: string | null; raw: string }[];
  index: Map<string, IndexInfo>;
}

/**
 * Starts git listing the checkout. Most of a manifest's time is git walking the tree for untracked
 * files, in its own process: the caller can do other work meanwhile, then pass the promise to
 * `readLocalManifest`. (Its rejection is the manifest's error, reported when it is awaited.)
 */
export function startGitListing(
  root: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<GitListing> {
  const listing = listGitPaths(root, env);
  listing.catch(() => {});
  return listing;
}

/**
 * One git call gives both lists: `--stage -t` makes tracked records `<tag> <mode> <object>
 * <stage>\t<path>` and untracked ones `? <path>`, all NUL-terminated, so nothing is ambiguous.
 */
async function listGitPaths(
  root: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<GitListing> {
  const result = await runGit(
    ["ls-files", "--cached", "--others", "--exclude-standard", "--stage", "-t", "-z"],
    root,
    env,
  );
  if (result.code !== 0) {
    throw new CrabboxError(`git ls-files failed: ${result.stderr || `exit ${result.code}`}`, {
      exitCode: ExitCode.sync,
      // The root may have been found on disk without git (findRepoRoot): git's ownership check
      // then speaks here first.
      hint: safeDirectoryHint(result.stderr),
    });
  }
  return { stdout: result.stdout, digest: sha256Hex(result.stdout) };
}

function parseListing(stdout: Buffer): ParsedListing {
  const paths: ParsedListing["paths"] = [];
  const index = new Map<string, IndexInfo>();
  for (const record of splitRecords(stdout)) {
    if (record.text === "") continue;
    if (record.text.startsWith("? ")) {
      paths.push(
        record.bad ? { path: null, raw: record.text.slice(2) } : { path: record.text.slice(2), raw: "" },
      );
      continue;
    }
    const tab = record.text.indexOf("\t");
    if (tab === -1) continue;
    const [tag, mode, , stage] = record.text.slice(0, tab).split(" ");
    const name = record.text.slice(tab + 1);
    if (record.bad || mode === undefined) {
      paths.push({ path: null, raw: name });
      continue;
    }
    paths.push({ path: name, raw: "" });
    let info = index.get(name);
    if (!info) {
      info = { modes: [], skipWorktree: false };
      index.set(name, info);
    }
    info.modes[Number(stage ?? 0)] = mode;
    if (tag === "S") info.skipWorktree = true;
  }
  return { paths, index };
}

/**
 * NUL-separated records as strings. The whole output is decoded at once (the common, fast case);
 * only if it is not valid UTF-8 is it decoded record by record, marking the names that are not —
 * they cannot be represented in the JSON protocol, so they are reported, not synced.
 */
function splitRecords(out: Buffer): { text: string; bad: boolean }[] {
  try {
    return utf8
      .decode(out)
      .split("\0")
      .map((text) => ({ text, bad: false }));
  } catch {
    const records: { text: string; bad: boolean }[] = [];
    let start = 0;
    while (start < out.length) {
      let end = out.indexOf(0, start);
      if (end === -1) end = out.length;
      const bytes = out.subarray(start, end);
      start = end + 1;
      try {
        records.push({ text: utf8.decode(bytes), bad: false });
      } catch {
        records.push({ text: bytes.toString("latin1"), bad: true });
      }
    }
    return records;
  }
}

/** Empty, absolute, `.`/`..`/empty segments, over-long: what the runner would refuse (protocol paths). */
function isUnsafeRelativePath(path: string): boolean {
  return relativePathProblem(path) !== undefined;
}

function readCrabboxIgnore(root: string): string[] {
  try {
    return parseCrabboxIgnore(readFileSync(join(root, CRABBOXIGNORE), "utf8"));
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return [];
    throw new CrabboxError(`cannot read ${CRABBOXIGNORE}: ${(error as Error).message}`, {
      exitCode: ExitCode.sync,
    });
  }
}

function checkIndexEntry(path: string, info: IndexInfo): void {
  let gitlinkStage: number | undefined;
  let file: [number, string] | undefined;
  info.modes.forEach((mode, stage) => {
    if (mode === GITLINK_MODE) gitlinkStage ??= stage;
    else file ??= [stage, mode];
  });
  if (gitlinkStage !== undefined && file !== undefined) {
    throw new CrabboxError(
      `tracked path "${path}" has mixed file mode ${file[1]} at stage ${file[0]} and gitlink mode ${GITLINK_MODE} at stage ${gitlinkStage} in sync manifest scope`,
      { exitCode: ExitCode.sync, hint: "resolve the merge conflict on that path, then run again" },
    );
  }
}

/**
 * The rules' verdict on one git listing: the paths that may sync (before anything is stat'ed), with
 * what the rules left out. A pure function of git's output and the rules, so a rerun whose listing
 * and rules are unchanged reuses it (`ListingMemo`) instead of deciding 10⁵ paths again.
 */
interface Candidates {
  paths: string[];
  /** Per path: bit 1 tracked, bit 2 hidden by skip-worktree. */
  flags: ArrayLike<number>;
  /** Tracked paths shielded from an ambiguous built-in exclude: index into `paths` → pattern. */
  shielded: [number, string][];
  excluded: ExclusionSummary;
  submodules: string[];
}

const TRACKED = 1;
const SKIP_WORKTREE = 2;

/** `Candidates` as saved with the hash cache, under the key of the listing and rules it came from. */
interface ListingMemo extends Candidates {
  key: string;
}

/** The memo when it is well formed and made from this very listing under these very rules. */
function memoFor(memo: unknown, key: string): Candidates | undefined {
  const m = memo as Partial<ListingMemo> | null;
  if (
    m?.key !== key ||
    !Array.isArray(m.paths) ||
    !(Array.isArray(m.flags) || m.flags instanceof Uint8Array) ||
    m.flags.length !== m.paths.length ||
    !Array.isArray(m.shielded) ||
    !Array.isArray(m.submodules) ||
    typeof m.excluded?.counts !== "object" ||
    typeof m.excluded.examples !== "object"
  ) {
    return undefined;
  }
  // The summary is added to by the stat stage: never let that reach the memo object.
  return { ...(m as ListingMemo), excluded: JSON.parse(JSON.stringify(m.excluded)) as ExclusionSummary };
}

/** Bumped when what a memo holds, or how candidates are decided, changes within one build. */
const MEMO_VERSION = 1;

/** What a listing's candidates depend on besides git's output: the rules and this crabbox. */
function rulesKey(digest: string, rules: Parameters<typeof compileExcludes>[0]): string {
  return sha256Hex(JSON.stringify([MEMO_VERSION, version, commit, digest, BUILTIN_EXCLUDES, rules]));
}

function candidatesOf(listing: ParsedListing, matcher: ReturnType<typeof compileExcludes>): Candidates {
  const flags: number[] = [];
  const out: Candidates = {
    paths: [],
    flags,
    shielded: [],
    excluded: { counts: {}, examples: {} },
    submodules: [],
  };
  const exclude = (reason: ExcludeReason, path: string) => excludeInto(out.excluded, reason, path);
  const seen = new Set<string>();
  for (const { path, raw } of listing.paths) {
    if (path === null) {
      exclude("unsafe", raw);
      continue;
    }
    if (seen.has(path)) continue;
    seen.add(path);
    const info = listing.index.get(path);
    if (info) {
      checkIndexEntry(path, info);
      if (info.modes.includes(GITLINK_MODE)) {
        out.submodules.push(path);
        exclude("submodule", path);
        continue;
      }
    }
    if (path.endsWith("/") && !isUnsafeRelativePath(path.slice(0, -1))) {
      // git lists an untracked nested repository as `dir/` and never looks inside it.
      exclude("nested-repo", path.slice(0, -1));
      continue;
    }
    if (isUnsafeRelativePath(path)) {
      exclude("unsafe", path);
      continue;
    }
    const trackedRegular =
      info?.modes.every((mode) => mode === undefined || REGULAR_MODES.has(mode)) === true;
    const decision = matcher.decide(path, trackedRegular);
    if (decision.excluded) {
      exclude(decision.reason, path);
      continue;
    }
    if (decision.protectedFrom !== undefined) out.shielded.push([out.paths.length, decision.protectedFrom]);
    out.paths.push(path);
    flags.push((info ? TRACKED : 0) | (info?.skipWorktree ? SKIP_WORKTREE : 0));
  }
  return inPathOrder(out);
}

/** The candidates sorted by path bytes, so the files stat'ed from them come out in manifest order. */
function inPathOrder(candidates: Candidates): Candidates {
  const { paths, flags } = candidates;
  const order = paths
    .map((_, i) => i)
    .sort((a, b) => comparePathBytes(paths[a] as string, paths[b] as string));
  const position = new Array<number>(order.length);
  order.forEach((from, to) => {
    position[from] = to;
  });
  return {
    ...candidates,
    paths: order.map((i) => paths[i] as string),
    flags: order.map((i) => flags[i] as number),
    shielded: candidates.shielded.map(([i, pattern]) => [position[i] as number, pattern]),
  };
}

function sortedByPath(files: readonly LocalFile[]): boolean {
  for (let i = 1; i < files.length; i++) {
    if (comparePathBytes((files[i - 1] as LocalFile).path, (files[i] as LocalFile).path) > 0) return false;
  }
  return true;
}

function excludeInto(excluded: ExclusionSummary, reason: ExcludeReason, path: string): void {
  excluded.counts[reason] = (excluded.counts[reason] ?? 0) + 1;
  const examples = excluded.examples[reason] ?? [];
  if (examples.length < EXAMPLE_LIMIT) examples.push(path);
  excluded.examples[reason] = examples;
}

/**
 * Reads the sync candidate: `git ls-files --cached --others --exclude-standard` at the repository
 * root, minus submodules, unsafe names, excluded or not-included paths, files deleted from the work
 * tree, directories and special files. Fails (exit 6) outside a git checkout, on a path whose index
 * stages mix a file and a submodule, and on a tracked file hidden by sparse checkout/skip-worktree
 * that is missing on disk (syncing would silently delete it remotely).
 */
export async function readLocalManifest(options: ManifestOptions): Promise<LocalManifest> {
  const env = options.env ?? process.env;
  const root = options.root ?? (await findRepoRoot(options.cwd, env));
  const listing = await (options.listing ?? listGitPaths(root, env));
  const rules = {
    configExcludes: options.excludes ?? [],
    crabboxIgnore: readCrabboxIgnore(root),
    includes: options.includes ?? [],
  };
  const key = rulesKey(listing.digest, rules);
  let candidates = memoFor(options.memo, key);
  let memo: ListingMemo | undefined;
  if (!candidates) {
    candidates = candidatesOf(parseListing(listing.stdout), compileExcludes(rules));
    memo = {
      key,
      ...candidates,
      submodules: [...candidates.submodules],
      excluded: JSON.parse(JSON.stringify(candidates.excluded)) as ExclusionSummary,
    };
  }

  const { excluded } = candidates;
  const submodules = [...candidates.submodules];
  const shielded = new Map(candidates.shielded);
  const files: LocalFile[] = [];
  const protectedTracked: LocalManifest["protectedTracked"] = [];
  for (let i = 0; i < candidates.paths.length; i++) {
    const path = candidates.paths[i] as string;
    const flags = candidates.flags[i] as number;
    let stat: Stats | undefined;
    try {
      stat = options.prestat?.(path) ?? lstatSync(`${root}/${path}`);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") {
        throw new CrabboxError(`stat sync path ${path}: ${(error as Error).message}`, {
          exitCode: ExitCode.sync,
        });
      }
      if (flags & SKIP_WORKTREE) {
        throw new CrabboxError(
          `tracked path "${path}" is hidden by sparse checkout or skip-worktree state but remains in sync manifest scope`,
          {
            exitCode: ExitCode.sync,
            hint: "exclude it with .crabboxignore or sync.exclude, or check it out (git sparse-checkout disable)",
          },
        );
      }
      excludeInto(excluded, "missing", path);
      continue;
    }
    if (stat === undefined) continue;
    if (stat.isDirectory()) {
      excludeInto(excluded, "directory", path);
      continue;
    }
    const symlink = stat.isSymbolicLink();
    if (!symlink && !stat.isFile()) {
      excludeInto(excluded, "special", path);
      continue;
    }
    const pattern = shielded.get(i);
    if (pattern !== undefined) protectedTracked.push({ path, pattern });
    files.push({
      path,
      type: symlink ? "symlink" : "file",
      mode: symlink ? 0o777 : stat.mode & 0o777,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      ctimeMs: stat.ctimeMs,
      ino: stat.ino,
      dev: stat.dev,
      tracked: (flags & TRACKED) !== 0,
    });
  }

  // Candidates are kept in path order; a memo from an older file might not be.
  if (!sortedByPath(files)) files.sort((a, b) => comparePathBytes(a.path, b.path));
  submodules.sort(comparePathBytes);
  protectedTracked.sort((a, b) => comparePathBytes(a.path, b.path));
  const warnings: string[] = [];
  if (submodules.length > 0) {
    warnings.push(`skipping git submodules (not synced): ${submodules.join(", ")}`);
  }
  if (protectedTracked.length > 0) {
    const shown = protectedTracked.slice(0, EXAMPLE_LIMIT).map((p) => `${p.path} (${p.pattern})`);
    const more = protectedTracked.length - shown.length;
    warnings.push(
      `protected ${protectedTracked.length} tracked files from built-in artifact excludes: ${shown.join(", ")}${more > 0 ? ` (+${more} more)` : ""}`,
    );
  }
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  return { root, files, bytes, excluded, submodules, protectedTracked, warnings, memo };
}
