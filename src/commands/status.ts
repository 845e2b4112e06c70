import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "status", description: "(status: being built)" },
  args: {},
  run() {
    throw new CrabboxError("status is being built");
  },
});
