import type {
  LambdaMicrovmsClient,
  RunMicrovmCommandInput,
  RunMicrovmCommandOutput,
} from "@aws-sdk/client-lambda-microvms";
import { CrabboxError } from "../../core/errors.ts";
import { RUNNER_PORT } from "../../protocol/types.ts";
import type { ProviderContext } from "../provider.ts";
import { type ControlPlaneEndpoint, resolveControlPlaneEndpoint } from "./endpoint.ts";
import type { CachedToken } from "./token-cache.ts";

/**
 * The AWS Lambda MicroVMs control plane, as the rest of the provider sees it: a handful of typed
 * calls over `@aws-sdk/client-lambda-microvms` (imported on first use, so `--help` never loads the
 * SDK). The region is always explicit and the endpoint is the one crabbox resolved itself. Against
 * a loopback endpoint (the emulator) requests are signed with static dummy credentials, so a real
 * identity's signature never reaches a local listener; otherwise the SDK's standard chain applies.
 */

export type MicrovmState = "PENDING" | "RUNNING" | "SUSPENDING" | "SUSPENDED" | "TERMINATING" | "TERMINATED";

/** GetMicrovm / RunMicrovm output, with the fields crabbox uses. */
export interface Microvm {
  microvmId: string;
  /** Upper case as AWS reports it; `UNKNOWN` when absent. */
  state: string;
  /** Host only (no scheme), as AWS returns it; validated before any data-plane use. */
  endpoint: string;
  imageArn: string;
  imageVersion: string;
  stateReason: string | undefined;
  /** Epoch ms, when AWS reported it. */
  startedAtMs: number | undefined;
  maximumDurationInSeconds: number | undefined;
}

/** One ListMicrovms item. */
export interface MicrovmSummary {
  microvmId: string;
  state: string;
  imageArn: string;
  imageVersion: string;
  startedAtMs: number | undefined;
}

/** The exact RunMicrovm input crabbox sends; stored in the claim so cleanup can replay it unchanged. */
export interface RunMicrovmInput {
  clientToken: string;
  imageIdentifier: string;
  imageVersion?: string;
  executionRoleArn?: string;
  ingressNetworkConnectors: string[];
  egressNetworkConnectors: string[];
  maximumDurationInSeconds: number;
  idlePolicy?: {
    autoResumeEnabled: boolean;
    maxIdleDurationSeconds: number;
    suspendedDurationSeconds: number;
  };
}

export interface ListMicrovmsFilter {
  imageIdentifier?: string;
  imageVersion?: string;
  /** Stop after this many items (across pages); default: every page. */
  limit?: number;
}

export interface ControlPlane {
  readonly region: string;
  /** The endpoint passed to the SDK; undefined = the SDK's regional default. */
  readonly endpoint: ControlPlaneEndpoint | undefined;
  /** The endpoint is a loopback literal: the local emulator. */
  readonly emulator: boolean;
  /**
   * CRABBOX_TIME_SCALE, honoured only in emulator mode (a test knob matching the emulator's
   * `--time-scale`): crabbox's own timers and token lifetimes are multiplied by it. Always 1 on AWS.
   */
  readonly timeScale: number;
  runMicrovm(input: RunMicrovmInput, signal?: AbortSignal): Promise<Microvm>;
  getMicrovm(microvmId: string, signal?: AbortSignal): Promise<Microvm>;
  listMicrovms(filter?: ListMicrovmsFilter, signal?: AbortSignal): Promise<MicrovmSummary[]>;
  /** Idempotent on AWS; not-found surfaces as a ControlPlaneError with `notFound`. */
  terminateMicrovm(microvmId: string, signal?: AbortSignal): Promise<void>;
  suspendMicrovm(microvmId: string, signal?: AbortSignal): Promise<void>;
  resumeMicrovm(microvmId: string, signal?: AbortSignal): Promise<void>;
  /** A port-8080 data-plane token and when it expires (on the local clock). */
  createAuthToken(microvmId: string, signal?: AbortSignal): Promise<CachedToken>;
  close(): void;
}

