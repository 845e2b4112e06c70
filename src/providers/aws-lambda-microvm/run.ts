import { realpathSync } from "node:fs";
import { isAbsolute, relative, sep } from "node:path";
import { defaultArtifactDir, ensureCrabboxGitignore } from "../../core/artifacts.ts";
import { type Claim, saveClaim } from "../../core/claims.ts";
import { formatDuration } from "../../core/duration.ts";
import {
  describeForwardedEnv,
  resolveEnvAllow,
  selectForwardedEnv,
  withReservedEnv,
} from "../../core/env-forward.ts";
import { CrabboxError, describeError, ExitCode, usageError } from "../../core/errors.ts";
import { newRunId, type RunRecorder } from "../../core/run-summary.ts";
import { argvToShellScript, displayCommand, displayShellArg, shellQuote } from "../../core/shell.ts";
import { cwdProblem } from "../../protocol/paths.ts";
import { DEFAULT_DETACH_GRACE_SECONDS } from "../../protocol/types.ts";
import { type CompressionChoice, parseCompression } from "../../sync/compress.ts";
import { type LocalSnapshot, snapshotWithCache } from "../../sync/snapshot.ts";
import type { ProviderContext, RunRequest, RunResult } from "../provider.ts";
import { downloadArtifacts, unmetDownloads } from "./artifacts.ts";
import { claimOwner, ownerGone } from "./cleanup.ts";
import { type ControlPlane, controlPlane, type Microvm } from "./control-plane.ts";
import { openRunner } from "./data-plane.ts";
import { type ExecOutcome, execCommand, explainLostStream, microvmEnded } from "./exec.ts";
import { keepAliveDisabled, keepAliveIntervalMs } from "./keepalive.ts";
import {
  createLease,
  PROVIDER,
  recordedRunner,
  reloadLease,
  stopCommand,
  terminateOrRecover,
  touchLease,
  withLeaseLock,
  withMicrovmLabels,
} from "./lease.ts";
import { createProgress, type Progress } from "./progress.ts";
import { waitReady } from "./readiness.ts";
import {
  checkImageIdentity,
  claimedMicrovm,
  isDataPlaneFailure,
  liveMicrovm,
  mayRecover,
  unreachable,
} from "./reuse.ts";
import type { RunnerClient } from "./runner-client.ts";
import { execOnSyncedWorkdir, type SyncStats, type SyncTarget, syncWorkdir } from "./sync.ts";
import { classify, timingJson } from "./timing.ts";

/**
 * `crabbox run`: everything that can fail locally fails before a MicroVM exists (command, --cwd,
 * env names, the git manifest and its size guard); then a fresh lease is created — or the `--id`
 * lease is taken under its operation lock — the checkout is delta-synced, the command streamed,
 * and the exit code is the remote one. A one-shot MicroVM is terminated however the run ends,
 * Ctrl-C included; `--keep` retains it, `--keep-on-failure` retains it only when sync or the
 * command failed.
 */

interface Prepared {
  script: string;
  cwd: string;
  env: Record<string, string>;
  envSummary: string | undefined;
  snapshot: LocalSnapshot | undefined;
  runId: string;
  /** `sync.compression`, parsed before anything remote happens (a typo is exit 2, not a MicroVM). */
  compression: CompressionChoice;
}

interface SessionResult {
  exitCode: number;
  /** Sync or the command failed (what --keep-on-failure keeps a lease for). */
  failed: boolean;
  interrupted: boolean;
}

/** The run's context: the command's context with a reporter that erases the spinner first. */
interface RunContext extends ProviderContext {
  progress: Progress;
  started: number;
  /** Facts for `--json-summary`; a no-op recorder without it. */
  recorder: RunRecorder;
}

/** Records nothing: the run's code records unconditionally. */
const NO_RECORDER: RunRecorder = {
  runId: "",
  lease() {},
  phase() {},
  command() {},
  sync() {},
  exec() {},
  artifacts() {},
  leaseKept() {},
  artifactsRequiredFailed() {},
};

