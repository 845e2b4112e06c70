import { relative } from "node:path";
import {
  createArtifactWriter,
  type DownloadSpec,
  destinationFor,
  remotePattern,
  UnsafeArtifactError,
} from "../../core/artifacts.ts";
import { humanBytes } from "../../core/duration.ts";
import { describeError } from "../../core/errors.ts";
import type { SummaryArtifacts, SummaryDownload } from "../../core/run-summary.ts";
import { readBody, readTar } from "../../protocol/tar.ts";
import { FILES_META_NAME, type FilesMeta } from "../../protocol/types.ts";
import type { Reporter } from "../provider.ts";
import type { RunnerClient } from "./runner-client.ts";

/**
 * `run --download`: after the command, each spec is fetched with `GET /v1/files?since=<the exec's
 * startedAtMs>`, so only files this run created or modified come back; older matches are reported
 * as stale and left on the MicroVM. The tar stream is untrusted: core/artifacts.ts decides where
 * each entry may go and refuses anything that would land outside the artifact dir.
 */

export interface DownloadOptions {
  runner: RunnerClient;
  workdir: string;
  /** The command's cwd relative to the workdir (`.` = the workdir). */
  cwd: string;
  specs: readonly DownloadSpec[];
  /** The exec's `startedAtMs` (runner clock). */
  sinceMs: number;
  dir: string;
  required: boolean;
  report: Reporter;
  signal: AbortSignal;
}

const MAX_META_BYTES = 16 * 1024 * 1024;
const LISTED = 5;

function list(paths: readonly string[]): string {
  const shown = paths.slice(0, LISTED).join(", ");
  return paths.length > LISTED ? `${shown} (+${paths.length - LISTED} more)` : shown;
}

function shownDir(dir: string): string {
  const rel = relative(process.cwd(), dir);
  return rel === "" ? "." : rel.startsWith("..") ? dir : rel;
}

async function downloadOne(
  options: DownloadOptions,
  spec: DownloadSpec,
  writer: Awaited<ReturnType<typeof createArtifactWriter>>,
): Promise<SummaryDownload> {
  const pattern = remotePattern(spec, options.cwd);
  const result: SummaryDownload = {
    spec: spec.raw,
    status: "missing",
    files: [],
    stale: [],
    refused: [],
    error: null,
  };
  let meta: FilesMeta | undefined;
  try {
    const body = await options.runner.files(
      options.workdir,
      { paths: [pattern], sinceMs: options.sinceMs },
      { signal: options.signal },
    );
    for await (const entry of readTar(body)) {
      const { path, type, mode, mtime, linkpath } = entry.header;
      if (path === FILES_META_NAME) {
        meta = JSON.parse(new TextDecoder().decode(await readBody(entry.body, MAX_META_BYTES))) as FilesMeta;
        continue;
      }
      const local = destinationFor(spec, options.cwd, path);
      if (local === undefined) {
        result.refused.push({ remote: path, reason: "not below the requested path" });
        continue;
      }
      try {
        if (type === "directory") {
          await writer.directory(local, mode);
        } else if (type === "file") {
          const bytes = await writer.file(local, mode, mtime, entry.body);
          result.files.push({ remote: path, local, type: "file", bytes });
        } else if (type === "symlink") {
          await writer.symlink(local, linkpath);
          result.files.push({ remote: path, local, type: "symlink", bytes: 0 });
        } else {
          result.refused.push({ remote: path, reason: `unsupported entry type ${type}` });
        }
      } catch (error) {
        if (!(error instanceof UnsafeArtifactError)) throw error;
        result.refused.push({ remote: path, reason: error.message });
      }
    }
  } catch (error) {
    if (options.signal.aborted) throw options.signal.reason;
    result.status = "failed";
    result.error = describeError(error);
    return result;
  }
  result.stale = [...(meta?.stale ?? [])];
  if (result.files.length > 0) result.status = "downloaded";
  else if (result.stale.length > 0) result.status = "stale";
  else if (meta === undefined) {
    result.status = "failed";
    result.error = "the runner's answer ended without its file list";
  } else if ((meta.unmatched ?? []).includes(pattern)) result.status = "missing";
  else if (result.refused.length > 0) {
    result.status = "failed";
    result.error = "every match was refused";
  } else result.status = "downloaded";
  return result;
}

function reportDownload(report: Reporter, download: SummaryDownload, dir: string): void {
  const what = `artifact ${download.spec}`;
  if (download.status === "downloaded") {
    const bytes = download.files.reduce((sum, file) => sum + file.bytes, 0);
    const count = download.files.length;
    report.info(
      `downloaded ${what}: ${count} file${count === 1 ? "" : "s"} (${humanBytes(bytes)}) to ${shownDir(dir)}`,
    );
    if (download.stale.length > 0) {
      report.warn(
        `${what}: left ${download.stale.length} stale (older than this run): ${list(download.stale)}`,
      );
    }
  } else if (download.status === "stale") {
    report.warn(`${what}: only stale matches, not modified by this run: ${list(download.stale)}`);
  } else if (download.status === "missing") {
    report.warn(`${what}: nothing matched after the command`);
  } else {
    report.warn(`${what}: download failed: ${download.error}`);
  }
  for (const refused of download.refused.slice(0, LISTED)) {
    report.warn(`${what}: refused ${JSON.stringify(refused.remote)}: ${refused.reason}`);
  }
}

/** Fetches every spec in turn; a failure of one is reported and does not stop the others. */
export async function downloadArtifacts(options: DownloadOptions): Promise<SummaryArtifacts> {
  const writer = await createArtifactWriter(options.dir);
  const downloads: SummaryDownload[] = [];
  for (const spec of options.specs) {
    const download = await downloadOne(options, spec, writer);
    reportDownload(options.report, download, writer.dir);
    downloads.push(download);
  }
  return { dir: writer.dir, required: options.required, downloads };
}

/** The specs a `--require-artifact` run fails on. */
export function unmetDownloads(artifacts: SummaryArtifacts): SummaryDownload[] {
  return artifacts.downloads.filter((download) => download.status !== "downloaded");
}
