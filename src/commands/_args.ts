import type { ArgsDef } from "citty";

/** Provider selection and the aws-lambda-microvm overrides, on every command that touches a lease. */
export const providerArgs = {
  provider: {
    type: "string",
    description: "provider to use (aws-lambda-microvm); also CRABBOX_PROVIDER or `provider:` in config",
    valueHint: "name",
  },
  "aws-lambda-microvm-region": { type: "string", description: "AWS region (CRABBOX_AWS_REGION, AWS_REGION)" },
  "aws-lambda-microvm-image": { type: "string", description: "MicroVM image ARN" },
  "aws-lambda-microvm-image-version": {
    type: "string",
    description: "MicroVM image version (default: latest active)",
  },
  "aws-lambda-microvm-execution-role-arn": {
    type: "string",
    description: "IAM execution role ARN for the MicroVM",
  },
  "aws-lambda-microvm-workdir": {
    type: "string",
    description: "remote workdir (default /workspace/crabbox)",
  },
  "aws-lambda-microvm-ingress-connectors": {
    type: "string",
    description: "comma list of ingress connector ARNs",
  },
  "aws-lambda-microvm-egress-connectors": {
    type: "string",
    description: "comma list of egress connector ARNs",
  },
  "aws-lambda-microvm-forget-missing": {
    type: "boolean",
    description: "forget local claims whose MicroVM no longer exists",
  },
  "aws-lambda-microvm-endpoint": {
    type: "string",
    description: "control-plane endpoint override, e.g. the local emulator",
  },
} as const satisfies ArgsDef;

/** Lease lifetime knobs, on commands that create a lease. */
export const leaseLifetimeArgs = {
  ttl: {
    type: "string",
    description: "maximum lease lifetime, e.g. 90m (capped at 8h)",
    valueHint: "duration",
  },
  "idle-timeout": {
    type: "string",
    description: "suspend after this long without requests, e.g. 30m (at least 60s)",
    valueHint: "duration",
  },
} as const satisfies ArgsDef;

export const jsonArg = {
  json: { type: "boolean", description: "print machine-readable JSON on stdout" },
} as const satisfies ArgsDef;

export const leaseIdArg = {
  id: { type: "string", description: "lease id (cbx_…) or slug", valueHint: "lease" },
} as const satisfies ArgsDef;