/** Errors that came out of the sync phase: --keep-on-failure keeps the lease for them too. */
const syncFailures = new WeakSet<object>();

function realpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** `--cwd` as given (relative to the checkout), else the local cwd's place in the checkout. */
function remoteCwd(request: RunRequest, localCwd: string, root: string): string {
  if (request.cwd !== undefined) {
    const cwd =
      request.cwd
        .trim()
        .replace(/^(\.\/)+/, "")
        .replace(/\/+$/, "") || ".";
    const problem = cwdProblem(cwd);
    if (problem) {
      throw usageError(
        `--cwd ${JSON.stringify(request.cwd)}: ${problem}`,
        "give a directory relative to the synced checkout, e.g. --cwd packages/api",
      );
    }
    return cwd;
  }
  const rel = relative(realpath(root), realpath(localCwd));
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return ".";
  return sep === "/" ? rel : rel.split(sep).join("/");
}

async function snapshot(ctx: RunContext): Promise<LocalSnapshot> {
  const { config, report } = ctx;
  const snap = await snapshotWithCache({
    cwd: config.cwd,
    sync: config.sync,
    stateDir: ctx.stateDir,
    onCacheError: (error) => report.debug(`hash cache not saved: ${String(error)}`),
  });
  for (const warning of snap.manifest.warnings) report.warn(warning);
  report.info(snap.guard.candidateLine);
  for (const warning of snap.guard.warnings) report.warn(warning);
  for (const note of snap.guard.notes) report.info(note);
  return snap;
}

/** The checkout's side: its snapshot (unless --no-sync) and the remote cwd it implies. */
async function localSide(ctx: RunContext, request: RunRequest): Promise<Pick<Prepared, "snapshot" | "cwd">> {
  const started = performance.now();
  const snap = request.sync ? await snapshot(ctx) : undefined;
  ctx.recorder.phase("prepare", performance.now() - started);
  return {
    snapshot: snap,
    cwd: remoteCwd(request, ctx.config.cwd, snap?.manifest.root ?? ctx.config.repoRoot),
  };
}

/**
 * Local preparation: nothing here touches AWS, so a run that cannot work costs no MicroVM. For
 * `--id` the checkout is read later, under the lease's lock, so a run that waited for the lock
 * syncs the tree as it is when it gets its turn.
 */
async function prepareRun(ctx: RunContext, request: RunRequest): Promise<Prepared> {
  const script = request.shell ? request.command.join(" ") : argvToShellScript(request.command);
  if (!request.syncOnly && script.trim() === "") throw usageError(`provider=${PROVIDER} requires a command`);
  if (request.cwd !== undefined) remoteCwd(request, ctx.config.cwd, ctx.config.repoRoot);
  const source = ctx.config.sources["env.allow"]?.source;
  const allow = resolveEnvAllow({ configAllow: ctx.config.env.allow });
  const runId = request.runId ?? newRunId();
  const compression = parseCompression(ctx.config.sync.compression);
  const env = withReservedEnv(selectForwardedEnv(process.env, allow.entries), {
    leaseId: request.leaseArgument ?? "",
    runId,
    slug: request.slug ?? "",
  });
  // The summary appears only when the user engaged forwarding (--allow-env, CRABBOX_ENV_ALLOW).
  const explicit = source === "flag" || source === "env";
  const prepared: Prepared = {
    script,
    cwd: ".",
    env,
    envSummary: explicit ? describeForwardedEnv(env, allow.entries, PROVIDER) : undefined,
    snapshot: undefined,
    runId,
    compression,
  };
  return request.lease ? prepared : { ...prepared, ...(await localSide(ctx, request)) };
}

/** The sync, with what `--clean` removed said and the summary recorder told. */
async function syncInto(
  ctx: RunContext,
  runner: RunnerClient,
  target: SyncTarget,
  snap: LocalSnapshot,
  clean: boolean,
): Promise<SyncStats> {
  const stats = await syncWorkdir(ctx, runner, target, snap, {
    // `--clean` is sent even for an unchanged tree: the request itself does the cleaning.
    ...(clean ? { clean: { keep: [...ctx.config.sync.keep] } } : {}),
  });
  const removed = stats.removedUnsynced;
  if (removed !== undefined) {
    ctx.report.info(
      `clean: removed ${removed} unsynced file${removed === 1 ? "" : "s"} (kept ${ctx.config.sync.keep.join(", ") || "nothing"})`,
    );
  }
  recordSync(ctx, stats);
  return stats;
}

