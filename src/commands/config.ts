import { defineCommand } from "citty";
import { jsonArg, providerArgs } from "./_args.ts";

const showArgs = { ...providerArgs, ...jsonArg } as const;

const show = defineCommand({
  meta: {
    name: "show",
    description: `Print the resolved config and, for every value, where it came from

Examples:
  crabbox config show
  crabbox config show --json | jq .sources
  CRABBOX_CONFIG=./ci.yaml crabbox config show`,
  },
  args: showArgs,
  async run({ args }) {
    const [{ resolveConfig }, { configShowJson, configShowText }] = await Promise.all([
      import("../config/resolve.ts"),
      import("../config/show.ts"),
    ]);
    const config = await resolveConfig({ flags: args });
    if (args.json) process.stdout.write(`${JSON.stringify(configShowJson(config), null, 2)}\n`);
    else process.stdout.write(`${configShowText(config)}\n`);
  },
});

export default defineCommand({
  meta: {
    name: "crabbox config",
    description: `Inspect crabbox configuration (\`crabbox config\` alone = \`config show\`)

Examples:
  crabbox config
  crabbox config show --json`,
  },
  args: showArgs,
  subCommands: { show },
  default: "show",
});
