import type { ChartData, CopyBar, FloorBar, LatencyBar } from "./report.js";

/**
 * bench/latency.svg, drawn by hand (no charting library): per transport a panel with the
 * floor's bar (one segment) and, per marshaling mode, Null()'s latency as a stack of its
 * eight phases (Thekkath and Levy's components of RPC latency), each panel with its own µs
 * axis; a tick on each bar marks the RPC section's timed median (nobody listening). Below, a
 * small chart of copies per call by layer. Every bar is a `<g class="bar">` with its segments
 * (`rect.seg`), a `text.label` and a `text.value`, and every segment has a `<title>`, so the
 * drawing can be checked in a browser and read with a pointer.
 */

const PHASES = ["call", "send", "transit", "receive", "dispatch", "execute", "reply", "resume"] as const;
const LAYERS = ["stub", "runtime", "wire"] as const;
const TRANSPORTS = ["inproc", "shm", "tcp", "unix", "udp"] as const;

const PHASE_COLOR: Record<(typeof PHASES)[number], string> = {
  call: "#1f77b4",
  send: "#6baed6",
  transit: "#c7c7c7",
  receive: "#2ca02c",
  dispatch: "#98df8a",
  execute: "#ff7f0e",
  reply: "#ffbb78",
  resume: "#9467bd",
};
const PHASE_SIDE: Record<(typeof PHASES)[number], string> = {
  call: "client: stub entered → arguments marshaled",
  send: "client: marshaled → handed to the transport",
  transit: "the wire and both event loops' hand-offs (client transit less the server's phases)",
  receive: "server: message arrived → call header parsed",
  dispatch: "server: procedure found, arguments unmarshaled",
  execute: "server: the procedure itself",
  reply: "server: results marshaled and handed to the transport",
  resume: "client: reply arrived → results unmarshaled → caller resumed",
};
const FLOOR_COLOR = "#4d4d4d";
const LAYER_COLOR: Record<(typeof LAYERS)[number], string> = { stub: "#8c564b", runtime: "#17becf", wire: "#bcbd22" };
/** Segments light enough for black text. */
const LIGHT = new Set(["#c7c7c7", "#6baed6", "#98df8a", "#ffbb78", "#17becf", "#bcbd22"]);

const W = 980;
const X0 = 170;
const X1 = W - 230;
/** The least width of a bar with a positive figure. */
const MIN_BAR = 2;
const FONT = "DejaVu Sans, Verdana, Arial, sans-serif";

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const num = (x: number): string => (Math.round(x * 10) / 10).toString();
/** µs with 3 significant figures at most. */
const usText = (ns: number): string => {
  const u = ns / 1000;
  return u >= 100 ? u.toFixed(0) : u >= 10 ? u.toFixed(1) : u.toFixed(2);
};
/** Rough text width at `size` px (DejaVu Sans averages ≈ 0.6 em per character). */
const textWidth = (s: string, size: number): number => s.length * size * 0.6;

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

class Canvas {
  readonly parts: string[] = [];
  y = 0;

  add(s: string): void {
    this.parts.push(s);
  }

  text(x: number, y: number, s: string, attrs: { size?: number; anchor?: "start" | "middle" | "end"; cls?: string; weight?: string; fill?: string } = {}): void {
    this.add(
      `<text x="${num(x)}" y="${num(y)}" font-size="${attrs.size ?? 12}"${attrs.anchor === undefined ? "" : ` text-anchor="${attrs.anchor}"`}` +
        `${attrs.cls === undefined ? "" : ` class="${attrs.cls}"`}${attrs.weight === undefined ? "" : ` font-weight="${attrs.weight}"`}` +
        `${attrs.fill === undefined ? "" : ` fill="${attrs.fill}"`}>${esc(s)}</text>`,
    );
  }
}

interface Segment {
  readonly part: string;
  readonly ns: number;
  readonly color: string;
  readonly title: string;
  /** Text inside the segment when it fits. */
  readonly inside: string;
}