function recordSync(ctx: RunContext, stats: SyncStats): void {
  ctx.recorder.phase("sync", stats.ms);
  ctx.recorder.sync({
    uploaded: stats.uploads > 0,
    bytesSent: stats.bytesSent,
    filesWritten: stats.written,
    filesDeleted: stats.deleted,
    removedUnsynced: stats.removedUnsynced ?? null,
  });
}

/** The sync's fields of the timing line (`--no-sync`: one skipped phase). */
function syncTiming(sync: SyncStats | undefined) {
  return {
    syncMs: sync?.ms ?? 0,
    syncPhases: sync?.phases ?? [{ name: "sync", skipped: true, reason: "--no-sync" }],
    syncSkipped: sync === undefined,
    syncBytesSent: sync?.bytesSent,
    syncFilesWritten: sync?.written,
    syncFilesDeleted: sync?.deleted,
  };
}

/** Sync and command on a ready lease; prints the summary and timing lines. */
async function session(
  ctx: RunContext,
  request: RunRequest,
  prepared: Prepared,
  lease: { claim: Claim; runner: RunnerClient; fresh: boolean },
  plane: ControlPlane,
): Promise<SessionResult> {
  const { report } = ctx;
  const workdir = ctx.config.awsLambdaMicroVM.workdir.trim();
  const { claim, runner } = lease;
  report.info(`provider=${PROVIDER} lease=${claim.leaseID} microvm=${claim.cloudID} workdir=${workdir}`);
  ctx.recorder.lease({
    leaseId: claim.leaseID,
    slug: claim.slug,
    microvmId: claim.cloudID,
    region: ctx.scope,
  });
  const timing = {
    provider: PROVIDER,
    leaseId: claim.leaseID,
    slug: claim.slug,
    syncDelegated: true,
  };
  const target: SyncTarget = {
    microvmId: claim.cloudID,
    workdir,
    fresh: lease.fresh,
    // A one-shot MicroVM ends with this run: nothing to remember for a next one.
    persist: !lease.fresh || request.keep || request.keepOnFailure,
    compression: prepared.compression,
  };
  let sync: SyncStats | undefined;
  try {
    if (prepared.snapshot)
      sync = await syncInto(ctx, runner, target, prepared.snapshot, request.clean === true);
  } catch (error) {
    if (ctx.signal.aborted) return { exitCode: ExitCode.interrupted, failed: false, interrupted: true };
    if (typeof error === "object" && error !== null) syncFailures.add(error);
    throw error;
  }
  let syncFields = syncTiming(sync);
  if (request.syncOnly) {
    report.stdout(new TextEncoder().encode(`synced ${workdir}\n`));
    if (request.timingJson) {
      report.info(
        timingJson({
          ...timing,
          ...syncFields,
          commandMs: 0,
          totalMs: performance.now() - ctx.started,
          exitCode: 0,
          runStatus: "succeeded",
        }),
      );
    }
    return { exitCode: 0, failed: false, interrupted: false };
  }

  if (prepared.envSummary) report.info(prepared.envSummary);
  ctx.recorder.command(prepared.script);
  const commandStarted = performance.now();
  let outcome: ExecOutcome | undefined;
  let failure: unknown;
  // A lease this process does not own survives a forced exit with the command still on it: say so.
  const unregister = request.lease
    ? ctx.onForcedExit?.(() => [
        `still running: command ${prepared.runId} on lease ${claim.leaseID}; the runner stops it once nobody reattaches for ${DEFAULT_DETACH_GRACE_SECONDS}s; end the lease now with: ${stopCommand(claim.leaseID)}`,
      ])
    : undefined;
  try {
    // The workdir must still be what was synced (a remote command may have rewritten a synced
    // file since the last run): the runner checks the fingerprint, a 409 resyncs and asks again.
    const guarded = await execOnSyncedWorkdir(ctx, runner, target, prepared.snapshot, sync, (expected) =>
      execCommand({
        runner,
        request: {
          execId: prepared.runId,
          command: prepared.script,
          workdir,
          cwd: prepared.cwd,
          env: prepared.env,
          ...(expected !== undefined ? { expectedFingerprint: expected } : {}),
          ...(request.stdin ? { stdin: true } : {}),
          ...(request.timeoutMs !== undefined ? { timeoutSeconds: request.timeoutMs / 1000 } : {}),
        },
        report,
        signal: ctx.signal,
        stdin: request.stdin?.(),
        keepAliveMs: keepAliveMsFor(ctx, plane, claim),
      }),
    );
    outcome = guarded.outcome;
    failure = guarded.failure;
    if (guarded.sync !== sync && guarded.sync) {
      sync = guarded.sync;
      syncFields = syncTiming(sync);
      recordSync(ctx, sync);
    }
  } finally {
    unregister?.();
  }
  const commandMs = performance.now() - commandStarted;
  ctx.recorder.phase("command", commandMs);
  if (outcome)
    ctx.recorder.exec({
      exitCode: outcome.remoteExitCode,
      signal: outcome.signal,
      reason: outcome.reason,
    });
  const timedOut = outcome?.timedOut === true;
  const exitCode = timedOut ? ExitCode.timeout : (outcome?.exitCode ?? 1);
  const unmet =
    outcome && !outcome.interrupted
      ? await fetchArtifacts(ctx, request, prepared, runner, workdir, outcome)
      : undefined;
  const totalMs = performance.now() - ctx.started;
  report.info(
    `${PROVIDER} run summary sync=${formatDuration(syncFields.syncMs)} command=${formatDuration(commandMs)} total=${formatDuration(totalMs)} exit=${exitCode}`,
  );
  if (request.timingJson) {
    const how = failure ? "error" : outcome?.interrupted ? "interrupted" : timedOut ? "timeout" : "exited";
    report.info(
      timingJson({ ...timing, ...syncFields, commandMs, totalMs, exitCode, ...classify(exitCode, how) }),
    );
  }
  if (failure) throw await explainLostStream(plane, claim.cloudID, failure);
  const result = outcome as ExecOutcome;
  // Interrupted during the download: the run ends as an interrupted one too.
  if (result.interrupted || ctx.signal.aborted)
    return { exitCode: ExitCode.interrupted, failed: false, interrupted: true };
  if (timedOut) {
    throw new CrabboxError(
      `command timed out after ${formatDuration(request.timeoutMs ?? 0)} (--timeout) and was stopped`,
      { exitCode: ExitCode.timeout, hint: "raise --timeout, or find out what the command waits for" },
    );
  }
  if (result.exitCode !== 0) report.info(`${PROVIDER} run exited ${result.exitCode}`);
  if (result.signal) {
    // A command killed by a signal may have gone down with its MicroVM (maximum duration, a crash).
    const ended = await microvmEnded(plane, claim.cloudID);
    if (ended) report.warn(`the command was killed by ${result.signal}; ${ended}`);
  }
  requireArtifacts(ctx, request, unmet, result.exitCode);
  return { exitCode: result.exitCode, failed: result.exitCode !== 0, interrupted: false };
}

