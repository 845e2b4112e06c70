import { scanClaims } from "../../core/claims.ts";
import { describeError } from "../../core/errors.ts";
import type { DoctorCheck, DoctorRequest, ProviderContext } from "../provider.ts";
import { claimOwner, ownerGone } from "./cleanup.ts";
import { type ControlPlane, ControlPlaneError, controlPlane, isNotFound } from "./control-plane.ts";
import { LAUNCH_REGIONS, spec } from "./spec.ts";

/**
 * The provider half of `crabbox doctor` (the command adds config, selection and tool checks):
 * credentials or emulator mode, the region, one read-only ListMicrovms, the local claims, and
 * with `--id` that lease's MicroVM. Nothing here creates, changes or wakes a MicroVM. Every failure
 * carries upstream's class and hint tokens (scripts branch on them) plus advice for a human.
 */

/** Upstream bounds the provider probe to 10 s. */
const PROBE_TIMEOUT_MS = 10_000;

export type FailureClass = "timeout" | "tool" | "config" | "auth" | "network" | "provider";

const HINTS: Record<FailureClass, string> = {
  timeout: "retry_or_check_provider_status",
  tool: "install_provider_cli",
  config: "check_crabbox_provider_config",
  auth: "check_provider_auth_and_config",
  network: "check_network_and_provider_endpoint",
  provider: "check_provider_auth_and_config",
};

/** Upstream's keyword classification of an error text, first match wins. */
export function classifyFailure(text: string): FailureClass {
  if (/timed out|timeout|deadline/i.test(text)) return "timeout";
  if (/not found in \$path|no such file/i.test(text)) return "tool";
  if (/missing|required|not configured/i.test(text)) return "config";
  if (/unauthorized|forbidden|permission|denied|credential|token|401|403/i.test(text)) return "auth";
  if (/connection refused|no such host|network|dial|tls|econnrefused|enotfound|eai_again/i.test(text)) {
    return "network";
  }
  return "provider";
}

function failed(
  check: string,
  error: unknown,
  advice: string | undefined,
  extra: Record<string, string> = {},
): DoctorCheck {
  const text = describeError(error);
  const klass = isImageMissing(error) ? "config" : classifyFailure(text);
  const hint = HINTS[klass];
  const details: Record<string, string> = {
    provider: spec.name,
    class: klass,
    hint,
    error: text,
    ...extra,
  };
  const why = advice ?? (error instanceof ControlPlaneError ? error.hint : undefined);
  if (why) details.advice = why;
  return {
    status: "failed",
    check,
    message: `provider=${spec.name} class=${klass} hint=${hint} ${text}${why ? `; ${why}` : ""}`,
    details,
  };
}

/** ListMicrovms answers ResourceNotFound when the configured image does not exist. */
function isImageMissing(error: unknown): boolean {
  return error instanceof ControlPlaneError && error.operation === "ListMicrovms" && error.notFound;
}

/** A signal that fires on Ctrl-C or after the probe timeout. */
function probeSignal(ctx: ProviderContext): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]);
}

function withTimeoutText(ctx: ProviderContext, error: unknown, signal: AbortSignal): unknown {
  // Ctrl-C is not a finding: let it end the command (exit 130).
  if (ctx.signal.aborted) throw ctx.signal.reason;
  // The SDK reports an aborted request as a bare AbortError; say which bound fired.
  if (signal.aborted && !(error instanceof ControlPlaneError && error.code !== "AbortError")) {
    return new Error(`timed out after ${PROBE_TIMEOUT_MS / 1000}s: ${describeError(error)}`);
  }
  return error;
}

/** Resolves the standard AWS credential chain exactly as the control-plane client would. */
async function resolveCredentials(region: string, signal: AbortSignal): Promise<{ expiration?: Date }> {
  const sdk = await import("@aws-sdk/client-lambda-microvms");
  const client = new sdk.LambdaMicrovmsClient({ region });
  try {
    const pending = client.config.credentials();
    const aborted = new Promise<never>((_, reject) => {
      const fail = () =>
        reject(new Error(`timed out after ${PROBE_TIMEOUT_MS / 1000}s resolving credentials`));
      if (signal.aborted) fail();
      signal.addEventListener("abort", fail, { once: true });
    });
    return await Promise.race([pending, aborted]);
  } finally {
    client.destroy();
  }
}