/** One horizontal stacked bar as `<g class="bar">`. */
function bar(
  c: Canvas,
  o: { kind: string; attrs: Record<string, string>; label: string; value: string; segments: readonly Segment[]; scale: number; y: number; h: number; marker?: { ns: number; title: string } },
): void {
  const data = Object.entries(o.attrs)
    .map(([k, v]) => ` data-${k}="${esc(v)}"`)
    .join("");
  c.add(`<g class="bar" data-kind="${o.kind}"${data}>`);
  c.text(X0 - 8, o.y + o.h / 2 + 4, o.label, { anchor: "end", cls: "label" });
  let x = X0;
  // A bar is never drawn thinner than MIN_BAR px (its label gives the figure): a floor of
  // 0.1 µs beside calls of 100 µs must still be seen.
  const total = o.segments.reduce((sum, s) => sum + Math.max(0, s.ns), 0) * o.scale;
  const stretch = total > 0 && total < MIN_BAR ? MIN_BAR / total : 1;
  for (const s of o.segments) {
    const w = Math.max(0, s.ns) * o.scale * stretch;
    c.add(
      `<rect class="seg" data-part="${s.part}" x="${num(x)}" y="${num(o.y)}" width="${w.toFixed(2)}" height="${o.h}" fill="${s.color}"><title>${esc(s.title)}</title></rect>`,
    );
    if (s.inside !== "" && w >= textWidth(s.inside, 10) + 4) {
      c.text(x + w / 2, o.y + o.h / 2 + 3.5, s.inside, { size: 10, anchor: "middle", cls: "seg-label", fill: LIGHT.has(s.color) ? "#000" : "#fff" });
    }
    x += w;
  }
  if (o.marker !== undefined) {
    const mx = X0 + o.marker.ns * o.scale;
    c.add(`<path class="marker" d="M${num(mx)} ${num(o.y - 3)}v${o.h + 6}" stroke="#000" stroke-width="2"><title>${esc(o.marker.title)}</title></path>`);
  }
  c.text(Math.max(x, o.marker === undefined ? x : X0 + o.marker.ns * o.scale) + 6, o.y + o.h / 2 + 4, o.value, { cls: "value", size: 11 });
  c.add(`</g>`);
}

function axis(c: Canvas, max: number, scale: number, unit: string, integer = false): void {
  const step = integer ? Math.max(1, Math.ceil(niceStep(max, 6))) : niceStep(max, 6);
  const y = c.y;
  c.add(`<g class="axis">`);
  c.add(`<path d="M${X0} ${y}H${num(X0 + max * scale)}" stroke="#333" stroke-width="1"/>`);
  for (let v = 0; v <= max + 1e-9; v += step) {
    const x = X0 + v * scale;
    c.add(`<path d="M${num(x)} ${y}v4" stroke="#333"/>`);
    c.text(x, y + 15, integer ? v.toFixed(0) : Number(v.toPrecision(6)).toString(), { size: 10, anchor: "middle", cls: "tick" });
  }
  c.text(X0 + max * scale + 16, y + 15, unit, { size: 11, cls: "axis-unit" });
  c.add(`</g>`);
  c.y += 26;
}

function legend(c: Canvas, items: readonly { key: string; name: string; color?: string; marker?: boolean; title: string }[]): void {
  let x = 20;
  c.add(`<g class="legend">`);
  for (const it of items) {
    const w = 18 + textWidth(it.name, 11) + 18;
    if (x + w > W - 10) {
      x = 20;
      c.y += 18;
    }
    c.add(`<g class="legend-item" data-part="${esc(it.key)}"><title>${esc(it.title)}</title>`);
    if (it.marker === true) c.add(`<path d="M${x + 6} ${c.y - 10}v14" stroke="#000" stroke-width="2"/>`);
    else c.add(`<rect x="${x}" y="${c.y - 10}" width="12" height="12" fill="${it.color}"/>`);
    c.text(x + 17, c.y, it.name, { size: 11 });
    c.add(`</g>`);
    x += w;
  }
  c.add(`</g>`);
  c.y += 22;
}

