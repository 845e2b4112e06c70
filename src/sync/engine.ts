import { CrabboxError, ExitCode } from "../core/errors.ts";
import type { SyncEncoding, SyncResult } from "../protocol/types.ts";
import { type ArchiveCounters, createSyncArchive, type SyncArchive } from "./archive.ts";
import type { CompressionChoice } from "./compress.ts";
import { isNoopPlan, planSync, type RemoteManifest, type SyncPlan } from "./plan.ts";
import type { LocalSnapshot } from "./snapshot.ts";

/**
 * The sync loop: diff the local snapshot against what the runner has (or what this CLI remembers
 * having synced), send only the delta guarded by the base fingerprint, and when the runner says the
 * base moved (409), re-read its manifest and try again — a bounded number of times, so a remote
 * process that keeps rewriting synced files ends in a clear error instead of a livelock.
 */

/** What the engine needs from a runner client (RunnerClient fits). */
export interface SyncRunner {
  manifest(workdir: string): Promise<RemoteManifest>;
  sync(
    workdir: string,
    base: string,
    body: ReadableStream<Uint8Array> | (() => ReadableStream<Uint8Array>),
    encoding: SyncEncoding,
  ): Promise<SyncResult>;
}

export interface SyncToRunnerOptions {
  runner: SyncRunner;
  workdir: string;
  snapshot: LocalSnapshot;
  compression: CompressionChoice;
  /** The manifest this CLI last synced to the lease; without it the runner's manifest is read first. */
  remembered?: RemoteManifest;
  /** Attempts after the first when the base moved (default 2). */
  maxResyncs?: number;
  /** Retakes the local snapshot when the runner's result disagrees with it (a file changed mid-upload). */
  resnapshot?: () => Promise<LocalSnapshot>;
  clean?: { keep: string[] };
}

export interface SyncOutcome {
  /** The plan that was applied (or found empty). */
  plan: SyncPlan;
  /** The runner's answer; undefined when there was nothing to send. */
  result: SyncResult | undefined;
  /** The workdir's manifest now — remember it for the next run of this lease. */
  remote: RemoteManifest;
  /** Archive counters of the upload that succeeded (zeros when nothing was sent). */
  counters: ArchiveCounters;
  /** Sync requests made (0 for an unchanged tree), manifest reads made. */
  uploads: number;
  manifestReads: number;
  timings: { diffMs: number; uploadMs: number };
}

const NO_COUNTERS: ArchiveCounters = { entries: 0, contentBytes: 0, bytesIn: 0, bytesOut: 0 };

function conflictCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "base_mismatch" || code === "expect_mismatch" ? code : undefined;
}

export async function syncToRunner(options: SyncToRunnerOptions): Promise<SyncOutcome> {
  const clock = () => performance.now();
  const maxResyncs = options.maxResyncs ?? 2;
  let snapshot = options.snapshot;
  let manifestReads = 0;
  let uploads = 0;
  let diffMs = 0;
  let uploadMs = 0;
  const readRemote = async () => {
    manifestReads++;
    return options.runner.manifest(options.workdir);
  };
  let remote = options.remembered ?? (await readRemote());

  for (let attempt = 0; attempt <= maxResyncs; attempt++) {
    const diffStart = clock();
    const plan = planSync(snapshot.entries, remote);
    diffMs += clock() - diffStart;
    // With `clean` the request itself does work (removing unsynced files), so it is always sent.
    if (isNoopPlan(plan) && !options.clean) {
      return {
        plan,
        result: undefined,
        remote,
        counters: NO_COUNTERS,
        uploads,
        manifestReads,
        timings: { diffMs, uploadMs },
      };
    }
    let archive: SyncArchive | undefined;
    const current = snapshot;
    // A factory, so the client can replay the body after a token refresh.
    const body = () => {
      archive = createSyncArchive({
        root: current.manifest.root,
        plan,
        compression: options.compression,
        mtimes: current.mtimes,
        clean: options.clean,
      });
      return archive.body;
    };
    const uploadStart = clock();
    try {
      uploads++;
      const result = await options.runner.sync(
        options.workdir,
        plan.base,
        body,
        options.compression.encoding,
      );
      uploadMs += clock() - uploadStart;
      return {
        plan,
        result,
        remote: { fingerprint: result.fingerprint, entries: current.entries },
        counters: archive?.counters ?? NO_COUNTERS,
        uploads,
        manifestReads,
        timings: { diffMs, uploadMs },
      };
    } catch (error) {
      uploadMs += clock() - uploadStart;
      const code = conflictCode(error);
      if (code === undefined) throw error;
      if (code === "expect_mismatch" && options.resnapshot) snapshot = await options.resnapshot();
      remote = await readRemote();
    }
  }

  const stuck = planSync(snapshot.entries, remote);
  const path = stuck.writes[0]?.path ?? stuck.deletes[0] ?? "(unknown)";
  throw new CrabboxError(
    `sync did not settle after ${maxResyncs + 1} attempts: ${JSON.stringify(path)} keeps changing remotely`,
    {
      exitCode: ExitCode.sync,
      hint: "something in the MicroVM (or another crabbox run) keeps rewriting synced files; stop it and run again",
    },
  );
}
