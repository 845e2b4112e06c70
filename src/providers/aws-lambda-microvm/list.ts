import { type Claim, listClaims } from "../../core/claims.ts";
import { formatDuration } from "../../core/duration.ts";
import { CrabboxError, ExitCode } from "../../core/errors.ts";
import { directLeaseLabels, type Labels } from "../../core/labels.ts";
import type { LeaseListing, ListRequest, ProviderContext } from "../provider.ts";
import {
  type ControlPlane,
  controlPlane,
  isNotFound,
  type Microvm,
  type MicrovmSummary,
} from "./control-plane.ts";
import { spec } from "./spec.ts";

/**
 * `crabbox list` (upstream §2.5): this machine's claims in the current region, each with its live
 * MicroVM state; `--remote` adds orphans — MicroVMs of the configured image that no local claim
 * knows (a claim deleted by hand, a crash before the claim got its cloud id, another checkout's
 * state dir) — with their age, so they can be found and stopped.
 */

/** What list shows for a claim whose MicroVM GetMicrovm no longer finds (upstream's wording). */
export const MISSING_STATE = "missing-or-inaccessible";

/** GetMicrovm calls in flight at once: enough to hide latency, few enough to stay off the throttle. */
const CONCURRENCY = 8;

/** Maps `items` through `fn` with at most `limit` calls in flight, keeping the order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** This provider's claims in the current scope (region); a corrupt claim fails the listing (exit 2). */
export async function scopedClaims(ctx: ProviderContext): Promise<Claim[]> {
  return (await listClaims(ctx.stateDir)).filter(
    (claim) => claim.provider === spec.name && claim.providerScope === ctx.scope,
  );
}

/**
 * A lease's labels as list and status show them (upstream): fresh base labels, overlaid by what
 * the claim recorded (stored labels win), then the live facts from AWS.
 */
export function leaseLabels(ctx: ProviderContext, claim: Claim, vm: Microvm | undefined): Labels {
  const stored = claim.labels ?? {};
  const labels: Labels = {
    ...directLeaseLabels({
      provider: spec.name,
      leaseId: claim.leaseID,
      slug: claim.slug,
      keep: (stored.keep ?? "").toLowerCase() === "true",
      now: new Date(),
      idleMs: ctx.config.idleTimeout,
      ttlMs: ctx.config.ttl,
      pond: claim.pond,
    }),
    ...stored,
  };
  if (!vm) {
    labels.state = claim.cloudID ? MISSING_STATE : provisioningState(claim);
    return labels;
  }
  labels.state = vm.state.toLowerCase();
  labels.aws_region = ctx.scope;
  labels.image_arn = vm.imageArn;
  labels.image_version = vm.imageVersion;
  labels.endpoint = vm.endpoint;
  return labels;
}

/** What a claim without a cloud id is doing: its recorded state, else `provisioning`. */
export function provisioningState(claim: Claim): string {
  return typeof claim.state === "string" && claim.state !== "" ? claim.state : "provisioning";
}

