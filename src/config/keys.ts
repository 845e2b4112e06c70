/**
 * Every config key crabbox reads, in one table: its type, default, environment variables and flag,
 * and whether a repository's own config file may set it. Loading, `config show` and docs/config.md
 * all follow this table.
 */

export type ValueKind = "string" | "list" | "boolean" | "duration" | "count";

export type ConfigValue = string | readonly string[] | boolean | number | undefined;

export interface KeyDef {
  kind: ValueKind;
  default: ConfigValue;
  /** Environment variables, highest precedence first; an empty value counts as unset. */
  env?: readonly string[];
  /** The citty arg name of the flag that sets it. */
  flag?: string;
  /** Repository files may not set it: it could send the checkout or secrets elsewhere. */
  userOnly?: string;
  description: string;
}

const GIB = 1024 ** 3;

export const CONFIG_KEYS = {
  provider: {
    kind: "string",
    default: undefined,
    env: ["CRABBOX_PROVIDER"],
    flag: "provider",
    description: "provider to use (aws-lambda-microvm)",
  },
  "aws.region": {
    kind: "string",
    default: "eu-west-1",
    env: ["CRABBOX_AWS_REGION", "AWS_REGION"],
    flag: "aws-lambda-microvm-region",
    description: "AWS region; also the scope of local lease claims",
  },
  "awsLambdaMicroVM.image": {
    kind: "string",
    default: undefined,
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_IMAGE"],
    flag: "aws-lambda-microvm-image",
    description: "MicroVM image ARN (required by run, warmup and doctor)",
  },
  "awsLambdaMicroVM.imageVersion": {
    kind: "string",
    default: undefined,
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_IMAGE_VERSION"],
    flag: "aws-lambda-microvm-image-version",
    description: "image version; empty = latest active version",
  },
  "awsLambdaMicroVM.executionRoleArn": {
    kind: "string",
    default: undefined,
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_EXECUTION_ROLE_ARN"],
    flag: "aws-lambda-microvm-execution-role-arn",
    description: "IAM role the MicroVM runs as (optional)",
  },
  "awsLambdaMicroVM.workdir": {
    kind: "string",
    default: "/workspace/crabbox",
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_WORKDIR"],
    flag: "aws-lambda-microvm-workdir",
    description: "remote directory the checkout is synced into",
  },
  "awsLambdaMicroVM.ingressConnectors": {
    kind: "list",
    default: [],
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_INGRESS_CONNECTORS"],
    flag: "aws-lambda-microvm-ingress-connectors",
    description: "ingress network connector ARNs; empty = AWS-managed ALL_INGRESS",
  },
  "awsLambdaMicroVM.egressConnectors": {
    kind: "list",
    default: [],
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_EGRESS_CONNECTORS"],
    flag: "aws-lambda-microvm-egress-connectors",
    description: "egress network connector ARNs; empty = AWS-managed INTERNET_EGRESS",
  },
  "awsLambdaMicroVM.forgetMissing": {
    kind: "boolean",
    default: false,
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_FORGET_MISSING"],
    flag: "aws-lambda-microvm-forget-missing",
    description: "stop/cleanup drop local claims whose MicroVM no longer exists",
  },
  "awsLambdaMicroVM.endpoint": {
    kind: "string",
    default: undefined,
    env: ["CRABBOX_AWS_LAMBDA_MICROVM_ENDPOINT"],
    flag: "aws-lambda-microvm-endpoint",
    userOnly: "a pull request could point crabbox at a server that receives your checkout",
    description: "control-plane endpoint override, e.g. the local emulator",
  },
  ttl: {
    kind: "duration",
    default: 90 * 60_000,
    env: ["CRABBOX_TTL"],
    flag: "ttl",
    description: "maximum lease lifetime (capped at 8h by AWS)",
  },
  idleTimeout: {
    kind: "duration",
    default: 30 * 60_000,
    env: ["CRABBOX_IDLE_TIMEOUT"],
    flag: "idle-timeout",
    description: "suspend a lease after this long without requests (at least 60s)",
  },
  "sync.exclude": {
    kind: "list",
    default: [],
    description: "extra sync excludes, after the built-in ones",
  },
  "sync.include": {
    kind: "list",
    default: [],
    description: "when set, only these paths are synced",
  },
  "sync.keep": {
    kind: "list",
    default: ["node_modules"],
    description:
      "what `run --clean` keeps of the files crabbox did not sync (globs; a directory keeps all of it)",
  },
  "sync.warnFiles": {
    kind: "count",
    default: 50_000,
    env: ["CRABBOX_SYNC_WARN_FILES"],
    description: "warn when a sync has at least this many files",
  },
  "sync.warnBytes": {
    kind: "count",
    default: 5 * GIB,
    env: ["CRABBOX_SYNC_WARN_BYTES"],
    description: "warn when a sync has at least this many bytes",
  },
  "sync.failFiles": {
    kind: "count",
    default: 150_000,
    env: ["CRABBOX_SYNC_FAIL_FILES"],
    description: "refuse a sync with at least this many files (0 = no limit)",
  },
  "sync.failBytes": {
    kind: "count",
    default: 20 * GIB,
    env: ["CRABBOX_SYNC_FAIL_BYTES"],
    description: "refuse a sync with at least this many bytes (0 = no limit)",
  },
  "sync.allowLarge": {
    kind: "boolean",
    default: false,
    env: ["CRABBOX_SYNC_ALLOW_LARGE"],
    flag: "force-sync-large",
    description: "allow syncs over the fail limits",
  },
  "sync.compression": {
    kind: "string",
    default: "zstd:3",
    env: ["CRABBOX_SYNC_COMPRESSION"],
    description: "sync body compression: zstd, zstd:<1-19>, gzip, gzip:<1-9> or none",
  },
  "env.allow": {
    kind: "list",
    default: ["CI", "NODE_OPTIONS"],
    env: ["CRABBOX_ENV_ALLOW"],
    flag: "allow-env",
    userOnly: "a pull request could forward your CI secrets into the MicroVM",
    description: "local environment variables forwarded to the remote command (NAME or PREFIX*)",
  },
} as const satisfies Record<string, KeyDef>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

export const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS) as ConfigKey[];

export function keyDef(key: ConfigKey): KeyDef {
  return CONFIG_KEYS[key];
}

/** Sections whose children are keys; everything else at the top level is a key itself. */
export const CONFIG_SECTIONS = ["aws", "awsLambdaMicroVM", "sync", "env"] as const;

/**
 * Key names that look like credentials. Crabbox never reads credentials from its own config —
 * they come from the AWS SDK chain — so a file that carries one is refused rather than ignored:
 * the secret is sitting in a file that may be committed or shared.
 */
export function isCredentialKey(name: string): boolean {
  const flat = name.toLowerCase().replace(/[^a-z0-9]/g, "");
  return (
    /(accesskey|secretkey|secret|password|passwd|credential|privatekey|apikey)/.test(flat) ||
    /(token|tokens)$/.test(flat)
  );
}
