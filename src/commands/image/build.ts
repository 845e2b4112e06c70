import { defineCommand } from "citty";
import { parseDuration } from "../../core/duration.ts";
import { usageError } from "../../core/errors.ts";
import { jsonArg } from "../_args.ts";
import { imageScopeArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "build",
    description: `Package the runner, upload it to S3 and create (or update) the MicroVM image

Examples:
  crabbox image build --bucket my-bucket --build-role-arn arn:aws:iam::123456789012:role/MicrovmBuildRole --wait
  crabbox image build --bucket my-bucket --build-role-arn <arn> --artifact crabbox-lambda-microvm-0.1.0.zip --wait
  crabbox image build --bucket my-bucket --build-role-arn <arn> --wait --json | jq -r .imageVersion

Without --artifact the runner zip is packaged from a source checkout, or taken from
<prefix>/share/crabbox/ of an installed release. An existing image of that name gets a new
version (UpdateMicrovmImage). With --wait the command ends when the version is SUCCESSFUL and
ACTIVE and prints the awsLambdaMicroVM config to use it.`,
  },
  args: {
    name: { type: "string", description: "image name", default: "crabbox-runner", valueHint: "name" },
    bucket: {
      type: "string",
      description: "S3 bucket for the artifact (same region as the image)",
      valueHint: "bucket",
    },
    key: {
      type: "string",
      description: "S3 key (default crabbox/crabbox-lambda-microvm-<version>-<sha>.zip)",
      valueHint: "key",
    },
    "build-role-arn": {
      type: "string",
      description: "IAM role the image build runs as (trusts lambda.amazonaws.com, reads the artifact)",
      valueHint: "arn",
    },
    "base-image-arn": {
      type: "string",
      description: "base image (default arn:aws:lambda:<region>:aws:microvm-image:al2023-1)",
      valueHint: "arn",
    },
    memory: {
      type: "string",
      description: "minimum memory in MiB: 512, 1024, 2048, 4096 or 8192",
      valueHint: "MiB",
    },
    artifact: {
      type: "string",
      description: "use this runner zip instead of packaging one",
      valueHint: "zip",
    },
    wait: { type: "boolean", description: "wait until the new version is SUCCESSFUL and ACTIVE" },
    "wait-timeout": {
      type: "string",
      description: "give up waiting after this long (default 30m)",
      valueHint: "duration",
    },
    ...imageScopeArgs,
    ...jsonArg,
  },
  async run({ args }) {
    if (!args.bucket)
      throw usageError("--bucket is required", "the artifact is uploaded to s3://<bucket>/<key>");
    if (!args["build-role-arn"]) {
      throw usageError(
        "--build-role-arn is required",
        "see docs/provider-aws-lambda-microvm.md for the build role",
      );
    }
    const timeout = parseDuration(args["wait-timeout"] ?? "30m");
    if (timeout === undefined || timeout <= 0)
      throw usageError(`invalid --wait-timeout ${args["wait-timeout"]}`);
    const memory = args.memory === undefined ? undefined : Number(args.memory);
    if (memory !== undefined && !Number.isInteger(memory))
      throw usageError(`--memory ${args.memory} is not a number of MiB`);
    const [{ imageClients }, { buildImage, configSnippet }, { say, printJson }, { version }] =
      await Promise.all([
        import("../../image/clients.ts"),
        import("../../image/build.ts"),
        import("../../core/output.ts"),
        import("../../core/version.ts"),
      ]);
    const clients = await imageClients(args);
    try {
      const result = await buildImage(
        clients,
        {
          name: args.name,
          bucket: args.bucket,
          key: args.key,
          buildRoleArn: args["build-role-arn"],
          baseImageArn: args["base-image-arn"],
          memoryMiB: memory,
          artifact: args.artifact,
          wait: Boolean(args.wait),
          waitTimeoutMs: timeout,
          version,
        },
        { info: say },
      );
      if (args.json) {
        printJson(result);
        return;
      }
      if (!result.config) {
        say(
          `building; follow it with: crabbox image status ${result.imageArn} --version ${result.imageVersion}`,
        );
        return;
      }
      say(`image ready: ${result.imageArn} version ${result.imageVersion}. Add to your crabbox config:`);
      process.stdout.write(configSnippet(result.imageArn, result.imageVersion));
      say(
        `or: export CRABBOX_AWS_LAMBDA_MICROVM_IMAGE=${result.imageArn} CRABBOX_AWS_LAMBDA_MICROVM_IMAGE_VERSION=${result.imageVersion}`,
      );
    } finally {
      clients.close();
    }
  },
});
