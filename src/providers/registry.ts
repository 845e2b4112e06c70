import { usageError } from "../core/errors.ts";
import { closest } from "../core/suggest.ts";
import { awsLambdaMicroVM } from "./aws-lambda-microvm/index.ts";
import type { Provider } from "./provider.ts";

/** Every provider this build knows, by name. Specs are small; backends load lazily. */
export const providers: Readonly<Record<string, Provider>> = {
  [awsLambdaMicroVM.spec.name]: awsLambdaMicroVM,
};

export function providerNames(): string[] {
  return Object.keys(providers);
}

/** Where the provider choice came from (doctor's `provider-selection` check prints it). */
export type ProviderSelectionSource =
  | "flag"
  | "environment"
  | "user_config"
  | "repo_config"
  | "lease_context";

/** A provider by name (trimmed, case-insensitive), or exit 2 listing the ones that exist. */
export function getProvider(name: string): Provider {
  const wanted = name.trim().toLowerCase();
  const provider = providers[wanted];
  if (provider) return provider;
  const guess = closest(wanted, providerNames());
  throw usageError(
    `unknown provider "${name.trim()}"; this crabbox supports: ${providerNames().join(", ")}`,
    guess ? `did you mean --provider ${guess}?` : undefined,
  );
}

/** Exit 2 when nothing selected a provider, naming every way to select one. */
export function noProviderSelected(): never {
  throw usageError(
    `no provider selected; use --provider <name>, set CRABBOX_PROVIDER, or set provider: in crabbox.yaml (available: ${providerNames().join(", ")})`,
  );
}