/** Keep-alive interval for this lease: its own idle timeout when the claim records one. */
function keepAliveMsFor(ctx: RunContext, plane: ControlPlane, claim: Claim): number | undefined {
  if (keepAliveDisabled(plane)) return undefined;
  const idleSeconds = claim.idleTimeoutSeconds;
  const idleMs =
    typeof idleSeconds === "number" && idleSeconds > 0 ? idleSeconds * 1000 : ctx.config.idleTimeout;
  return keepAliveIntervalMs(idleMs, plane.timeScale);
}

/**
 * `--download`: after the command, whatever its exit code (not after an interrupt). Returns the
 * specs that were not met (missing, only stale, failed); undefined when nothing was asked for.
 */
async function fetchArtifacts(
  ctx: RunContext,
  request: RunRequest,
  prepared: Prepared,
  runner: RunnerClient,
  workdir: string,
  outcome: ExecOutcome,
): Promise<string[] | undefined> {
  const specs = request.downloads ?? [];
  if (specs.length === 0) return undefined;
  const started = performance.now();
  const dir = request.artifactDir ?? defaultArtifactDir(ctx.config.repoRoot, prepared.runId);
  try {
    if (request.artifactDir === undefined) await ensureCrabboxGitignore(ctx.config.repoRoot);
    const artifacts = await downloadArtifacts({
      runner,
      workdir,
      cwd: prepared.cwd,
      specs,
      // No started event means the command never ran: nothing it made can be there.
      sinceMs: outcome.startedAtMs ?? Date.now(),
      dir,
      required: request.requireArtifacts === true,
      report: ctx.report,
      signal: ctx.signal,
    });
    ctx.recorder.artifacts(artifacts);
    return unmetDownloads(artifacts).map((download) => `${download.spec} (${download.status})`);
  } catch (error) {
    if (ctx.signal.aborted) return undefined;
    ctx.report.warn(`artifacts not downloaded: ${describeError(error)}`);
    return specs.map((spec) => `${spec.raw} (failed)`);
  } finally {
    ctx.recorder.phase("artifacts", performance.now() - started);
  }
}

