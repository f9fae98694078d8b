// The import rules of the runtime and the compiler, checked by test/layers.test.ts.
//
// The runtime is layered; a module imports only from its own layer or below:
//   0 xdr/            encoding, the copy ledger (no Node built-in: it runs in browsers)
//   1 rpc/, auth/     RPC messages (RFC 5531) and authentication flavors
//   2 call/           service descriptions, marshal paths, timing
//   3 transport/      the transport contract (types only)
//   4 transports/     each transport
//   5 endpoint/       client channel and server dispatch
//   6 stub/           what generated stubs import
//   7 binding/        rpcbind (its stubs are generated against stub/)
//   8 runtime/*.ts    connect, listen, the package entry: the only code naming transports
const layers = [
  ["xdr"],
  ["rpc", "auth"],
  ["call"],
  ["transport"],
  ["transports"],
  ["endpoint"],
  ["stub"],
  ["binding"],
];

const folder = (names) => `^runtime/(${names.join("|")})/`;

const layerRules = layers.map((names, rank) => ({
  name: `layer-${names.join("-")}`,
  comment: `runtime/${names.join(", runtime/")} may import only from layers 0-${rank}`,
  severity: "error",
  from: { path: folder(names) },
  to: {
    path: "^runtime/",
    pathNot: folder(layers.slice(0, rank + 1).flat()),
  },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "An import cycle: layers must import one way (type-only imports count too).",
      severity: "error",
      from: { path: "^(runtime|compiler)/" },
      to: { circular: true },
    },
    ...layerRules,
    {
      name: "xdr-no-node",
      comment: "The XDR layer is importable outside Node: no Node built-in.",
      severity: "error",
      from: { path: folder(["xdr"]) },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "runtime-not-compiler",
      comment: "The runtime package does not depend on the compiler, nor the compiler on the runtime.",
      severity: "error",
      from: { path: "^runtime/" },
      to: { path: "^compiler/" },
    },
    {
      name: "compiler-not-runtime",
      severity: "error",
      from: { path: "^compiler/" },
      to: { path: "^runtime/" },
    },
    {
      name: "no-unresolvable",
      comment: "Every relative import resolves (a moved file left an import behind).",
      severity: "error",
      from: { path: "^(runtime|compiler)/" },
      to: { couldNotResolve: true, path: "^[.]" },
    },
  ],
  options: {
    // Test files are checked by the type checker, not layered.
    exclude: { path: "(\\.test\\.ts$|/dist/|node_modules)" },
    doNotFollow: { path: "node_modules" },
    // Type-only imports are dependencies too: a layer must not even name an upper layer's types.
    tsPreCompilationDeps: true,
    parser: "swc",
  },
};