function check(chart: ChartData): void {
  const fail = (what: string): never => {
    throw new Error(`latency chart: ${what}`);
  };
  if (typeof chart !== "object" || chart === null) fail("expected the `chart` object of a results file");
  if (typeof chart.title !== "string") fail("title is not a string");
  if (!Array.isArray(chart.subtitle) || chart.subtitle.some((s) => typeof s !== "string")) fail("subtitle is not a list of strings");
  if (!Array.isArray(chart.latency) || !Array.isArray(chart.floors) || !Array.isArray(chart.copies)) fail("latency, floors and copies must be lists");
  const finite = (x: unknown, what: string): void => {
    if (typeof x !== "number" || !Number.isFinite(x)) fail(`${what} is ${typeof x === "number" ? String(x) : JSON.stringify(x)}, not a finite number`);
  };
  const transport = (t: unknown, what: string): void => {
    if (!(TRANSPORTS as readonly unknown[]).includes(t)) fail(`${what}: transport ${JSON.stringify(t)} is not one of ${TRANSPORTS.join(", ")}`);
  };
  chart.latency.forEach((b: LatencyBar, i) => {
    transport(b.transport, `latency[${i}]`);
    if (typeof b.mode !== "string") fail(`latency[${i}].mode is not a string`);
    if (typeof b.phases !== "object" || b.phases === null) fail(`latency[${i}].phases is missing`);
    for (const p of PHASES) finite(b.phases[p], `latency[${i}].phases.${p}`);
    if (b.timedNs !== undefined) finite(b.timedNs, `latency[${i}].timedNs`);
    if (b.timedRatio !== undefined) finite(b.timedRatio, `latency[${i}].timedRatio`);
  });
  chart.floors.forEach((f: FloorBar, i) => {
    transport(f.transport, `floors[${i}]`);
    finite(f.ns, `floors[${i}].ns`);
    if (typeof f.name !== "string") fail(`floors[${i}].name is not a string`);
  });
  chart.copies.forEach((b: CopyBar, i) => {
    transport(b.transport, `copies[${i}]`);
    for (const l of LAYERS) finite(b.copies?.[l], `copies[${i}].copies.${l}`);
    finite(b.bytes, `copies[${i}].bytes`);
  });
}