/** `--require-artifact`: an unmet download fails a run whose command succeeded (exit 7). */
function requireArtifacts(
  ctx: RunContext,
  request: RunRequest,
  unmet: readonly string[] | undefined,
  exitCode: number,
): void {
  if (!request.requireArtifacts || unmet === undefined || unmet.length === 0) return;
  if (exitCode !== 0) {
    // The command's own failure is the news; its code is kept.
    ctx.report.warn(`required artifacts not produced: ${unmet.join(", ")}`);
    return;
  }
  ctx.recorder.artifactsRequiredFailed();
  throw new CrabboxError(`required artifacts missing or stale: ${unmet.join(", ")}`, {
    exitCode: ExitCode.artifactMissing,
    hint: "only files the command created or modified count; check its output and the --download paths (relative to the remote cwd)",
  });
}

/** The three lines upstream prints when --keep-on-failure kept a lease. */
function reportKept(ctx: RunContext, request: RunRequest, prepared: Prepared, claim: Claim): void {
  const id = claim.slug || claim.leaseID;
  const command = request.shell
    ? `--shell ${shellQuote(prepared.script)}`
    : `-- ${displayCommand(request.command)}`;
  ctx.report.info(
    `keep-on-failure: kept lease=${claim.leaseID} slug=${claim.slug || "-"} expires=idle/ttl idle_timeout=${formatDuration(ctx.config.idleTimeout)} ttl=${formatDuration(ctx.config.ttl)}`,
  );
  ctx.report.info(`rerun: crabbox run --provider ${PROVIDER} --id ${displayShellArg(id)} ${command}`);
  ctx.report.info(`stop: crabbox stop --provider ${PROVIDER} ${displayShellArg(id)}`);
}

/** After a run on a lease that stays: fresh labels (state, last touch, expiry), keep as decided. */
async function touchKept(ctx: RunContext, claim: Claim, keepLabel: boolean | undefined): Promise<void> {
  await saveClaim(
    ctx.stateDir,
    claim.leaseID,
    (current) => {
      const base = current ?? claim;
      const labels = touchLease(base, "running", ctx.config);
      if (keepLabel !== undefined) labels.keep = String(keepLabel);
      return { ...base, labels };
    },
    { reclaim: true },
  ).catch((error: unknown) => ctx.report.warn(`could not update lease ${claim.leaseID}: ${String(error)}`));
}

function isSyncFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && syncFailures.has(error);
}

