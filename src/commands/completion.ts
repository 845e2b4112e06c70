import { defineCommand } from "citty";
import { usageError } from "../core/errors.ts";

const shells = ["bash", "zsh", "fish"] as const;

export default defineCommand({
  meta: {
    name: "crabbox completion",
    description: `Print a shell completion script (bash, zsh or fish)

Examples:
  source <(crabbox completion bash)                  # in ~/.bashrc
  source <(crabbox completion zsh)                   # in ~/.zshrc, after compinit
  crabbox completion fish > ~/.config/fish/completions/crabbox.fish`,
  },
  args: {
    shell: { type: "positional", required: true, description: "bash, zsh or fish", valueHint: "shell" },
  },
  async run({ args }) {
    const shell = args.shell as (typeof shells)[number];
    if (!shells.includes(shell)) {
      throw usageError(`unknown shell ${JSON.stringify(args.shell)}`, `one of ${shells.join(", ")}`);
    }
    // The table is the CLI's own; the scripts complete exactly the commands and flags that exist.
    const [{ commands }, { completionModel }] = await Promise.all([
      import("./_table.ts"),
      import("../completion/model.ts"),
    ]);
    const model = await completionModel(commands);
    const render =
      shell === "bash"
        ? (await import("../completion/bash.ts")).bashScript
        : shell === "zsh"
          ? (await import("../completion/zsh.ts")).zshScript
          : (await import("../completion/fish.ts")).fishScript;
    process.stdout.write(render(model));
  },
});
