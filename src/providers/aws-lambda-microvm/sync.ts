import { formatDuration, humanBytes } from "../../core/duration.ts";
import { CrabboxError, ExitCode } from "../../core/errors.ts";
import type { SyncEncoding, SyncResult } from "../../protocol/types.ts";
import type { CompressionChoice } from "../../sync/compress.ts";
import { type SyncOutcome, type SyncRunner, syncToRunner } from "../../sync/engine.ts";
import { EMPTY_REMOTE, planSync } from "../../sync/plan.ts";
import { forgetRememberedWorkdir, loadRemembered, saveRemembered } from "../../sync/remembered.ts";
import type { LocalSnapshot } from "../../sync/snapshot.ts";
import type { Reporter } from "../provider.ts";
import type { ExecOutcome } from "./exec.ts";
import { RunnerHttpError } from "./http.ts";
import type { Progress } from "./progress.ts";
import { abortable } from "./readiness.ts";
import type { RunnerClient } from "./runner-client.ts";
import type { TimingPhase } from "./timing.ts";

/**
 * How a run gets the checkout into the MicroVM's workdir and proves it is there when the command
 * starts. The delta is planned against the manifest this CLI remembers syncing to that MicroVM
 * (sync/remembered.ts), so an unchanged tree sends nothing; the exec then carries the fingerprint
 * the workdir must have, and a runner whose workdir changed since (a remote command rewrote a
 * synced file, the remembered manifest was stale) answers 409 — crabbox reads the runner's manifest,
 * sends the difference, and asks again, at most MAX_EXEC_RESYNCS times.
 */

/** Resyncs after an exec was refused for a changed workdir, before giving up (exit 6). */
export const MAX_EXEC_RESYNCS = 2;

export interface SyncContext {
  stateDir: string;
  report: Reporter;
  signal: AbortSignal;
  progress: Progress;
}

export interface SyncTarget {
  microvmId: string;
  workdir: string;
  /** A MicroVM this run just created: its workdir has no manifest, so none is read. */
  fresh: boolean;
  /** Remember what was synced for the next run (false for a one-shot MicroVM about to end). */
  persist: boolean;
  compression: CompressionChoice;
}

export interface SyncStats {
  /** The whole sync phase: manifest, hash, diff, upload and apply. */
  ms: number;
  phases: TimingPhase[];
  /** Compressed body bytes sent (0 for an unchanged tree). */
  bytesSent: number;
  written: number;
  deleted: number;
  /** Sync requests (0 for an unchanged tree) and manifest reads made. */
  uploads: number;
  manifestReads: number;
  /** The workdir's fingerprint now: the exec's `expectedFingerprint`. */
  fingerprint: string;
  /** With `clean`: unsynced files the runner removed. */
  removedUnsynced: number | undefined;
}

interface UploadClock {
  /** Time spent sending bodies, and waiting for the runner after the last byte left (apply). */
  uploadMs: number;
  applyMs: number;
}

/**
 * The runner as the sync engine sees it: upload bytes on the spinner as they leave, and the split
 * of each sync request into upload (until the body's last byte is handed to the socket) and apply
 * (from then until the runner's answer: extraction, fsync, its manifest).
 */
function measuredRunner(runner: RunnerClient, progress: Progress, clock: UploadClock): SyncRunner {
  let sent = 0;
  let shownAt = 0;
  let bodyDoneAt: number | undefined;
  const count = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          sent += chunk.byteLength;
          const now = performance.now();
          if (now - shownAt >= 100) {
            shownAt = now;
            progress.update(`uploading ${humanBytes(sent)}`);
          }
          controller.enqueue(chunk);
        },
        flush() {
          bodyDoneAt = performance.now();
        },
      }),
    );
  return {
    manifest: (workdir) => runner.manifest(workdir),
    async sync(workdir, base, body, encoding: SyncEncoding): Promise<SyncResult> {
      const started = performance.now();
      bodyDoneAt = undefined;
      try {
        return await runner.sync(
          workdir,
          base,
          typeof body === "function" ? () => count(body()) : count(body),
          encoding,
        );
      } finally {
        const ended = performance.now();
        const sentAt = Math.min(bodyDoneAt ?? ended, ended);
        clock.uploadMs += sentAt - started;
        clock.applyMs += ended - sentAt;
      }
    },
  };
}