/** Every failed control-plane call: `aws-lambda-microvm <Operation> <id>: <AWS error>: <message>`. */
export class ControlPlaneError extends CrabboxError {
  /** e.g. `GetMicrovm`. */
  readonly operation: string;
  /** The AWS error name (`ResourceNotFoundException`, `AccessDeniedException`, …) or the JS error name. */
  readonly code: string;
  /** HTTP status of the AWS response, when there was one. */
  readonly status: number | undefined;
  /** The MicroVM (or image) does not exist: ResourceNotFoundException, or "not found" in the message. */
  readonly notFound: boolean;

  constructor(
    operation: string,
    target: string | undefined,
    code: string,
    detail: string,
    options: { status?: number; hint?: string; cause?: unknown },
  ) {
    super(`aws-lambda-microvm ${operation}${target ? ` ${target}` : ""}: ${code}: ${detail}`, {
      hint: options.hint,
      cause: options.cause,
    });
    this.operation = operation;
    this.code = code;
    this.status = options.status;
    this.notFound = code === "ResourceNotFoundException" || /not found/i.test(detail);
  }
}

/** Whether an error says the MicroVM is gone (upstream's not-found detection). */
export function isNotFound(error: unknown): boolean {
  if (error instanceof ControlPlaneError) return error.notFound;
  const name = (error as { name?: unknown } | null)?.name;
  const message = error instanceof Error ? error.message : String(error);
  return name === "ResourceNotFoundException" || /not found/i.test(message);
}

/** Token lifetime crabbox asks for: the documented maximum, so one mint serves a whole session. */
export const TOKEN_MINUTES = 60;

const CREDENTIAL_HINT =
  "crabbox uses the standard AWS credential chain: set AWS_PROFILE (and run `aws sso login` for SSO), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `crabbox doctor` checks it";

function hintFor(code: string, status: number | undefined, emulator: boolean): string | undefined {
  if (code === "CredentialsProviderError" || /credential/i.test(code)) return CREDENTIAL_HINT;
  if (code === "AccessDeniedException" || status === 403) {
    return "the AWS identity lacks a Lambda MicroVMs permission (RunMicrovm, GetMicrovm, ListMicrovms, CreateMicrovmAuthToken, SuspendMicrovm, ResumeMicrovm, TerminateMicrovm; iam:PassRole with an execution role)";
  }
  if (code === "ServiceQuotaExceededException" || code === "InsufficientCapacityException") {
    return "stop leases you no longer need (`crabbox list`, `crabbox stop`) or ask AWS for a higher quota";
  }
  if (code === "ThrottlingException") return "the API is rate limiting this account; retry shortly";
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|TimeoutError/.test(code)) {
    return emulator
      ? "is the emulator running? start it with `crabbox emulator`"
      : "check the network and the control-plane endpoint (--aws-lambda-microvm-endpoint, AWS_ENDPOINT_URL_LAMBDA_MICROVMS)";
  }
  return undefined;
}

/**
 * An SDK failure as the CrabboxError users see: the AWS error code (or Node's network code), the
 * message, and a hint chosen by the caller (the provider and the image commands advise differently).
 */
export function sdkError(
  operation: string,
  target: string | undefined,
  error: unknown,
  hint: (code: string, status: number | undefined) => string | undefined,
): CrabboxError {
  if (error instanceof CrabboxError) return error;
  const err = error as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  } | null;
  const status = err?.$metadata?.httpStatusCode;
  const code = err?.code && /^[A-Z][A-Z_]+$/.test(err.code) ? err.code : (err?.name ?? "Error");
  const detail = (err?.message ?? String(error)).trim() || (status ? `HTTP ${status}` : "request failed");
  return new ControlPlaneError(operation, target, code, detail, {
    status,
    hint: hint(code, status),
    cause: error,
  });
}

function wrapError(operation: string, target: string | undefined, error: unknown, emulator: boolean) {
  return sdkError(operation, target, error, (code, status) => hintFor(code, status, emulator));
}

function toMs(value: Date | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : value * 1000;
  return Number.isFinite(ms) ? ms : undefined;
}

