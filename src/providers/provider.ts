import type { ResolvedConfig } from "../config/resolve.ts";
import type { DownloadSpec } from "../core/artifacts.ts";
import type { Claim } from "../core/claims.ts";
import type { ForcedExitHook } from "../core/interrupt.ts";
import type { RunRecorder } from "../core/run-summary.ts";
import type { SyncPreview } from "../sync/preview.ts";

/**
 * The provider contract. A provider is a declared spec plus lifecycle functions; the CLI checks the
 * spec (features, targets) before acting, so an unsupported operation is refused up front instead
 * of failing half-way. Commands own parsing and output; a backend does the work and reports
 * progress through `ProviderContext.report` — it never prints.
 */

export type ProviderFeature = "archive-sync" | "pause-resume" | "cleanup" | "run-session";

export interface ProviderTarget {
  os: "linux";
  arch: "arm64" | "amd64";
}

export interface ProviderSpec {
  /** The name users type (`--provider`, `CRABBOX_PROVIDER`, `provider:`), lowercase. */
  readonly name: string;
  /** The cloud it belongs to, e.g. `aws`. */
  readonly family: string;
  /** `delegated-run`: no SSH; the provider owns sync and command execution. */
  readonly kind: "delegated-run";
  readonly targets: readonly ProviderTarget[];
  readonly features: readonly ProviderFeature[];
  /** The flag that selects another claim scope (region), named in "lease not found" hints. */
  readonly scopeFlag: string;
}

/** Which command is running; validation differs (only run, warmup and doctor need an image). */
export type CommandName =
  | "run"
  | "warmup"
  | "status"
  | "list"
  | "stop"
  | "pause"
  | "resume"
  | "cleanup"
  | "doctor"
  | "sync-plan";

/** Progress a backend reports; the command decides how it is shown (stderr lines today). */
export interface Reporter {
  /** A human progress line, e.g. `provisioning provider=… lease=…`. */
  info(line: string): void;
  warn(message: string): void;
  debug(message: string): void;
  /** Remote command output, byte for byte. */
  stdout(chunk: Uint8Array): void;
  stderr(chunk: Uint8Array): void;
}

export interface ProviderContext {
  readonly config: ResolvedConfig;
  /** The claim scope of this config (the AWS region). */
  readonly scope: string;
  /** `$XDG_STATE_HOME/crabbox` or its fallback: claims and locks live here. */
  readonly stateDir: string;
  readonly report: Reporter;
  /** Fires on Ctrl-C or a deadline; backends stop waiting and roll back. */
  readonly signal: AbortSignal;
  /**
   * Registers what a forced exit (a second Ctrl-C) must still say or do, synchronously: lines naming
   * what is left running and how to stop it. Returns the unregister function. Leases this process
   * owns are named without registering.
   */
  readonly onForcedExit?: (hook: ForcedExitHook) => () => void;
}

export interface WarmupRequest {
  /** Normalised requested slug; undefined = generated. */
  slug: string | undefined;
  reclaim: boolean;
  timingJson: boolean;
  /** `--keep=false` was given: warmup keeps the lease anyway and warns. */
  keepDisabled: boolean;
}

export interface LeaseSummary {
  leaseId: string;
  slug: string;
  cloudId: string;
  scope: string;
  imageVersion: string;
}

export interface WarmupResult extends LeaseSummary {
  totalMs: number;
}

