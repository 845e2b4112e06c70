import type { ArgsDef } from "citty";

/** Provider selection and the aws-lambda-microvm overrides, on every command that touches a lease. */
export const providerArgs = {
  provider: {
    type: "string",
    description: "provider to use (aws-lambda-microvm); also CRABBOX_PROVIDER or `provider:` in config",
    valueHint: "name",
  },
  "aws-lambda-microvm-region": {
    type: "string",
    description: "AWS region (CRABBOX_AWS_REGION, AWS_REGION)",
    valueHint: "region",
  },
  "aws-lambda-microvm-image": { type: "string", description: "MicroVM image ARN", valueHint: "arn" },
  "aws-lambda-microvm-image-version": {
    type: "string",
    description: "MicroVM image version (default: latest active)",
    valueHint: "version",
  },
  "aws-lambda-microvm-execution-role-arn": {
    type: "string",
    description: "IAM execution role ARN for the MicroVM",
    valueHint: "arn",
  },
  "aws-lambda-microvm-workdir": {
    type: "string",
    description: "remote workdir (default /workspace/crabbox)",
    valueHint: "path",
  },
  "aws-lambda-microvm-ingress-connectors": {
    type: "string",
    description: "comma list of ingress connector ARNs",
    valueHint: "arns",
  },
  "aws-lambda-microvm-egress-connectors": {
    type: "string",
    description: "comma list of egress connector ARNs",
    valueHint: "arns",
  },
  "aws-lambda-microvm-forget-missing": {
    type: "boolean",
    description: "forget local claims whose MicroVM no longer exists",
  },
  "aws-lambda-microvm-endpoint": {
    type: "string",
    description: "control-plane endpoint override, e.g. the local emulator",
    valueHint: "url",
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

/** `crabbox stop X` and `crabbox stop --id X` both name a lease. */
export const leaseArgs = {
  lease: { type: "positional", required: false, description: "lease id (cbx_…) or slug", valueHint: "lease" },
  ...leaseIdArg,
} as const satisfies ArgsDef;

/** Flags of commands that create a lease (run, warmup). */
export const leaseCreationArgs = {
  slug: {
    type: "string",
    description: "name for a new lease (normalised: lowercase, letters, digits, dashes)",
    valueHint: "slug",
  },
  reclaim: { type: "boolean", description: "take over a lease recorded for another checkout" },
  "timing-json": { type: "boolean", description: "print one timing JSON line on stderr at the end" },
  arch: {
    type: "string",
    description: "target architecture; aws-lambda-microvm runs arm64 only",
    valueHint: "arm64",
  },
  ...leaseLifetimeArgs,
} as const satisfies ArgsDef;

/**
 * Every value of a repeatable flag (`--allow-env A --allow-env B,C`), in order. citty keeps only the
 * last occurrence, so repeatable flags are read from the raw tokens.
 */
export function repeatedFlag(rawArgs: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const token = rawArgs[i] as string;
    if (token === "--") break;
    for (const prefix of [`--${name}`, `-${name}`]) {
      if (token === prefix && i + 1 < rawArgs.length) {
        values.push(rawArgs[i + 1] as string);
        i++;
      } else if (token.startsWith(`${prefix}=`)) {
        values.push(token.slice(prefix.length + 1));
      }
    }
  }
  return values;
}