function phasesOf(
  snap: LocalSnapshot | undefined,
  outcome: SyncOutcome,
  clock: UploadClock,
  totalMs: number,
): TimingPhase[] {
  const bytes = outcome.counters.bytesOut;
  const phases: TimingPhase[] = [];
  if (snap) {
    phases.push({ name: "manifest", ms: snap.timings.manifestMs }, { name: "hash", ms: snap.timings.hashMs });
  }
  phases.push({ name: "diff", ms: outcome.timings.diffMs });
  if (outcome.uploads === 0) {
    phases.push(
      { name: "upload", skipped: true, reason: "unchanged" },
      { name: "apply", skipped: true, reason: "unchanged" },
    );
  } else {
    phases.push(
      { name: "upload", ms: clock.uploadMs, bytes },
      {
        name: "apply",
        ms: clock.applyMs,
        changed: outcome.result?.written ?? 0,
        deleted: outcome.result?.deleted ?? 0,
      },
    );
  }
  phases.push({ name: "aws_lambda_microvm_sync", ms: totalMs });
  return phases;
}

/**
 * Syncs the snapshot into the workdir: against the remembered manifest when there is one (an
 * unchanged tree then makes no request at all), else against the runner's. With `fromRunner` the
 * remembered manifest is ignored (the runner just said the workdir differs from it).
 */
export async function syncWorkdir(
  ctx: SyncContext,
  runner: RunnerClient,
  target: SyncTarget,
  snap: LocalSnapshot,
  options: { fromRunner?: boolean; clean?: { keep: string[] } } = {},
): Promise<SyncStats> {
  const started = performance.now();
  const remembered = target.fresh
    ? EMPTY_REMOTE
    : options.fromRunner
      ? undefined
      : await loadRemembered(ctx.stateDir, target.microvmId, target.workdir);
  if (remembered === undefined && !options.fromRunner && !target.fresh) {
    ctx.report.debug(`no remembered manifest for ${target.workdir}: reading the runner's`);
  }
  const clock: UploadClock = { uploadMs: 0, applyMs: 0 };
  ctx.progress.phase(`syncing ${snap.guard.files} files (${humanBytes(snap.guard.bytes)})`);
  let outcome: SyncOutcome;
  try {
    outcome = await abortable(
      syncToRunner({
        runner: measuredRunner(runner, ctx.progress, clock),
        workdir: target.workdir,
        snapshot: snap,
        compression: target.compression,
        remembered,
        clean: options.clean,
      }),
      ctx.signal,
    );
  } finally {
    ctx.progress.stop();
  }
  if (target.persist && (outcome.uploads > 0 || outcome.manifestReads > 0 || remembered === EMPTY_REMOTE)) {
    await saveRemembered(ctx.stateDir, target.microvmId, target.workdir, outcome.remote).catch(
      (error: unknown) => ctx.report.debug(`sync manifest not remembered: ${String(error)}`),
    );
  }
  const ms = performance.now() - started;
  const snapshotMs = options.fromRunner ? 0 : snap.timings.manifestMs + snap.timings.hashMs;
  ctx.report.info(
    outcome.uploads === 0
      ? `sync complete in ${formatDuration(ms)} (unchanged)`
      : `sync complete in ${formatDuration(ms)}`,
  );
  return {
    ms: ms + snapshotMs,
    phases: phasesOf(options.fromRunner ? undefined : snap, outcome, clock, ms + snapshotMs),
    bytesSent: outcome.counters.bytesOut,
    written: outcome.result?.written ?? 0,
    deleted: outcome.result?.deleted ?? 0,
    uploads: outcome.uploads,
    manifestReads: outcome.manifestReads,
    fingerprint: outcome.remote.fingerprint,
    removedUnsynced: options.clean ? (outcome.result?.removedUnsynced ?? 0) : undefined,
  };
}