function microvmOf(output: RunMicrovmCommandOutput): Microvm {
  return {
    microvmId: output.microvmId ?? "",
    state: (output.state ?? "UNKNOWN").toUpperCase(),
    endpoint: output.endpoint ?? "",
    imageArn: output.imageArn ?? "",
    imageVersion: output.imageVersion ?? "",
    stateReason: output.stateReason || undefined,
    startedAtMs: toMs(output.startedAt),
    maximumDurationInSeconds: output.maximumDurationInSeconds,
  };
}

/** CRABBOX_TIME_SCALE as a positive factor; anything else is 1. */
export function parseTimeScale(value: string | undefined): number {
  const scale = Number(value);
  return value !== undefined && value.trim() !== "" && Number.isFinite(scale) && scale > 0 ? scale : 1;
}

export interface ControlPlaneOptions {
  region: string;
  endpoint: ControlPlaneEndpoint | undefined;
  env?: Readonly<Record<string, string | undefined>>;
  /** Where the one-time emulator banner goes. */
  announce?: (line: string) => void;
  now?: () => number;
}

type Sdk = typeof import("@aws-sdk/client-lambda-microvms");

/**
 * Builds a control plane. The SDK is imported, and its client made, by the first call that needs
 * it: a warm `run --id` whose claim and token cache answer everything makes no control-plane call,
 * and loading the SDK was a third of its time (about 40 ms of ~120 ms of CPU).
 */
