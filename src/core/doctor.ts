import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import type { DoctorCheck } from "../providers/provider.ts";
import { type Env, userConfigFile } from "./paths.ts";

/** The local half of `crabbox doctor` (upstream §2.1): config permissions, selection, tools. */

/** The writable config file's permissions; absent when there is no such file. */
export function configPermissionCheck(
  env: Env = process.env,
  cwd: string = process.cwd(),
): DoctorCheck | undefined {
  const path = env.CRABBOX_CONFIG ? resolve(cwd, env.CRABBOX_CONFIG) : userConfigFile(env);
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return undefined;
  if (!stat.isFile()) return { status: "failed", check: "config", message: `${path}: not a regular file` };
  const mode = stat.mode & 0o777;
  const octal = mode.toString(8).padStart(4, "0");
  if ((mode & 0o077) !== 0) {
    return { status: "failed", check: "config", message: `${path}: permissions ${octal} want 0600` };
  }
  return { status: "ok", check: "config", message: `${path} permissions=${octal}` };
}

export function selectionCheck(provider: string, source: string): DoctorCheck {
  return {
    status: "ok",
    check: "provider-selection",
    message: `provider=${provider} source=${source} selected=true`,
    details: { provider, source, selected: "true" },
  };
}

/** The first executable `name` on PATH. */
export function findExecutable(name: string, env: Env = process.env): string | undefined {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

export function toolCheck(tool: string, env: Env = process.env): DoctorCheck {
  const path = findExecutable(tool, env);
  if (!path)
    return { status: "missing", check: tool, message: `${tool} not found in $PATH`, details: { tool } };
  return { status: "ok", check: tool, message: path, details: { path, tool } };
}
