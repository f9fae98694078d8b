import type { SourceFile, Span } from "../source.js";

/**
 * The comment a `.x` file writes on the lines right above a definition, field, union arm or
 * procedure, for its doc comment. The preprocessor blanks comments, so they are read from
 * the source text the span points into. A comment counts when it ends on the line before
 * the item's (no blank line between), starts a line of its own, and the item is the first on
 * its line: `int a; /* about a *\/` above `int b;` describes neither. Consecutive `//` lines
 * count as one comment.
 */

const lineStarts = new WeakMap<SourceFile, number[]>();

function startsOf(file: SourceFile): number[] {
  let starts = lineStarts.get(file);
  if (starts === undefined) {
    starts = [0];
    const t = file.text;
    for (let i = t.indexOf("\n"); i >= 0; i = t.indexOf("\n", i + 1)) starts.push(i + 1);
    lineStarts.set(file, starts);
  }
  return starts;
}

/** Back from `end` over whitespace with at most one line break; undefined at a blank line. */
function skipSpace(text: string, end: number): number | undefined {
  let breaks = 0;
  while (end > 0 && /\s/.test(text[end - 1]!)) {
    if (text[end - 1] === "\n" && ++breaks > 1) return undefined;
    end--;
  }
  return end;
}

/** Whether only whitespace precedes `at` on its line. */
function firstOnLine(text: string, at: number): boolean {
  const lineStart = text.lastIndexOf("\n", at - 1) + 1;
  return text.slice(lineStart, at).trim() === "";
}

/** A doc comment may not contain its own terminator. */
function clean(lines: string[]): string | undefined {
  const body = lines.map((l) => l.replace(/\s+$/, ""));
  while (body.length > 0 && body[0]!.trim() === "") body.shift();
  while (body.length > 0 && body[body.length - 1]!.trim() === "") body.pop();
  if (body.length === 0) return undefined;
  const indent = Math.min(...body.filter((l) => l.trim() !== "").map((l) => l.length - l.trimStart().length));
  return body
    .map((l) => l.slice(indent))
    .join("\n")
    .replaceAll("*/", "*\\/");
}

/**
 * The comment before `span`, or undefined. `labels`: also step back over `case X:` and
 * `default:` (a union arm's comment precedes its labels).
 */
export function leadingComment(span: Span | undefined, labels = false): string | undefined {
  if (span === undefined) return undefined;
  const text = span.file.text;
  const lineStart = startsOf(span.file)[span.line - 1] ?? text.length;
  // Spans point at names (`struct point`, `int x`, `point MOVE(...)`): what precedes on the line
  // must be the item's own keywords and type, not an earlier item (`int x; int y;`).
  const before = text.slice(lineStart, lineStart + span.col - 1);
  if (/[;{},]/.test(labels ? before.replace(/(?:case\s+[^:;{}]+|default)\s*:/g, "") : before)) return undefined;
  let end = skipSpace(text, lineStart);
  if (end === undefined) return undefined;
  if (labels) {
    for (let m = /(?:case\s+[^:;{}]+|default)\s*:\s*$/.exec(text.slice(Math.max(0, end - 200), end)); m !== null; ) {
      end = skipSpace(text, end - m[0].length);
      if (end === undefined) return undefined;
      m = /(?:case\s+[^:;{}]+|default)\s*:\s*$/.exec(text.slice(Math.max(0, end - 200), end));
    }
  }
  if (text.startsWith("*/", end - 2)) {
    const start = text.lastIndexOf("/*", end - 3);
    if (start < 0 || !firstOnLine(text, start)) return undefined;
    return clean(
      text
        .slice(start + 2, end - 2)
        .split("\n")
        // `/** doc */` and ` * ` margins are the comment's frame, not its text.
        .map((l, i) => (i === 0 ? l.replace(/^\*+ ?/, "") : l.replace(/^\s*\*(?!\/) ?/, ""))),
    );
  }
  // `//` lines, each alone on its line, immediately above.
  const lines: string[] = [];
  let at = end;
  for (;;) {
    const lineStart = text.lastIndexOf("\n", at - 1) + 1;
    const line = text.slice(lineStart, at);
    const m = /^\s*\/\/(.*)$/.exec(line);
    if (m === null) break;
    lines.unshift(m[1]!.replace(/^ /, ""));
    if (lineStart === 0) break;
    const prev = skipSpace(text, lineStart);
    if (prev === undefined || prev === lineStart) break;
    at = prev;
  }
  return lines.length === 0 ? undefined : clean(lines);
}

/** A doc comment: the `.x` file's comment, if any, above the generated line. */
export function withComment(generated: string, span: Span | undefined, labels = false): string {
  const comment = leadingComment(span, labels);
  return comment === undefined ? generated : `${comment}\n\n${generated}`;
}

/** `text` as a doc comment written into code (where no structure printer writes it). */
export function docBlock(text: string): string {
  if (!text.includes("\n")) return `/** ${text} */`;
  return `/**\n${text
    .split("\n")
    .map((l) => ` * ${l}`.trimEnd())
    .join("\n")}\n */`;
}
