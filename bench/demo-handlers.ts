import type { HandlersOf, Server, ServiceDescription } from "../runtime/index.js";

/**
 * The demo's server side. `exampleHandlers` serves idl/example.x in the main thread; the
 * default export does the same inside the shm transport's worker thread, importing the
 * generated module named in `data.module`.
 */

interface Point {
  x: number;
  y: number;
}

interface Node {
  value: number;
  next: Node | null;
}

export function exampleHandlers(): HandlersOf<ServiceDescription> {
  const handlers = {
    exprocAdd: (a: number, b: number) => a + b,
    exprocMove: (p: Point, dx: number, dy: number) => ({ x: p.x + dx, y: p.y + dy }),
    exprocEcho: (r: unknown) => r,
    exprocLookup: (id: number) => (id === 0 ? { status: 1 } : { status: 2, reason: `no ${id}` }),
    exprocSum: (l: Node | null) => {
      let sum = 0;
      for (let n = l; n !== null; n = n.next) sum += n.value;
      return sum;
    },
    exprocRange: (n: number) => {
      let head: Node | null = null;
      for (let i = n; i > 0; i--) head = { value: i, next: head };
      return head;
    },
    exprocReverse: (d: Uint8Array) => d.slice().reverse(),
    exprocGreet: (s: string, n: number) => `${s}!`.repeat(n),
    exprocFail: () => {
      throw new Error("EXPROC_FAIL always fails");
    },
  };
  return handlers as unknown as HandlersOf<ServiceDescription>;
}

export default async function register(server: Server, data: unknown): Promise<void> {
  const { module } = data as { module: string };
  const generated = (await import(module)) as { ExampleV1: ServiceDescription };
  server.register(generated.ExampleV1, exampleHandlers());
}