export interface RunRequest {
  /** The remote command words, untouched. */
  command: readonly string[];
  /** `--shell`: the words joined by spaces are the script. */
  shell: boolean;
  /** The claim of `--id` (already resolved and in scope); undefined = a fresh lease. */
  lease: Claim | undefined;
  /** The raw `--id` argument as typed (upstream passes it on as CRABBOX_LEASE_ID). */
  leaseArgument: string | undefined;
  slug: string | undefined;
  keep: boolean;
  keepOnFailure: boolean;
  /** False with `--no-sync`. */
  sync: boolean;
  syncOnly: boolean;
  reclaim: boolean;
  timingJson: boolean;
  /** Local working directory the remote command mirrors (`--cwd`), relative to the repo root. */
  cwd: string | undefined;
  /** Chosen by the command so the summary and the artifact dir name the same run. */
  runId?: string;
  /** The local stdin to stream to the command (a FIFO or file, or `--stdin`); undefined = empty. */
  stdin?: () => ReadableStream<Uint8Array>;
  /** `--timeout`: the remote command is stopped after this long (exit 124). */
  timeoutMs?: number;
  /** `--download`: fetched after the command, whatever its exit code. */
  downloads?: readonly DownloadSpec[];
  /** `--artifact-dir`, absolute; undefined = `<repo root>/.crabbox/runs/<run id>`. */
  artifactDir?: string;
  /** `--require-artifact`: a missing or stale download fails the run (exit 7). */
  requireArtifacts?: boolean;
  /** `--clean`: remove unsynced files in the workdir except `sync.keep`. */
  clean?: boolean;
  /** Collects what the run did for `--json-summary`. */
  recorder?: RunRecorder;
}

export interface RunResult {
  /** The process exit code: the remote command's own code on the command path. */
  exitCode: number;
}

/** `crabbox status` view; the JSON field order is upstream's (§2.4). */
export interface LeaseStatus {
  id: string;
  slug: string;
  provider: string;
  target: string;
  state: string;
  serverId: string;
  serverType: string;
  host: string;
  network: string;
  labels: Record<string, string>;
  ready: boolean;
}

export interface StatusRequest {
  wait: boolean;
  waitTimeoutMs: number;
}

/** One `crabbox list` entry (upstream's server object, §2.5). */
export interface LeaseListing {
  cloudId: string;
  name: string;
  status: string;
  imageVersion: string;
  endpoint: string;
  labels: Record<string, string>;
}

export interface ListRequest {
  /** Also ask the provider for machines crabbox created that this machine has no claim for. */
  remote: boolean;
}

export interface CleanupRequest {
  dryRun: boolean;
  /** Also consider MicroVMs crabbox created that have no local claim. */
  orphans: boolean;
}

export interface CleanupOutcome {
  cloudId: string;
  leaseId: string | undefined;
  action: "skip" | "terminate";
  reason: string;
}

export type DoctorStatus = "ok" | "failed" | "missing" | "skip";

export interface DoctorCheck {
  status: DoctorStatus;
  check: string;
  message?: string;
  details?: Record<string, string>;
}

export interface DoctorRequest {
  /** `--id`: also check this lease. */
  lease: Claim | undefined;
}

/** The lifecycle functions; loaded lazily so `--help` and `config show` never load the AWS SDK. */
export interface ProviderBackend {
  warmup(ctx: ProviderContext, request: WarmupRequest): Promise<WarmupResult>;
  run(ctx: ProviderContext, request: RunRequest): Promise<RunResult>;
  status(ctx: ProviderContext, lease: Claim, request: StatusRequest): Promise<LeaseStatus>;
  list(ctx: ProviderContext, request: ListRequest): Promise<LeaseListing[]>;
  stop(ctx: ProviderContext, lease: Claim): Promise<void>;
  pause(ctx: ProviderContext, lease: Claim): Promise<void>;
  resume(ctx: ProviderContext, lease: Claim): Promise<void>;
  cleanup(ctx: ProviderContext, request: CleanupRequest): Promise<CleanupOutcome[]>;
  doctor(ctx: ProviderContext, request: DoctorRequest): Promise<DoctorCheck[]>;
  /** `sync-plan --id`: what a run on the lease would send, against its runner's manifest. */
  syncPlan(ctx: ProviderContext, lease: Claim): Promise<SyncPreview>;
}

export interface Provider {
  readonly spec: ProviderSpec;
  /** The claim scope a config selects (the AWS region). */
  scope(config: ResolvedConfig): string;
  /** Checks the provider's settings; throws a CrabboxError with upstream's message and exit code. */
  validate(config: ResolvedConfig, command: CommandName): void;
  backend(): Promise<ProviderBackend>;
}

export function hasFeature(spec: ProviderSpec, feature: ProviderFeature): boolean {
  return spec.features.includes(feature);
}