/** A claim's live MicroVM, or undefined when AWS no longer knows it; any other error fails. */
export async function findMicrovm(
  plane: ControlPlane,
  microvmId: string,
  signal: AbortSignal,
): Promise<Microvm | undefined> {
  try {
    return await plane.getMicrovm(microvmId, signal);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export interface ClaimView {
  claim: Claim;
  /** Undefined: the claim has no cloud id yet, or AWS no longer finds its MicroVM. */
  vm: Microvm | undefined;
  listing: LeaseListing;
}

/** Every in-scope claim with its live MicroVM (claims still provisioning are shown without one). */
export async function claimViews(ctx: ProviderContext, plane: ControlPlane): Promise<ClaimView[]> {
  const claims = await scopedClaims(ctx);
  return mapLimited(claims, CONCURRENCY, async (claim) => {
    const vm = claim.cloudID ? await findMicrovm(plane, claim.cloudID, ctx.signal) : undefined;
    const labels = leaseLabels(ctx, claim, vm);
    const listing: LeaseListing = {
      cloudId: claim.cloudID || "-",
      name: claim.slug,
      status: labels.state as string,
      imageVersion: vm?.imageVersion ?? labels.image_version ?? "",
      endpoint: vm?.endpoint ?? labels.endpoint ?? "",
      labels,
    };
    return { claim, vm, listing };
  });
}

/** States in which a MicroVM still costs money or can come back: anything not on its way out. */
export function isLive(state: string): boolean {
  const upper = state.toUpperCase();
  return upper !== "TERMINATING" && upper !== "TERMINATED";
}

/** The configured image ARN, required by anything that asks AWS which MicroVMs exist. */
export function configuredImage(ctx: ProviderContext, what: string): string {
  const image = ctx.config.awsLambdaMicroVM.image?.trim() ?? "";
  if (image === "") {
    throw new CrabboxError(
      `${what} needs the AWS Lambda MicroVM image: orphans are MicroVMs of the configured image`,
      {
        exitCode: ExitCode.imageNotConfigured,
        hint: "set CRABBOX_AWS_LAMBDA_MICROVM_IMAGE or --aws-lambda-microvm-image",
      },
    );
  }
  return image;
}

export interface Orphan {
  summary: MicrovmSummary;
  /** Milliseconds since AWS started it, when it said. */
  ageMs: number | undefined;
}

/**
 * Live MicroVMs of the configured image (every version) whose id no local claim holds. Claims of
 * every provider and region count, so a lease is never mistaken for an orphan by a scope filter.
 */
export async function findOrphans(
  ctx: ProviderContext,
  plane: ControlPlane,
  image: string,
): Promise<Orphan[]> {
  const known = new Set((await listClaims(ctx.stateDir)).map((claim) => claim.cloudID).filter(Boolean));
  const summaries = await plane.listMicrovms({ imageIdentifier: image }, ctx.signal);
  const now = Date.now();
  return summaries
    .filter((summary) => isLive(summary.state) && !known.has(summary.microvmId))
    .map((summary) => ({
      summary,
      ageMs: summary.startedAtMs === undefined ? undefined : Math.max(0, now - summary.startedAtMs),
    }));
}

/** An orphan's age as Go prints durations, whole seconds (`1h2m3s`); `-` when AWS gave no start. */
export function orphanAge(orphan: Orphan): string {
  return orphan.ageMs === undefined ? "-" : formatDuration(Math.floor(orphan.ageMs / 1000) * 1000);
}

function orphanListing(ctx: ProviderContext, orphan: Orphan, vm: Microvm | undefined): LeaseListing {
  const { summary } = orphan;
  const labels: Labels = {
    orphan: "true",
    provider: spec.name,
    state: (vm?.state ?? summary.state).toLowerCase(),
    aws_region: ctx.scope,
    image_arn: summary.imageArn,
    image_version: summary.imageVersion,
    endpoint: vm?.endpoint ?? "",
    age: orphanAge(orphan),
  };
  if (orphan.ageMs !== undefined) {
    labels.age_secs = String(Math.floor(orphan.ageMs / 1000));
    labels.started_at = String(Math.floor((summary.startedAtMs as number) / 1000));
  }
  return {
    cloudId: summary.microvmId,
    name: "orphan",
    status: labels.state as string,
    imageVersion: summary.imageVersion,
    endpoint: labels.endpoint as string,
    labels,
  };
}

export async function list(ctx: ProviderContext, request: ListRequest): Promise<LeaseListing[]> {
  // Checked before any AWS call: `--remote` without an image cannot mean anything.
  const image = request.remote ? configuredImage(ctx, "list --remote") : undefined;
  const plane = await controlPlane(ctx);
  const listings = (await claimViews(ctx, plane)).map((view) => view.listing);
  if (image === undefined) return listings;
  const orphans = await findOrphans(ctx, plane, image);
  // ListMicrovms carries no endpoint; one GetMicrovm per orphan fills it in.
  const orphanListings = await mapLimited(orphans, CONCURRENCY, async (orphan) =>
    orphanListing(ctx, orphan, await findMicrovm(plane, orphan.summary.microvmId, ctx.signal)),
  );
  return [...listings, ...orphanListings.filter((listing) => isLive(listing.status))];
}
