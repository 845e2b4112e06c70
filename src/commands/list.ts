import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "list", description: "(list: being built)" },
  args: {},
  run() {
    throw new CrabboxError("list is being built");
  },
});
