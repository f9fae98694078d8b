import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, createServer, type CallRecord, type HandlersOf } from "../runtime/index.js";
import { microtaskHop } from "../bench/floors.js";
import { measureGroupAsync } from "../bench/harness.js";
import { phaseNames, phaseProcs, phaseRow, type PhaseRow } from "../bench/phases.js";
import { chartData, LoadSampler, machine, ResultCollector, svgOfResults, type ChartData } from "../bench/report.js";
import { benchBinding, benchHandlers, MAXDATA, payload, type BenchService } from "../bench/rpc-service.js";
import { latencySvg } from "../bench/svg.js";
import { generate } from "./generated.js";
import { repoRoot } from "./support.js";

/**
 * The benchmark's chart (bench/latency.svg) as a browser draws it. The SVG comes from the
 * real writer: once from a short real run made here (inproc calls of idl/bench.x with the
 * onCall/onServe hooks, paired into phases, beside a microtask-hop floor timed here), once
 * from the committed bench/results.json. Headless Chromium loads each, and a script in the
 * page reads the rendered geometry (every bar present, of non-zero size, labelled; no text
 * overlapping other text or leaving the picture) and the pixels of the picture drawn into a
 * canvas (each wide segment shows its fill colour).
 */

const chromium = "/usr/bin/chromium";
const run = promisify(execFile);

/** What the page's script reports. */
interface Rendered {
  readonly width: number;
  readonly height: number;
  readonly bars: {
    readonly kind: string;
    readonly transport: string;
    readonly mode: string | null;
    readonly box: { x: number; y: number; w: number; h: number };
    readonly label: string;
    readonly value: string;
    readonly segments: { part: string; w: number; h: number; fill: string; pixel: number[][] | null }[];
  }[];
  readonly legend: string[];
  readonly ticks: string[];
  readonly units: string[];
  readonly title: string;
  /** Pairs of texts whose boxes overlap by more than a pixel each way. */
  readonly overlaps: string[];
  /** Texts reaching outside the picture. */
  readonly outside: string[];
  /** Segment labels wider than their segment. */
  readonly spilled: string[];
}

/** Renders `svg` in headless Chromium and returns what its page script measured. */
async function render(svg: string, dir: string, name: string): Promise<Rendered> {
  const script = `
    const svg = document.querySelector("svg");
    const box = (e) => { const b = e.getBoundingClientRect(); return { x: b.x, y: b.y, w: b.width, h: b.height }; };
    const texts = [...svg.querySelectorAll("text")].filter((t) => t.textContent.trim() !== "");
    const overlaps = [];
    const boxes = texts.map((t) => ({ t: t.textContent, cls: t.getAttribute("class"), b: box(t) }));
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i].b, c = boxes[j].b;
      const ox = Math.min(a.x + a.w, c.x + c.w) - Math.max(a.x, c.x), oy = Math.min(a.y + a.h, c.y + c.h) - Math.max(a.y, c.y);
      if (ox > 1 && oy > 1) overlaps.push(boxes[i].t + " | " + boxes[j].t);
    }
    const sb = box(svg);
    const outside = boxes.filter(({ b }) => b.x < sb.x - 0.5 || b.y < sb.y - 0.5 || b.x + b.w > sb.x + sb.w + 0.5 || b.y + b.h > sb.y + sb.h + 0.5).map(({ t }) => t);
    const spilled = [...svg.querySelectorAll("text.seg-label")].filter((t) => {
      const tb = box(t);
      return ![...t.parentNode.querySelectorAll("rect.seg")].some((r) => { const rb = box(r); return tb.x >= rb.x - 0.5 && tb.x + tb.w <= rb.x + rb.w + 0.5; });
    }).map((t) => t.textContent);
    const report = (pixels) => {
      const bars = [...svg.querySelectorAll("g.bar")].map((g) => ({
        kind: g.dataset.kind, transport: g.dataset.transport, mode: g.dataset.mode ?? null, box: box(g),
        label: g.querySelector("text.label")?.textContent ?? "", value: g.querySelector("text.value")?.textContent ?? "",
        segments: [...g.querySelectorAll("rect.seg")].map((r) => {
          const b = box(r);
          let pixel = null;
          if (pixels !== null && b.w >= 4) {
            // Near the top edge, clear of the segment's label; near both ends, since a
            // bar's timing tick may cover one.
            const y = Math.floor(b.y - sb.y + 1.5);
            pixel = [Math.ceil(b.x - sb.x + 1), Math.floor(b.x - sb.x + b.w - 2)].map((x) => [...pixels.getImageData(x, y, 1, 1).data]);
          }
          return { part: r.dataset.part, w: b.w, h: b.h, fill: r.getAttribute("fill"), pixel };
        }),
      }));
      const out = {
        width: sb.w, height: sb.h, bars, overlaps, outside, spilled,
        legend: [...svg.querySelectorAll(".legend-item")].map((e) => e.dataset.part),
        ticks: [...svg.querySelectorAll("text.tick")].map((e) => e.textContent),
        units: [...svg.querySelectorAll("text.axis-unit")].map((e) => e.textContent),
        title: svg.querySelector("text.title")?.textContent ?? "",
      };
      document.getElementById("out").textContent = btoa(unescape(encodeURIComponent(JSON.stringify(out))));
    };
    const img = new Image();
    img.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = sb.w; canvas.height = sb.h;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      report(ctx);
    };
    img.onerror = () => report(null);
    img.src = "data:image/svg+xml;base64," + ${JSON.stringify(Buffer.from(svg).toString("base64"))};
  `;
  const html = `<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0">${svg.replace(/^<\?xml[^>]*>\s*/, "")}<pre id="out"></pre><script>${script}</script></body></html>`;
  const page = join(dir, `${name}.html`);
  writeFileSync(page, html);
  const { stdout } = await run(
    chromium,
    ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000", "--window-size=1000,2000", "--dump-dom", `file://${page}`],
    { timeout: 20_000, maxBuffer: 64 * 1024 * 1024 },
  );
  const m = /<pre id="out">([A-Za-z0-9+/=]+)<\/pre>/.exec(stdout);
  if (m === null) throw new Error(`${name}: the page reported nothing; Chromium printed:\n${stdout.slice(0, 400)}`);
  return JSON.parse(Buffer.from(m[1]!, "base64").toString("utf8")) as Rendered;
}

