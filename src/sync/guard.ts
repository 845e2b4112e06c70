import { humanBytes } from "../core/duration.ts";
import { CrabboxError, ExitCode } from "../core/errors.ts";
import { topDir } from "./paths.ts";

/**
 * The preflight size guard: a checkout that suddenly holds 200,000 files or 30 GiB almost always
 * means build output escaped .gitignore, and uploading it at ~4 MB/s would take hours. Warn early,
 * fail (exit 6) at the hard limits unless the user says the sync is intentional.
 */

export interface SyncLimits {
  warnFiles: number;
  warnBytes: number;
  failFiles: number;
  failBytes: number;
  /** `--force-sync-large`, `sync.allowLarge` or CRABBOX_SYNC_ALLOW_LARGE=1. */
  allowLarge: boolean;
}

export const DEFAULT_SYNC_LIMITS: SyncLimits = {
  warnFiles: 50_000,
  warnBytes: 5 * 1024 ** 3,
  failFiles: 150_000,
  failBytes: 20 * 1024 ** 3,
  allowLarge: false,
};

export interface DirSize {
  dir: string;
  files: number;
  bytes: number;
}

export interface GuardReport {
  files: number;
  bytes: number;
  /** `sync candidate: N files, 1.2 MiB` — always printed. */
  candidateLine: string;
  /** Warning lines (print with a `warning:` prefix) when a warning threshold was reached. */
  warnings: string[];
  /** Plain lines that follow the warnings: `sync top dirs: …` and `sync hint: …`. */
  notes: string[];
  topDirs: DirSize[];
}

const TOP_DIRS = 5;
const FIX_HINT =
  "add generated paths to .crabboxignore or sync.exclude, or use --force-sync-large when intentional";

/** Sizes per first path segment (`.` for files at the root), largest bytes first, ties by name. */
export function topDirs(files: readonly { path: string; size: number }[], limit = TOP_DIRS): DirSize[] {
  const byDir = new Map<string, DirSize>();
  for (const file of files) {
    const dir = topDir(file.path);
    let entry = byDir.get(dir);
    if (!entry) {
      entry = { dir, files: 0, bytes: 0 };
      byDir.set(dir, entry);
    }
    entry.files++;
    entry.bytes += file.size;
  }
  return [...byDir.values()]
    .sort((a, b) => b.bytes - a.bytes || b.files - a.files || (a.dir < b.dir ? -1 : a.dir > b.dir ? 1 : 0))
    .slice(0, limit);
}

export function formatTopDirs(dirs: readonly DirSize[]): string {
  return dirs.map((d) => `${d.dir}:${humanBytes(d.bytes)}/${d.files} files`).join(", ");
}

/**
 * Checks the full candidate (never just the changed files: the limits are about the workspace).
 * Returns the lines to print; throws exit 6 `sync candidate too large: …` with the top directories
 * in the hint when a hard limit is reached and large syncs are not allowed.
 */
export function checkSyncSize(
  files: readonly { path: string; size: number }[],
  limits: SyncLimits,
): GuardReport {
  const count = files.length;
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const report: GuardReport = {
    files: count,
    bytes,
    candidateLine: `sync candidate: ${count} files, ${humanBytes(bytes)}`,
    warnings: [],
    notes: [],
    topDirs: [],
  };
  const overFiles = limits.failFiles > 0 && count >= limits.failFiles;
  const overBytes = limits.failBytes > 0 && bytes >= limits.failBytes;
  if (!limits.allowLarge && (overFiles || overBytes)) {
    const dirs = topDirs(files);
    const reason = overFiles
      ? `${count} files >= limit ${limits.failFiles}`
      : `${humanBytes(bytes)} >= limit ${humanBytes(limits.failBytes)}`;
    throw new CrabboxError(
      `sync candidate too large: ${reason}; use --force-sync-large or CRABBOX_SYNC_ALLOW_LARGE=1`,
      { exitCode: ExitCode.sync, hint: `largest top-level directories: ${formatTopDirs(dirs)}; ${FIX_HINT}` },
    );
  }
  if (limits.warnFiles > 0 && count >= limits.warnFiles) {
    report.warnings.push(`large sync candidate: ${count} files >= warning threshold ${limits.warnFiles}`);
  } else if (limits.warnBytes > 0 && bytes >= limits.warnBytes) {
    report.warnings.push(
      `large sync candidate: ${humanBytes(bytes)} >= warning threshold ${humanBytes(limits.warnBytes)}`,
    );
  }
  if (report.warnings.length > 0) {
    report.topDirs = topDirs(files);
    report.notes.push(`sync top dirs: ${formatTopDirs(report.topDirs)}`, `sync hint: ${FIX_HINT}`);
  }
  return report;
}