async function credentialsCheck(ctx: ProviderContext, plane: ControlPlane): Promise<DoctorCheck> {
  const controlPlaneUrl = plane.endpoint?.url ?? `https://lambda.${ctx.scope}.amazonaws.com`;
  if (plane.emulator) {
    return {
      status: "ok",
      check: "credentials",
      message: `mode=emulator control_plane=${controlPlaneUrl} credentials=static-dummy`,
      details: { mode: "emulator", control_plane: controlPlaneUrl, credentials: "static-dummy" },
    };
  }
  const signal = probeSignal(ctx);
  try {
    const identity = await resolveCredentials(ctx.scope, signal);
    const expires = identity.expiration ? identity.expiration.toISOString() : "-";
    // Never the key id or anything derived from the secret: doctor output gets pasted into issues.
    return {
      status: "ok",
      check: "credentials",
      message: `mode=aws control_plane=${controlPlaneUrl} credentials=ready expires=${expires}`,
      details: { mode: "aws", control_plane: controlPlaneUrl, credentials: "ready", expires },
    };
  } catch (error) {
    return failed(
      "credentials",
      withTimeoutText(ctx, error, signal),
      "crabbox uses the standard AWS credential chain: set AWS_PROFILE (and run `aws sso login` for SSO), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
      { mode: "aws", control_plane: controlPlaneUrl },
    );
  }
}

function regionCheck(ctx: ProviderContext, plane: ControlPlane): DoctorCheck {
  const region = ctx.scope;
  const launch = (LAUNCH_REGIONS as readonly string[]).includes(region);
  const availability = plane.emulator ? "emulator" : launch ? "launch_region" : "unverified";
  return {
    status: "ok",
    check: "region",
    message: `region=${region} availability=${availability}${
      availability === "unverified"
        ? ` (not a documented launch region: ${LAUNCH_REGIONS.join(", ")}; the provider check below proves it)`
        : ""
    }`,
    details: { region, availability },
  };
}

function regionAdvice(ctx: ProviderContext, plane: ControlPlane, error: unknown): string | undefined {
  if (isImageMissing(error)) {
    return `no image ${ctx.config.awsLambdaMicroVM.image} in ${ctx.scope}: check awsLambdaMicroVM.image (and its region), or build it (docs/provider-aws-lambda-microvm.md)`;
  }
  const launch = (LAUNCH_REGIONS as readonly string[]).includes(ctx.scope);
  if (!plane.emulator && !launch && classifyFailure(describeError(error)) === "network") {
    return `Lambda MicroVMs may not be available in ${ctx.scope}; launch regions: ${LAUNCH_REGIONS.join(", ")}`;
  }
  return undefined;
}

async function providerCheck(
  ctx: ProviderContext,
  plane: ControlPlane,
  leases: number,
): Promise<DoctorCheck> {
  const image = ctx.config.awsLambdaMicroVM.image?.trim() ?? "";
  const version = ctx.config.awsLambdaMicroVM.imageVersion?.trim() || undefined;
  const signal = probeSignal(ctx);
  try {
    await plane.listMicrovms({ imageIdentifier: image, imageVersion: version, limit: 1 }, signal);
  } catch (error) {
    return failed("provider", withTimeoutText(ctx, error, signal), regionAdvice(ctx, plane, error), {
      timeout: `${PROBE_TIMEOUT_MS / 1000}s`,
    });
  }
  const details: Record<string, string> = {
    provider: spec.name,
    timeout: `${PROBE_TIMEOUT_MS / 1000}s`,
    auth: "ready",
    control_plane: "ready",
    inventory: "ready",
    api: "list",
    mutation: "false",
    leases: String(leases),
    runtime: "unchecked",
    region: ctx.scope,
    image,
  };
  const order = [
    "timeout",
    "auth",
    "control_plane",
    "inventory",
    "api",
    "mutation",
    "leases",
    "runtime",
    "region",
    "image",
  ];
  return {
    status: "ok",
    check: "provider",
    message: `provider=${spec.name} ${order.map((key) => `${key}=${details[key]}`).join(" ")}`,
    details,
  };
}

