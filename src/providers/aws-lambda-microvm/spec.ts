import type { ProviderSpec } from "../provider.ts";

/** AWS Lambda MicroVMs: Firecracker MicroVMs driven through the Lambda MicroVMs API (upstream §0). */
export const spec: ProviderSpec = {
  name: "aws-lambda-microvm",
  family: "aws",
  kind: "delegated-run",
  targets: [{ os: "linux", arch: "arm64" }],
  features: ["archive-sync", "cleanup", "run-session", "pause-resume"],
  scopeFlag: "--aws-lambda-microvm-region",
};

/** Regions AWS documented at launch; others may exist later, so this only feeds hints. */
export const LAUNCH_REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "ap-northeast-1"] as const;
