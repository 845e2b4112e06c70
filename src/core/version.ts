import pkg from "../../package.json" with { type: "json" };

// scripts/build.ts defines CRABBOX_COMMIT at compile time; from source it is "dev".
declare const CRABBOX_COMMIT: string | undefined;

export const version: string = pkg.version;
export const commit: string = typeof CRABBOX_COMMIT === "string" ? CRABBOX_COMMIT : "dev";
