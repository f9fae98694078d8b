#!/usr/bin/env node
import { main } from "./cli.js";

/** The `rpcgen` executable. A stack trace is shown only when RPCGEN_DEBUG is set. */
main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (e: unknown) => {
    process.stderr.write(process.env.RPCGEN_DEBUG ? `${(e as Error).stack}\n` : `rpcgen: internal error: ${(e as Error).message}\n`);
    process.exitCode = 70;
  },
);
