import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "cleanup", description: "(cleanup: being built)" },
  args: {},
  run() {
    throw new CrabboxError("cleanup is being built");
  },
});
