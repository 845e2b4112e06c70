import type { ResolvedConfig } from "../../config/resolve.ts";
import { CrabboxError } from "../../core/errors.ts";
import type { Provider, ProviderBackend } from "../provider.ts";
import { spec } from "./spec.ts";
import { validate } from "./validate.ts";

export const awsLambdaMicroVM: Provider = {
  spec,
  scope: (config: ResolvedConfig) => config.aws.region.trim(),
  validate,
  async backend(): Promise<ProviderBackend> {
    throw new CrabboxError("provider backend not built yet", {
      hint: "this build parses, validates and resolves leases; the aws-lambda-microvm backend lands with the provider issue",
    });
  },
};
