import { forgetRemembered } from "../../sync/remembered.ts";
import type { ProviderContext } from "../provider.ts";
import type { ControlPlane } from "./control-plane.ts";
import { dataPlaneTarget } from "./endpoint.ts";
import { createRunnerClient, type RunnerClient } from "./runner-client.ts";
import {
  cachedTokenProvider,
  createTokenCache,
  REFRESH_MARGIN_MS,
  type TokenCache,
  tokenCacheDir,
} from "./token-cache.ts";

/**
 * The runner of one MicroVM, reached through the data plane: the endpoint AWS returned (validated
 * even in emulator mode), TCP to the configured loopback origin in emulator mode, and a proxy token
 * reused from the per-MicroVM cache until five minutes (scaled in emulator mode) before it expires.
 */

export interface MicrovmAddress {
  microvmId: string;
  /** The endpoint as AWS returned it (host only). */
  endpoint: string;
}

function tokenCache(ctx: ProviderContext, plane: ControlPlane): TokenCache {
  return createTokenCache({
    dir: tokenCacheDir(process.env, ctx.stateDir),
    refreshMarginMs: REFRESH_MARGIN_MS * plane.timeScale,
  });
}

/** A runner client for the MicroVM; throws (exit 1) when AWS handed out an endpoint that fails the policy. */
export function openRunner(ctx: ProviderContext, plane: ControlPlane, vm: MicrovmAddress): RunnerClient {
  const target = dataPlaneTarget(vm.endpoint, plane.region, plane.endpoint);
  const getToken = cachedTokenProvider({
    cache: tokenCache(ctx, plane),
    microvmId: vm.microvmId,
    mint: () => plane.createAuthToken(vm.microvmId),
    refreshMarginMs: REFRESH_MARGIN_MS * plane.timeScale,
  });
  return createRunnerClient({ target, getToken });
}

/**
 * Deletes what this machine keeps about a MicroVM's data plane (on stop/terminate): its cached
 * token, which must not outlive the lease, and the manifests remembered as synced into it.
 */
export async function forgetToken(
  ctx: ProviderContext,
  plane: ControlPlane,
  microvmId: string,
): Promise<void> {
  await forgetRemembered(ctx.stateDir, microvmId).catch(() => {});
  await tokenCache(ctx, plane).delete(microvmId);
}
