import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "stop", description: "(stop: being built)" },
  args: {},
  run() {
    throw new CrabboxError("stop is being built");
  },
});
