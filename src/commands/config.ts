import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "config", description: "(config: being built)" },
  args: {},
  run() {
    throw new CrabboxError("config is being built");
  },
});