interface ClaimCounts {
  check: DoctorCheck;
  inScope: number;
}

/** Every claim file readable and well-formed; counts what cleanup would have to look at. */
async function claimsCheck(ctx: ProviderContext): Promise<ClaimCounts> {
  const { claims, problems } = await scanClaims(ctx.stateDir);
  const mine = claims.filter((claim) => claim.provider === spec.name);
  const inScope = mine.filter((claim) => claim.providerScope === ctx.scope);
  const provisioning = inScope.filter((claim) => !claim.cloudID).length;
  const abandoned = inScope.filter((claim) => {
    const owner = claimOwner(claim);
    return owner !== undefined && (claim.labels?.keep ?? "") !== "true" && ownerGone(owner);
  }).length;
  const counts = `claims=${claims.length} leases=${inScope.length} other_regions=${mine.length - inScope.length} provisioning=${provisioning} abandoned=${abandoned}`;
  const details: Record<string, string> = {
    claims: String(claims.length),
    leases: String(inScope.length),
    other_regions: String(mine.length - inScope.length),
    provisioning: String(provisioning),
    abandoned: String(abandoned),
    state_dir: ctx.stateDir,
  };
  const first = problems[0];
  if (first) {
    return {
      inScope: inScope.length,
      check: {
        status: "failed",
        check: "claims",
        message: `class=config hint=check_local_claims ${problems.length} unreadable claim file(s): ${first.message}${
          first.hint ? `; ${first.hint}` : ""
        }`,
        details: { ...details, class: "config", hint: "check_local_claims", error: first.message },
      },
    };
  }
  const advice = abandoned > 0 ? " (abandoned leases: `crabbox cleanup` terminates them)" : "";
  return {
    inScope: inScope.length,
    check: { status: "ok", check: "claims", message: `${counts}${advice}`, details },
  };
}

async function leaseCheck(
  ctx: ProviderContext,
  plane: ControlPlane,
  request: DoctorRequest,
): Promise<DoctorCheck> {
  const lease = request.lease;
  if (!lease) throw new Error("leaseCheck needs a lease");
  const signal = probeSignal(ctx);
  try {
    const vm = await plane.getMicrovm(lease.cloudID, signal);
    const state = vm.state.toLowerCase();
    const terminal = state === "terminated" || state === "terminating";
    const message = `lease=${lease.leaseID} slug=${lease.slug} microvm=${vm.microvmId} state=${state} endpoint=${vm.endpoint || "-"}`;
    const details = { lease: lease.leaseID, slug: lease.slug, microvm: vm.microvmId, state };
    if (!terminal) return { status: "ok", check: "lease", message, details };
    return {
      status: "failed",
      check: "lease",
      message: `${message} class=provider hint=check_provider_auth_and_config; the MicroVM is gone: \`crabbox stop ${lease.slug}\` forgets the lease`,
      details: { ...details, class: "provider", hint: "check_provider_auth_and_config" },
    };
  } catch (error) {
    const advice = isNotFound(error)
      ? `the MicroVM no longer exists: \`crabbox stop ${lease.slug} --aws-lambda-microvm-forget-missing\` forgets the lease`
      : undefined;
    return failed("lease", withTimeoutText(ctx, error, signal), advice, { lease: lease.leaseID });
  }
}

export async function doctor(ctx: ProviderContext, request: DoctorRequest): Promise<DoctorCheck[]> {
  const plane = await controlPlane(ctx);
  const claims = await claimsCheck(ctx);
  const credentials = await credentialsCheck(ctx, plane);
  const checks: DoctorCheck[] = [credentials, regionCheck(ctx, plane)];
  // Without credentials the API probe can only repeat the same failure, slower.
  if (credentials.status === "ok") checks.push(await providerCheck(ctx, plane, claims.inScope));
  checks.push(claims.check);
  if (request.lease && credentials.status === "ok") checks.push(await leaseCheck(ctx, plane, request));
  return checks;
}
