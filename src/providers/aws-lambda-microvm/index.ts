import type { ResolvedConfig } from "../../config/resolve.ts";
import type { Provider, ProviderBackend } from "../provider.ts";
import { spec } from "./spec.ts";
import { validate } from "./validate.ts";

export const awsLambdaMicroVM: Provider = {
  spec,
  scope: (config: ResolvedConfig) => config.aws.region.trim(),
  validate,
  async backend(): Promise<ProviderBackend> {
    return (await import("./backend.ts")).backend;
  },
};