async function freshRun(
  ctx: RunContext,
  plane: ControlPlane,
  request: RunRequest,
  prepared: Prepared,
): Promise<RunResult> {
  ctx.progress.phase("provisioning");
  let lease: Awaited<ReturnType<typeof createLease>>;
  const provisioning = performance.now();
  try {
    lease = await createLease(ctx, plane, {
      slug: request.slug,
      keep: request.keep,
      onProgress: (text) => ctx.progress.update(text),
    });
  } finally {
    ctx.progress.stop();
    ctx.recorder.phase("provision", performance.now() - provisioning);
  }
  const { claim, vm } = lease;
  ctx.report.info(
    `leased ${claim.leaseID} slug=${claim.slug} provider=${PROVIDER} microvm=${vm.microvmId} region=${ctx.scope} image_version=${vm.imageVersion}`,
  );
  let result: SessionResult | undefined;
  let failed = true;
  try {
    result = await session(ctx, request, prepared, { ...lease, fresh: true }, plane);
    failed = result.failed;
    if (result.interrupted) throw ctx.signal.reason;
    return { exitCode: result.exitCode };
  } catch (error) {
    failed = !ctx.signal.aborted && (isSyncFailure(error) || failed);
    throw error;
  } finally {
    lease.runner.close();
    if (request.keep) {
      await touchKept(ctx, claim, undefined);
      ctx.recorder.leaseKept(true);
    } else if (request.keepOnFailure && failed && !ctx.signal.aborted) {
      await touchKept(ctx, claim, true);
      reportKept(ctx, request, prepared, claim);
      ctx.recorder.leaseKept(true);
    } else {
      const teardown = performance.now();
      const failure = await terminateOrRecover(ctx, plane, claim.leaseID, vm.microvmId, "release");
      ctx.recorder.phase("teardown", performance.now() - teardown);
      ctx.recorder.leaseKept(failure !== undefined);
    }
  }
}

/**
 * `run --id`: the retained lease, under its operation lock for the whole run. A claim that vouches
 * for its MicroVM (reuse.ts) is used as is — no GetMicrovm, no /health: an unchanged rerun is one
 * request. AWS is asked only when the data plane fails: a MicroVM that is gone is exit 4; one that
 * is alive gets its runner probed and the run is tried once more (same exec id, so a command that
 * did start is reattached, never run twice) — unless it already printed output.
 */
async function reuseRun(
  ctx: RunContext,
  plane: ControlPlane,
  request: RunRequest,
  unsynced: Prepared,
  lease: Claim,
): Promise<RunResult> {
  return withLeaseLock(ctx, lease.leaseID, async () => {
    const prepared = { ...unsynced, ...(await localSide(ctx, request)) };
    const claim = await reloadLease(ctx, lease.leaseID);
    const owner = claimOwner(claim);
    // A creator that died mid-readiness left it `provisioning`: usable, its runner is probed below.
    if (claim.state === "provisioning" && owner && !ownerGone(owner)) {
      throw new CrabboxError(`lease ${claim.leaseID} is still being created`, {
        exitCode: ExitCode.notReady,
        hint: `\`crabbox status ${displayShellArg(claim.slug || claim.leaseID)} --wait\` waits until it is ready`,
      });
    }
    let failed = false;
    try {
      const result = await reuseSession(ctx, plane, request, prepared, claim);
      failed = result.failed;
      if (result.interrupted) throw ctx.signal.reason;
      return { exitCode: result.exitCode };
    } catch (error) {
      failed = !ctx.signal.aborted;
      throw error;
    } finally {
      if (failed && request.keepOnFailure) reportKept(ctx, request, prepared, claim);
      if (!ctx.signal.aborted) await touchKept(ctx, claim, undefined);
    }
  });
}