/** The SVG text of the chart. Throws, naming the field, on data that are not a chart. */
export function latencySvg(chart: ChartData): string {
  check(chart);
  const c = new Canvas();
  c.y = 30;
  c.text(20, c.y, chart.title, { size: 18, weight: "bold", cls: "title" });
  c.y += 20;
  for (const line of chart.subtitle) {
    c.text(20, c.y, line, { size: 11, fill: "#444", cls: "subtitle" });
    c.y += 15;
  }
  c.y += 10;
  legend(c, [
    ...PHASES.map((p) => ({ key: p, name: p, color: PHASE_COLOR[p], title: PHASE_SIDE[p] })),
    { key: "floor", name: "floor (raw ping-pong)", color: FLOOR_COLOR, title: "the transport's raw round trip, same bytes, same arrangement" },
    { key: "timed", name: "timed, nobody listening", marker: true, title: "the RPC section's median for the same call, timed without hooks" },
  ]);
  for (const line of [
    "Bars: the median µs of each phase over observed calls (onCall / onServe hooks), stacked; Σ is their sum.",
    "The tick: the same call timed with nobody listening; × floor is its ratio to the floor, paired per round.",
  ]) {
    c.text(20, c.y, line, { size: 11, fill: "#444", cls: "note" });
    c.y += 15;
  }
  c.y -= 3;

  const ROW = 24;
  const H = 16;
  if (chart.latency.length === 0) {
    c.y += 24;
    c.text(20, c.y, "No latency phases in this run (the phases section did not run).", { size: 12, cls: "empty" });
    c.y += 10;
  }
  for (const t of TRANSPORTS) {
    const bars = chart.latency.filter((b) => b.transport === t);
    if (bars.length === 0) continue;
    const floor = chart.floors.find((f) => f.transport === t);
    const sum = (b: LatencyBar): number => PHASES.reduce((s, p) => s + Math.max(0, b.phases[p]), 0);
    const max = Math.max(floor?.ns ?? 0, ...bars.map((b) => Math.max(sum(b), b.timedNs ?? 0))) * 1.04;
    const step = niceStep(max / 1000, 6);
    const axisMax = Math.ceil(max / 1000 / step) * step;
    const scale = (X1 - X0) / (axisMax * 1000);
    c.y += 30;
    const server = bars[0]!.server === "process" ? "server in its own process" : bars[0]!.server === "worker" ? "server in a worker thread" : "client and server in one thread";
    c.add(`<g class="panel" data-transport="${t}">`);
    c.text(20, c.y, `${t} — ${server}`, { size: 14, weight: "bold", cls: "panel-title" });
    c.y += 10;
    if (floor !== undefined) {
      bar(c, {
        kind: "floor",
        attrs: { transport: t },
        label: "floor",
        // The floor's name goes inside its bar, or after its figure when the bar is too short.
        value: `${usText(floor.ns)} µs${floor.ns * scale >= textWidth(floor.name, 10) + 4 ? "" : ` · ${floor.name}`}${floor.note === undefined ? "" : " *"}`,
        segments: [{ part: "floor", ns: floor.ns, color: FLOOR_COLOR, title: `${floor.name}: ${usText(floor.ns)} µs${floor.note === undefined ? "" : ` (${floor.note})`}`, inside: floor.name }],
        scale,
        y: c.y,
        h: H,
      });
      c.y += ROW;
    } else {
      c.text(X0, c.y + H / 2 + 4, "floor: not measured in this run (the rpc section did not run, or its floor failed)", { size: 11, fill: "#444", cls: "note" });
      c.y += ROW;
    }
    for (const b of bars) {
      const total = sum(b);
      const ratio = b.timedRatio === undefined ? "" : `, ${b.timedRatio.toFixed(2)}× floor`;
      bar(c, {
        kind: "rpc",
        attrs: { transport: t, mode: b.mode },
        label: b.mode,
        value: `Σ ${usText(total)} µs${b.timedNs === undefined ? "" : ` · timed ${usText(b.timedNs)}${ratio}`}`,
        segments: PHASES.map((p) => ({
          part: p,
          ns: b.phases[p],
          color: PHASE_COLOR[p],
          title: `${b.mode} ${t} ${p}: ${usText(b.phases[p])} µs — ${PHASE_SIDE[p]}`,
          inside: usText(b.phases[p]),
        })),
        scale,
        y: c.y,
        h: H,
        ...(b.timedNs === undefined ? {} : { marker: { ns: b.timedNs, title: `${b.mode} ${t} Null(), timed with nobody listening: ${usText(b.timedNs)} µs` } }),
      });
      c.y += ROW;
    }
    c.y += 2;
    axis(c, axisMax, scale * 1000, "µs");
    if (floor?.note !== undefined) {
      c.text(X0, c.y, `* ${floor.name}: ${floor.note}`, { size: 10, fill: "#444", cls: "note" });
      c.y += 12;
    }
    c.add(`</g>`);
  }

  if (chart.copies.length > 0) {
    c.y += 34;
    c.add(`<g class="panel" data-chart="copies">`);
    c.text(20, c.y, `Copies per ${chart.copiesProc}() call (1440-byte argument), client + server, by layer`, { size: 14, weight: "bold", cls: "panel-title" });
    c.y += 22;
    legend(c, LAYERS.map((l) => ({ key: l, name: l, color: LAYER_COLOR[l], title: `copies made by the ${l} layer` })));
    const totals = chart.copies.map((b) => LAYERS.reduce((s, l) => s + b.copies[l], 0));
    const maxCopies = Math.max(1, ...totals);
    const scale = Math.min(60, (X1 - X0) / maxCopies);
    for (const t of TRANSPORTS) {
      for (const b of chart.copies.filter((x) => x.transport === t)) {
        const total = LAYERS.reduce((s, l) => s + b.copies[l], 0);
        bar(c, {
          kind: "copies",
          attrs: { transport: t, mode: b.mode },
          label: `${b.mode} · ${t}`,
          value: `${total} ${total === 1 ? "copy" : "copies"}, ${b.bytes.toLocaleString("en-US")} B`,
          segments: LAYERS.map((l) => ({ part: l, ns: b.copies[l], color: LAYER_COLOR[l], title: `${b.mode} ${t}: ${b.copies[l]} ${l} copies`, inside: b.copies[l] === 0 ? "" : String(b.copies[l]) })),
          scale,
          y: c.y,
          h: 12,
        });
        c.y += 17;
      }
    }
    c.y += 2;
    axis(c, maxCopies, scale, "copies", true);
    c.add(`</g>`);
  }

  c.y += 10;
  const height = Math.ceil(c.y);
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" font-family="${FONT}" role="img">\n` +
    `<title>${esc(chart.title)}</title>\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n` +
    c.parts.join("\n") +
    `\n</svg>\n`
  );
}
