import { defineCommand } from "citty";

export default defineCommand({
  meta: {
    name: "crabbox image",
    description: `Build and inspect the MicroVM runner image (package, upload, create, wait — one command)

Examples:
  crabbox image build --bucket my-bucket --build-role-arn arn:aws:iam::123456789012:role/MicrovmBuildRole --wait
  crabbox image list
  crabbox image status crabbox-runner`,
  },
  subCommands: {
    build: () => import("./image/build.ts").then((m) => m.default),
    list: () => import("./image/list.ts").then((m) => m.default),
    status: () => import("./image/status.ts").then((m) => m.default),
  },
});