async function reuseSession(
  ctx: RunContext,
  plane: ControlPlane,
  request: RunRequest,
  prepared: Prepared,
  claim: Claim,
): Promise<SessionResult> {
  const claimed = claimedMicrovm(claim);
  if (!claimed) {
    // A lease made by another crabbox (upstream Go), or whose creator died before readiness: ask
    // AWS, and prove once that it is up and its runner speaks our protocol.
    const vm = await liveMicrovm(ctx, plane, claim);
    return verifiedSession(ctx, plane, request, prepared, claim, vm, !recordedRunner(claim));
  }
  checkImageIdentity(ctx, claim.leaseID, claimed);
  let current = claim;
  if (claim.repoRoot !== ctx.config.repoRoot || request.reclaim) {
    // Taking the lease for another checkout is refused unless --reclaim (saveClaim decides).
    current = await saveClaim(
      ctx.stateDir,
      claim.leaseID,
      (found) => ({ ...(found ?? claim), repoRoot: ctx.config.repoRoot }),
      { reclaim: request.reclaim },
    );
  }
  const watched = watchOutput(ctx);
  const runner = openRunner(ctx, plane, claimed);
  try {
    ctx.recorder.leaseKept(true);
    return await session(watched.ctx, request, prepared, { claim: current, runner, fresh: false }, plane);
  } catch (error) {
    if (ctx.signal.aborted || !isDataPlaneFailure(error) || watched.printed()) throw error;
    const vm = await liveMicrovm(ctx, plane, current);
    if (!mayRecover(vm)) throw unreachable(current, vm, error);
    ctx.report.info(
      `lease ${current.leaseID}: the data plane failed (${describeError(error)}); MicroVM ${vm.microvmId} is ${vm.state.toLowerCase()}, probing its runner`,
    );
    return verifiedSession(ctx, plane, request, prepared, current, vm, true);
  } finally {
    runner.close();
  }
}

/** A run on a MicroVM AWS just described: its labels refreshed, its runner probed when asked. */
async function verifiedSession(
  ctx: RunContext,
  plane: ControlPlane,
  request: RunRequest,
  prepared: Prepared,
  found: Claim,
  vm: Microvm,
  probe: boolean,
): Promise<SessionResult> {
  checkImageIdentity(ctx, found.leaseID, vm);
  let claim = await saveClaim(
    ctx.stateDir,
    found.leaseID,
    (current) => {
      const base = current ?? found;
      return {
        ...base,
        repoRoot: ctx.config.repoRoot,
        labels: withMicrovmLabels(touchLease(base, vm.state, ctx.config), vm, ctx.scope),
      };
    },
    { reclaim: request.reclaim },
  );
  const runner = openRunner(ctx, plane, vm);
  try {
    if (probe) {
      const ready = await waitReady(plane, vm, runner, { leaseId: claim.leaseID, signal: ctx.signal });
      claim = await saveClaim(ctx.stateDir, claim.leaseID, (current) => ({
        ...(current ?? claim),
        state: "ready",
        runner: { protocol: ready.health.protocol, version: ready.health.version ?? "" },
        labels: withMicrovmLabels((current ?? claim).labels ?? {}, ready.vm, ctx.scope),
      }));
    }
    ctx.recorder.leaseKept(true);
    return await session(ctx, request, prepared, { claim, runner, fresh: false }, plane);
  } finally {
    runner.close();
  }
}

/** The context with its command output watched: a run that printed something is never retried. */
function watchOutput(ctx: RunContext): { ctx: RunContext; printed(): boolean } {
  let printed = false;
  const report = ctx.report;
  return {
    ctx: {
      ...ctx,
      report: {
        info: (line) => report.info(line),
        warn: (message) => report.warn(message),
        debug: (message) => report.debug(message),
        stdout: (chunk) => {
          printed = true;
          report.stdout(chunk);
        },
        stderr: (chunk) => {
          printed = true;
          report.stderr(chunk);
        },
      },
    },
    printed: () => printed,
  };
}

export async function run(ctx: ProviderContext, request: RunRequest): Promise<RunResult> {
  const progress = createProgress(ctx.report);
  const runCtx: RunContext = {
    ...ctx,
    report: progress.report,
    progress,
    started: performance.now(),
    recorder: request.recorder ?? NO_RECORDER,
  };
  try {
    const prepared = await prepareRun(runCtx, request);
    const plane = await controlPlane(runCtx);
    if (request.lease) return await reuseRun(runCtx, plane, request, prepared, request.lease);
    return await freshRun(runCtx, plane, request, prepared);
  } finally {
    progress.stop();
  }
}
