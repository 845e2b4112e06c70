import { defineCommand } from "citty";
import { jsonArg } from "./_args.ts";

export default defineCommand({
  meta: { name: "version", description: "print the crabbox version and commit" },
  args: { ...jsonArg },
  async run({ args }) {
    const { version, commit } = await import("../core/version.ts");
    if (args.json) process.stdout.write(`${JSON.stringify({ version, commit })}\n`);
    else process.stdout.write(`crabbox ${version} (${commit})\n`);
  },
});
