import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "resume", description: "(resume: being built)" },
  args: {},
  run() {
    throw new CrabboxError("resume is being built");
  },
});