export async function createControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { region, endpoint } = options;
  const emulator = endpoint?.emulator === true;
  const now = options.now ?? Date.now;
  const timeScale = emulator ? parseTimeScale((options.env ?? process.env).CRABBOX_TIME_SCALE) : 1;
  if (emulator) options.announce?.(`emulator mode: control plane ${endpoint?.url}`);
  let loaded: Promise<{ sdk: Sdk; client: LambdaMicrovmsClient }> | undefined;
  const sdkClient = () => {
    loaded ??= import("@aws-sdk/client-lambda-microvms").then((sdk) => ({
      sdk,
      client: new sdk.LambdaMicrovmsClient({
        region,
        ...(endpoint ? { endpoint: endpoint.url } : {}),
        // Emulator: fixed dummies, so the user's real credential chain is never even consulted.
        ...(emulator
          ? { credentials: { accessKeyId: "AKIDCRABBOXEMULATOR", secretAccessKey: "emulator" } }
          : {}),
      }),
    }));
    return loaded;
  };

  async function call<T>(
    operation: string,
    target: string | undefined,
    signal: AbortSignal | undefined,
    fn: (sdk: Sdk, client: LambdaMicrovmsClient) => Promise<T>,
  ): Promise<T> {
    try {
      const { sdk, client } = await sdkClient();
      return await fn(sdk, client);
    } catch (error) {
      // Cancelled by the caller (Ctrl-C, a deadline): that reason, not the SDK's AbortError.
      if (signal?.aborted) throw wrapError(operation, target, signal.reason, emulator);
      throw wrapError(operation, target, error, emulator);
    }
  }
  const opts = (signal: AbortSignal | undefined) => (signal ? { abortSignal: signal } : undefined);

  return {
    region,
    endpoint,
    emulator,
    timeScale,
    runMicrovm: (input, signal) =>
      call("RunMicrovm", input.clientToken, signal, async (sdk, client) =>
        microvmOf(
          await client.send(new sdk.RunMicrovmCommand(input as RunMicrovmCommandInput), opts(signal)),
        ),
      ),
    getMicrovm: (microvmId, signal) =>
      call("GetMicrovm", microvmId, signal, async (sdk, client) =>
        microvmOf(
          await client.send(new sdk.GetMicrovmCommand({ microvmIdentifier: microvmId }), opts(signal)),
        ),
      ),
    listMicrovms: (filter = {}, signal) =>
      call("ListMicrovms", filter.imageIdentifier, signal, async (sdk, client) => {
        const items: MicrovmSummary[] = [];
        let nextToken: string | undefined;
        do {
          const remaining = filter.limit === undefined ? 50 : Math.min(50, filter.limit - items.length);
          const page = await client.send(
            new sdk.ListMicrovmsCommand({
              imageIdentifier: filter.imageIdentifier,
              imageVersion: filter.imageVersion,
              maxResults: Math.max(1, remaining),
              nextToken,
            }),
            opts(signal),
          );
          for (const item of page.items ?? []) {
            items.push({
              microvmId: item.microvmId ?? "",
              state: (item.state ?? "UNKNOWN").toUpperCase(),
              imageArn: item.imageArn ?? "",
              imageVersion: item.imageVersion ?? "",
              startedAtMs: toMs(item.startedAt),
            });
          }
          nextToken = page.nextToken || undefined;
        } while (nextToken && (filter.limit === undefined || items.length < filter.limit));
        return filter.limit === undefined ? items : items.slice(0, filter.limit);
      }),
    terminateMicrovm: (microvmId, signal) =>
      call("TerminateMicrovm", microvmId, signal, async (sdk, client) => {
        await client.send(new sdk.TerminateMicrovmCommand({ microvmIdentifier: microvmId }), opts(signal));
      }),
    suspendMicrovm: (microvmId, signal) =>
      call("SuspendMicrovm", microvmId, signal, async (sdk, client) => {
        await client.send(new sdk.SuspendMicrovmCommand({ microvmIdentifier: microvmId }), opts(signal));
      }),
    resumeMicrovm: (microvmId, signal) =>
      call("ResumeMicrovm", microvmId, signal, async (sdk, client) => {
        await client.send(new sdk.ResumeMicrovmCommand({ microvmIdentifier: microvmId }), opts(signal));
      }),
    createAuthToken: (microvmId, signal) =>
      call("CreateMicrovmAuthToken", microvmId, signal, async (sdk, client) => {
        const requestedAt = now();
        const output = await client.send(
          new sdk.CreateMicrovmAuthTokenCommand({
            microvmIdentifier: microvmId,
            expirationInMinutes: TOKEN_MINUTES,
            allowedPorts: [{ port: RUNNER_PORT }],
          }),
          opts(signal),
        );
        // Read exactly this key: the map may grow other token schemes later.
        const token = output.authToken?.["X-aws-proxy-auth"]?.trim() ?? "";
        if (token === "") {
          throw new CrabboxError("AWS Lambda MicroVM auth response omitted X-aws-proxy-auth");
        }
        // Measured from before the request, so the local expiry is never later than AWS's.
        return { token, expiresAtMs: requestedAt + TOKEN_MINUTES * 60_000 * timeScale };
      }),
    close: () => {
      void loaded?.then(({ client }) => client.destroy()).catch(() => {});
    },
  };
}

const perContext = new WeakMap<ProviderContext, Promise<ControlPlane>>();
/** The emulator banner is said once per process, however many contexts (run, rollback) make a plane. */
let bannerSaid = false;

/**
 * The control plane of one command invocation: the endpoint resolved from the flag, the
 * CRABBOX_/AWS_ endpoint variables and the user config (never a repository file), created once per
 * context so the emulator banner is printed once.
 */
export function controlPlane(ctx: ProviderContext): Promise<ControlPlane> {
  let plane = perContext.get(ctx);
  if (!plane) {
    const configured = ctx.config.awsLambdaMicroVM.endpoint;
    const source = ctx.config.sources["awsLambdaMicroVM.endpoint"]?.source;
    const endpoint = resolveControlPlaneEndpoint({
      flag: source === "flag" ? configured : undefined,
      env: process.env,
      userConfig: source === "user" ? configured : undefined,
    });
    plane = createControlPlane({
      region: ctx.scope,
      endpoint,
      env: process.env,
      announce: (line) => {
        if (bannerSaid) return;
        bannerSaid = true;
        ctx.report.info(line);
      },
    });
    perContext.set(ctx, plane);
    // A failed creation must not be cached: the next call retries.
    plane.catch(() => perContext.delete(ctx));
  }
  return plane;
}
