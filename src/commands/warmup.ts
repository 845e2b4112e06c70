import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "warmup", description: "(warmup: being built)" },
  args: {},
  run() {
    throw new CrabboxError("warmup is being built");
  },
});
