import { defineCommand } from "citty";
import { jsonArg } from "../_args.ts";
import { imageScopeArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "list",
    description: `List the account's MicroVM images in the region

Examples:
  crabbox image list
  crabbox image list --json | jq -r '.[] | select(.latestActiveImageVersion) | .imageArn'`,
  },
  args: { ...imageScopeArgs, ...jsonArg },
  async run({ args }) {
    const [{ imageClients }, { listImages, table }, { printJson }] = await Promise.all([
      import("../../image/clients.ts"),
      import("../../image/describe.ts"),
      import("../../core/output.ts"),
    ]);
    const clients = await imageClients(args);
    try {
      const images = await listImages(clients);
      if (args.json) {
        printJson(images);
        return;
      }
      const rows = images.map((image) => [
        image.name,
        image.state,
        image.latestActiveImageVersion ?? "-",
        image.imageArn,
      ]);
      process.stdout.write(`${table(["NAME", "STATE", "ACTIVE", "ARN"], rows)}\n`);
    } finally {
      clients.close();
    }
  },
});