/** Two syncs of one run (the first, and a resync after a 409) as one: times, bytes and files add up. */
export function mergeSyncStats(first: SyncStats, next: SyncStats): SyncStats {
  const phases = first.phases.map((phase) => ({ ...phase }));
  for (const phase of next.phases) {
    const index = phases.findIndex((p) => p.name === phase.name);
    const same = phases[index];
    if (!same || same.skipped) {
      // A phase the first sync skipped (an unchanged upload) is whatever the resync did.
      if (same) phases[index] = { ...phase };
      else phases.push({ ...phase });
      continue;
    }
    if (phase.skipped) continue;
    same.ms = (same.ms ?? 0) + (phase.ms ?? 0);
    if (phase.bytes !== undefined) same.bytes = (same.bytes ?? 0) + phase.bytes;
    if (phase.changed !== undefined) same.changed = (same.changed ?? 0) + phase.changed;
    if (phase.deleted !== undefined) same.deleted = (same.deleted ?? 0) + phase.deleted;
  }
  return {
    ms: first.ms + next.ms,
    phases,
    bytesSent: first.bytesSent + next.bytesSent,
    written: first.written + next.written,
    deleted: first.deleted + next.deleted,
    uploads: first.uploads + next.uploads,
    manifestReads: first.manifestReads + next.manifestReads,
    fingerprint: next.fingerprint,
    removedUnsynced:
      first.removedUnsynced === undefined && next.removedUnsynced === undefined
        ? undefined
        : (first.removedUnsynced ?? 0) + (next.removedUnsynced ?? 0),
  };
}

/** The runner refused an exec because the workdir is not what the exec expected. */
function isWorkdirChanged(error: unknown): boolean {
  return error instanceof RunnerHttpError && error.status === 409 && error.code === "fingerprint_mismatch";
}

async function keepsChanging(runner: RunnerClient, target: SyncTarget, snap: LocalSnapshot) {
  let path = "(unknown)";
  try {
    const plan = planSync(snap.entries, await runner.manifest(target.workdir));
    path = plan.writes[0]?.path ?? plan.deletes[0] ?? path;
  } catch {
    // The error below is the story; the path is a courtesy.
  }
  return new CrabboxError(
    `workdir ${target.workdir} changed again after ${MAX_EXEC_RESYNCS} resyncs: ${JSON.stringify(path)} keeps changing remotely`,
    {
      exitCode: ExitCode.sync,
      hint: "something in the MicroVM keeps rewriting synced files between the sync and the command; stop it and run again",
    },
  );
}

export interface GuardedExec {
  /** Undefined when the exec (or a resync before it) failed. */
  outcome: ExecOutcome | undefined;
  failure: unknown;
  /** The run's sync stats, resyncs included. */
  sync: SyncStats | undefined;
}

/**
 * Runs the command with `expectedFingerprint` (when the run synced); a 409 for a changed workdir
 * reads the runner's manifest, syncs the difference and asks again. The command never starts on a
 * workdir that differs from the checkout. Never throws: the caller reports timing either way.
 */
export async function execOnSyncedWorkdir(
  ctx: SyncContext,
  runner: RunnerClient,
  target: SyncTarget,
  snap: LocalSnapshot | undefined,
  sync: SyncStats | undefined,
  exec: (expectedFingerprint: string | undefined) => Promise<ExecOutcome>,
): Promise<GuardedExec> {
  let current = sync;
  for (let resyncs = 0; ; resyncs++) {
    try {
      return { outcome: await exec(current?.fingerprint), failure: undefined, sync: current };
    } catch (error) {
      if (!snap || !current || !isWorkdirChanged(error))
        return { outcome: undefined, failure: error, sync: current };
      try {
        await forgetRememberedWorkdir(ctx.stateDir, target.microvmId, target.workdir).catch(() => {});
        if (resyncs >= MAX_EXEC_RESYNCS) throw await keepsChanging(runner, target, snap);
        ctx.report.info(`workdir ${target.workdir} changed remotely since the last sync; resyncing`);
        current = mergeSyncStats(current, await syncWorkdir(ctx, runner, target, snap, { fromRunner: true }));
      } catch (resyncError) {
        return { outcome: undefined, failure: resyncError, sync: current };
      }
    }
  }
}
