import type { ArgsDef } from "citty";
import { providerArgs } from "../_args.ts";

/** The provider flags that matter to image commands: where the control plane is. */
export const imageScopeArgs = {
  "aws-lambda-microvm-region": providerArgs["aws-lambda-microvm-region"],
  "aws-lambda-microvm-endpoint": providerArgs["aws-lambda-microvm-endpoint"],
} as const satisfies ArgsDef;
