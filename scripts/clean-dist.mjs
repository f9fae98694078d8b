// Removes the package's dist/ before a build, so that no file of a renamed or deleted module
// is left to be packed.
import { rmSync } from "node:fs";

rmSync("dist", { recursive: true, force: true });
