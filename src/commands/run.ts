import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "run", description: "(run: being built)" },
  args: {},
  run() {
    throw new CrabboxError("run is being built");
  },
});
