import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "doctor", description: "(doctor: being built)" },
  args: {},
  run() {
    throw new CrabboxError("doctor is being built");
  },
});
