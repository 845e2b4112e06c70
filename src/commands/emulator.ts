import { defineCommand } from "citty";
import { CrabboxError } from "../core/errors.ts";

export default defineCommand({
  meta: { name: "emulator", description: "(emulator: being built)" },
  args: {},
  run() {
    throw new CrabboxError("emulator is being built");
  },
});
