import { defineCommand } from "citty";
import { jsonArg } from "../_args.ts";
import { imageScopeArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "status",
    description: `Show a MicroVM image's state and its versions (which ones can run)

Examples:
  crabbox image status crabbox-runner
  crabbox image status arn:aws:lambda:eu-west-1:123456789012:microvm-image:crabbox-runner --version 2.0
  crabbox image status crabbox-runner --json | jq '.versions[] | select(.runnable)'`,
  },
  args: {
    image: { type: "positional", required: true, description: "image ARN or name", valueHint: "arn" },
    version: { type: "string", description: "only this version", valueHint: "version" },
    ...imageScopeArgs,
    ...jsonArg,
  },
  async run({ args }) {
    const [{ imageClients }, { imageStatus, table }, { printJson, say }] = await Promise.all([
      import("../../image/clients.ts"),
      import("../../image/describe.ts"),
      import("../../core/output.ts"),
    ]);
    // An ARN names its region; a bare name uses the configured one.
    const region = /^arn:aws[a-z-]*:lambda:([a-z0-9-]+):/.exec(args.image)?.[1];
    const clients = await imageClients(args, region);
    try {
      const status = await imageStatus(clients, args.image, args.version);
      if (args.json) {
        printJson(status);
        return;
      }
      say(
        `${status.name}: ${status.state}, latest active version ${status.latestActiveImageVersion ?? "none"}`,
      );
      say(status.imageArn);
      const rows = status.versions.map((version) => [
        version.imageVersion,
        version.state,
        version.status,
        version.runnable ? "yes" : "no",
        version.stateReason ?? version.codeArtifact ?? "",
      ]);
      process.stdout.write(`${table(["VERSION", "STATE", "STATUS", "RUNNABLE", "DETAIL"], rows)}\n`);
    } finally {
      clients.close();
    }
  },
});
