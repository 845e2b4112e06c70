import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "pause", description: "(pause: being built)" },
  args: {},
  run() {
    throw new CrabboxError("pause is being built");
  },
});