const hex = (c: string): number[] => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));

/** What every chart must show, whatever its data. */
function expectReadable(r: Rendered, chart: ChartData): void {
  expect(r.title).toBe(chart.title);
  expect(r.legend).toEqual([...phaseNames, "floor", "timed", ...(chart.copies.length > 0 ? ["stub", "runtime", "wire"] : [])]);
  expect(r.units.filter((u) => u === "µs")).toHaveLength(new Set(chart.latency.map((b) => b.transport)).size);
  expect(r.ticks.length).toBeGreaterThan(3);
  const rpc = r.bars.filter((b) => b.kind === "rpc");
  const floors = r.bars.filter((b) => b.kind === "floor");
  const copies = r.bars.filter((b) => b.kind === "copies");
  expect(rpc.map((b) => `${b.mode}/${b.transport}`).sort()).toEqual(chart.latency.map((b) => `${b.mode}/${b.transport}`).sort());
  expect(floors.map((b) => b.transport).sort()).toEqual(chart.floors.map((f) => f.transport).sort());
  expect(copies).toHaveLength(chart.copies.length);
  for (const b of r.bars) {
    // Present, of non-zero size, inside the picture, labelled with a name and a figure.
    expect(b.box.w, `${b.kind} ${b.mode} ${b.transport}`).toBeGreaterThan(1);
    expect(b.box.h).toBeGreaterThan(1);
    expect(b.box.x).toBeGreaterThanOrEqual(0);
    expect(b.box.x + b.box.w).toBeLessThanOrEqual(r.width);
    expect(b.label).toBe(b.kind === "floor" ? "floor" : b.kind === "copies" ? `${b.mode} · ${b.transport}` : b.mode);
    expect(b.value).toMatch(b.kind === "copies" ? /^\d+ cop(y|ies), [\d,]+ B$/ : /\d µs/);
    expect(b.segments.reduce((s, x) => s + x.w, 0)).toBeGreaterThan(1);
    for (const s of b.segments) {
      expect(s.h).toBeGreaterThan(1);
      // Drawn: the picture shows the segment's colour where the segment is.
      if (s.pixel !== null) {
        const want = hex(s.fill);
        const near = (px: number[]): boolean => [0, 1, 2].every((i) => Math.abs(px[i]! - want[i]!) <= 8);
        expect(s.pixel.some(near), `${b.kind} ${b.mode} ${b.transport} ${s.part}: pixels ${JSON.stringify(s.pixel)} for ${s.fill}`).toBe(true);
      }
    }
  }
  for (const b of rpc) expect(b.segments.map((s) => s.part)).toEqual([...phaseNames]);
  expect(r.bars.some((b) => b.segments.some((s) => s.pixel !== null)), "the SVG drew into a canvas").toBe(true);
  expect(r.overlaps).toEqual([]);
  expect(r.outside).toEqual([]);
  expect(r.spilled).toEqual([]);
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rpcgen-ts-bench-report-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the benchmark's latency chart in a browser", () => {
  it("needs Chromium (scripts/system-deps.sh installs it)", () => {
    expect(existsSync(chromium), `${chromium} is missing: run scripts/system-deps.sh`).toBe(true);
  });

  it("draws a short real run: inproc Null(), MaxArg(), MaxResult() phases from paired CallRecords beside a timed floor", async () => {
    const modules = await generate([join(repoRoot, "idl", "bench.x")], "synthesized");
    const binding = benchBinding(modules.get("bench")!, "idl/bench.x");
    const served = new Map<number, CallRecord>();
    const server = createServer({ onServe: (r) => void served.set(r.xid, r) }).register(binding.service, benchHandlers() as unknown as HandlersOf<BenchService>);
    const records: CallRecord[] = [];
    const channel = await connect({ transport: "inproc", server, onCall: (r) => void records.push(r) });
    const client = new binding.Client(channel);
    const data = payload();
    const rows: PhaseRow[] = [];
    try {
      for (const p of phaseProcs) {
        records.length = 0;
        served.clear();
        for (let i = 0; i < 50; i++) await (p === "Null" ? client.nullproc() : p === "MaxArg" ? client.maxarg(data) : client.maxresult(MAXDATA));
        const s = new Map(
          [...served].map(([xid, r]) => [
            xid,
            {
              key: "synthesized/inproc",
              xid,
              phases: [r.phases.receive ?? 0, r.phases.dispatch ?? 0, r.phases.execute ?? 0, r.phases.reply ?? 0] as const,
              copies: [r.copies.stub, r.copies.runtime, r.copies.wire] as const,
              bytes: [r.bytesCopied.stub, r.bytesCopied.runtime, r.bytesCopied.wire] as const,
            },
          ]),
        );
        const row = phaseRow("synthesized", "inproc", p, records, s);
        expect(row, p).toBeDefined();
        expect(row!.calls).toBe(50);
        rows.push(row!);
      }
    } finally {
      await channel.close();
    }
    // The floor and the timed call, timed as the RPC section times them (a few short rounds).
    const loop = async (n: number): Promise<number> => {
      for (let i = 0; i < n; i++) await untimed.nullproc();
      return n;
    };
    const plain = await connect({ transport: "inproc", server: createServer().register(binding.service, benchHandlers() as unknown as HandlersOf<BenchService>) });
    const untimed = new binding.Client(plain);
    const timings = await measureGroupAsync(
      [
        { label: "thread/floor/inproc/Null", run: microtaskHop() },
        { label: "thread/synthesized/inproc/Null", run: loop },
      ],
      { batchMs: 5, rounds: 3, warmupMs: 100 },
    );
    await plain.close();

    const collector = new ResultCollector();
    collector.group("rpc", "thread inproc", timings);
    collector.note("phases", "rows", rows);
    const load = new LoadSampler(2).stop();
    const chart = chartData(collector, { quick: true, machine: machine(), pinning: "none", load });
    expect(chart.latency).toHaveLength(1);
    expect(chart.latency[0]!.timedNs).toBe(timings.get("thread/synthesized/inproc/Null")!.ns);
    expect(chart.floors).toEqual([{ transport: "inproc", name: "microtask hop", ns: timings.get("thread/floor/inproc/Null")!.ns }]);
    expect(chart.copies.map((c) => c.copies)).toEqual([{ stub: 0, runtime: 2, wire: 0 }]);

    const svg = latencySvg(chart);
    const r = await render(svg, dir, "short-run");
    expectReadable(r, chart);
    const bar = r.bars.find((b) => b.kind === "rpc")!;
    expect(bar.value).toMatch(/^Σ [\d.]+ µs · timed [\d.]+, [\d.]+× floor$/);
  }, 30_000);

  it("draws the committed bench/results.json, and the committed bench/latency.svg is what the writer draws from it", async () => {
    const text = readFileSync(join(repoRoot, "bench", "results.json"), "utf8");
    const svg = svgOfResults(text);
    // After a change to the drawing: `npm run bench -- --redraw` draws it again from the results.
    expect(readFileSync(join(repoRoot, "bench", "latency.svg"), "utf8"), "bench/latency.svg is not what bench/svg.ts draws from bench/results.json").toBe(svg);
    const chart = (JSON.parse(text) as { chart: ChartData }).chart;
    expect(chart.latency.length).toBeGreaterThan(0);
    const r = await render(svg, dir, "committed");
    expectReadable(r, chart);
  }, 30_000);

  it("refuses data that are not a chart, naming what is wrong", () => {
    expect(() => svgOfResults("{")).toThrow(/^results: not JSON/);
    expect(() => svgOfResults(`{"schema":"other"}`)).toThrow(/schema "other", expected "rpcgen-ts-bench\/1"/);
    const good: ChartData = { title: "t", subtitle: [], latency: [], floors: [], copies: [], copiesProc: "MaxArg" };
    expect(() => latencySvg({ ...good, latency: [{ mode: "m", transport: "tcp", server: "process", calls: 1, phases: { call: 1 } as never }] })).toThrow(
      "latency chart: latency[0].phases.send is undefined, not a finite number",
    );
    expect(() => latencySvg({ ...good, floors: [{ transport: "carrier-pigeon" as never, name: "x", ns: 1 }] })).toThrow(/floors\[0\]: transport "carrier-pigeon"/);
    expect(() => latencySvg({ ...good, floors: [{ transport: "udp", name: "x", ns: Number.NaN }] })).toThrow(/floors\[0\]\.ns is NaN, not a finite number/);
    expect(latencySvg(good)).toContain("No latency phases in this run");
  });
});
