import { defineCommand } from "citty";
import { configPermissionCheck, selectionCheck, toolCheck } from "../core/doctor.ts";
import { CrabboxError } from "../core/errors.ts";
import { doctorJson, doctorOk, doctorText } from "../core/views.ts";
import { hasFeature } from "../providers/provider.ts";
import { jsonArg, leaseIdArg, providerArgs } from "./_args.ts";

export default defineCommand({
  meta: {
    name: "crabbox doctor",
    description: `Check config, local tools, AWS credentials and the control plane (read-only)

Examples:
  crabbox doctor
  crabbox doctor --json
  crabbox doctor --id api`,
  },
  args: { ...providerArgs, ...jsonArg, ...leaseIdArg },
  async run({ args }) {
    // Loaded on use: `--help` never pays for config, claims and provider code.
    const { leaseArgument, prepare } = await import("./_context.ts");
    const id = leaseArgument("doctor", { id: args.id }, false);
    const config = configPermissionCheck();
    const { provider, selection, lease, ctx } = await prepare("doctor", { args, leaseId: id });
    const tools = hasFeature(provider.spec, "archive-sync") ? ["git", "tar"] : ["git"];
    const local = [selectionCheck(provider.spec.name, selection), ...tools.map((tool) => toolCheck(tool))];
    const checks = [...(config ? [config] : []), ...local];
    checks.push(...(await (await provider.backend()).doctor(ctx, { lease })));
    if (args.json) process.stdout.write(`${doctorJson(provider.spec.name, checks)}\n`);
    else for (const check of checks) process.stdout.write(`${doctorText(check)}\n`);
    if (!doctorOk(checks)) throw new CrabboxError("doctor found problems");
  },
});
